"""out= for the functions with several results (dense_backward, conv2d_backward, max_pool2d with
indices) and for max_pool2d / max_pool2d_backward's single result.

Several results take NumPy's multi-output convention: ``out=(a, b, ...)``, one entry per result,
each an array or None (allocated). Each supplied entry is checked like any out= (dtype, shape,
C-contiguity, writeability, alignment, no overlap with an input or another entry), with messages
naming the entry (``out[1] (grad_w)``), before anything is written. The single-out functions are
also in the generic matrix of tests/test_bad_input.py (``Out()`` in tests/fuzz/specs.py).
"""

from __future__ import annotations

import itertools
import re

import nnfast as nf
import numpy as np
import pytest
from fuzz import specs

OUTS_SPECS = [s for s in specs.SPECS.values() if s.outs is not None]
DTYPES = [np.float32, np.float64]


def _call(spec, kw, out=None):
    return specs.call(nf, spec, {**kw, "out": out} if out is not None else kw)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _snapshot(kw):
    return {k: np.array(v, copy=True) for k, v in kw.items() if isinstance(v, np.ndarray)}


def _assert_unchanged(kw, snap):
    for k, v in snap.items():
        assert _same_bits(kw[k], v), f"input {k} was modified"


def test_the_multi_result_functions_are_in_the_table():
    assert sorted(s.name for s in OUTS_SPECS) == ["conv2d_backward", "dense_backward"]
    for s in OUTS_SPECS:
        assert s.outs.names == ("grad_x", "grad_w", "grad_b")


# ----------------------------------------------------------------------------- valid out=
@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("given", list(itertools.product([False, True], repeat=3)))
def test_supplied_entries_are_written_returned_and_identical_to_allocating(spec, dtype, given, rng):
    kw = specs.valid_kwargs(spec, rng, dtype)
    want = _call(spec, kw)
    out = tuple(np.full(w.shape, np.nan, dtype) if g else None for w, g in zip(want, given))
    snap = _snapshot(kw)
    got = _call(spec, kw, out)
    _assert_unchanged(kw, snap)
    assert isinstance(got, tuple) and len(got) == 3
    for g, w, o in zip(got, want, out):
        if o is not None:
            assert g is o
        assert _same_bits(g, w)


@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
def test_identical_to_allocating_on_every_isa(spec, isa, rng):
    for dtype in DTYPES:
        kw = specs.valid_kwargs(spec, rng, dtype, sizes={"B": 17, "I": 9, "O": 33, "N": 3})
        want = _call(spec, kw)
        out = tuple(np.full(w.shape, np.nan, dtype) for w in want)
        got = _call(spec, kw, out)
        assert all(g is o and _same_bits(g, w) for g, o, w in zip(got, out, want))


@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
def test_out_reused_across_calls_holds_each_calls_result(spec, rng):
    out = None
    for _ in range(3):
        kw = specs.valid_kwargs(spec, rng, np.float32)
        want = _call(spec, kw)
        if out is None:
            out = tuple(np.empty_like(w) for w in want)
        got = _call(spec, kw, out)
        assert all(g is o and _same_bits(g, w) for g, o, w in zip(got, out, want))


def test_conv2d_backward_without_grad_x():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 4, 3))
    _, gw, gb = nf.conv2d_backward(x, w, gy)
    ow, ob = np.full_like(gw, np.nan), np.full_like(gb, np.nan)
    got = nf.conv2d_backward(x, w, gy, need_grad_x=False, out=(None, ow, ob))
    assert got[0] is None and got[1] is ow and got[2] is ob
    assert _same_bits(ow, gw) and _same_bits(ob, gb)
    gx = np.full_like(x, 7.0)
    msg = "conv2d_backward: out[0] (grad_x) must be None when need_grad_x is False"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        nf.conv2d_backward(x, w, gy, need_grad_x=False, out=(gx, ow, ob))
    assert np.all(gx == 7.0)


def test_conv2d_backward_single_image_grad_b_is_0d():
    rng = np.random.default_rng(2)
    img, k = rng.standard_normal((6, 7)), rng.standard_normal((3, 3))
    gy = rng.standard_normal((4, 5))
    want = nf.conv2d_backward(img, k, gy)
    out = (np.empty((6, 7)), np.empty((3, 3)), np.empty(()))
    got = nf.conv2d_backward(img, k, gy, out=out)
    assert all(g is o and _same_bits(g, w) for g, o, w in zip(got, out, want))
    with pytest.raises(ValueError, match=r"^conv2d_backward: out\[2\] \(grad_b\) must have shape"):
        nf.conv2d_backward(img, k, gy, out=(None, None, np.empty(1)))


# ----------------------------------------------------------------------------- misuse
KINDS = ["dtype", "shape", "fortran", "strided", "readonly", "overlap", "list", "int"]


def _bad_entry(kind, want, dtype, kw, first_arg):
    other = np.float64 if dtype == np.float32 else np.float32
    if kind == "dtype":
        return (
            np.full(want.shape, 7.0, other),
            TypeError,
            (f"must have dtype {np.dtype(dtype).name}, got {np.dtype(other).name}$"),
        )
    if kind == "int":
        return (
            np.full(want.shape, 7, np.int64),
            TypeError,
            (f"must have dtype {np.dtype(dtype).name}, got int64$"),
        )
    if kind == "shape":
        return np.full(want.shape + (1,), 7.0, dtype), ValueError, "must have shape "
    if kind == "fortran":
        if want.ndim < 2:
            return None
        return np.full(want.shape, 7.0, dtype, order="F"), ValueError, "must be C-contiguous$"
    if kind == "strided":
        if want.ndim < 1 or want.shape[-1] < 2:
            return None
        bad = np.full(want.shape[:-1] + (2 * want.shape[-1],), 7.0, dtype)[..., ::2]
        return bad, ValueError, "must be C-contiguous$"
    if kind == "readonly":
        bad = np.full(want.shape, 7.0, dtype)
        bad.flags.writeable = False
        return bad, ValueError, "must be writeable, got a read-only array$"
    if kind == "list":
        return [7.0] * want.size, TypeError, "must be a numpy.ndarray or None, got list$"
    # overlap: the entry shares one element with the first input
    inp = kw[first_arg]
    base = np.full(inp.size + want.size - 1, 7.0, dtype)
    base[: inp.size] = inp.ravel()
    kw[first_arg] = base[: inp.size].reshape(inp.shape)
    return base[inp.size - 1 :].reshape(want.shape), ValueError, "must not overlap an input"


@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
@pytest.mark.parametrize("entry", [0, 1, 2])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bad_entry_raises_naming_it_and_writes_nothing(spec, entry, kind, dtype, rng):
    kw = specs.valid_kwargs(spec, rng, dtype)
    want = _call(spec, kw)
    case = _bad_entry(kind, want[entry], dtype, kw, next(iter(spec.arrays)))
    if case is None:
        pytest.skip(f"no {kind} layout for a {want[entry].ndim}-d result")
    bad, exc, msg = case
    # The other entries are valid arrays: they must not be written either.
    out = [np.full(w.shape, 7.0, dtype) for w in want]
    out[entry] = bad
    before = [np.array(o, copy=True) for o in out]
    snap = _snapshot(kw)
    name = spec.outs.names[entry]
    with pytest.raises(exc, match=rf"^{spec.name}: out\[{entry}\] \({name}\) {msg}"):
        _call(spec, kw, tuple(out))
    for o, b in zip(out, before):
        np.testing.assert_array_equal(np.asarray(o), b)
    _assert_unchanged(kw, snap)


@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (0, 2)])
def test_entries_overlapping_each_other_are_rejected(spec, pair, rng):
    kw = specs.valid_kwargs(spec, rng)
    want = _call(spec, kw)
    i, j = pair
    # entries i and j laid out in one buffer, sharing one element
    base = np.full(want[i].size + want[j].size - 1, 7.0)
    out = [np.full(w.shape, 7.0) for w in want]
    out[i] = base[: want[i].size].reshape(want[i].shape)
    out[j] = base[want[i].size - 1 :].reshape(want[j].shape)
    before = [o.copy() for o in out]
    names = spec.outs.names
    msg = rf"^{spec.name}: out\[{j}\] \({names[j]}\) must not overlap out\[{i}\] \({names[i]}\)$"
    with pytest.raises(ValueError, match=msg):
        _call(spec, kw, tuple(out))
    for o, b in zip(out, before):
        np.testing.assert_array_equal(o, b)


@pytest.mark.parametrize("spec", OUTS_SPECS, ids=[s.name for s in OUTS_SPECS])
def test_out_must_be_a_tuple_of_three(spec, rng):
    kw = specs.valid_kwargs(spec, rng)
    want = _call(spec, kw)
    arrays = [np.empty_like(w) for w in want]
    fn = spec.name
    names = "(grad_x, grad_w, grad_b)"
    with pytest.raises(
        TypeError,
        match=rf"^{fn}: out must be None or a tuple {re.escape(names)} of numpy.ndarray or None "
        r"entries, got ndarray$",
    ):
        _call(spec, kw, arrays[0])
    with pytest.raises(TypeError, match=rf"^{fn}: out must be None or a tuple .*got list$"):
        _call(spec, kw, arrays)
    for n in (0, 2, 4):
        bad = tuple(arrays + [None])[:n]
        with pytest.raises(
            ValueError, match=rf"^{fn}: out must have 3 entries {re.escape(names)}, got {n}$"
        ):
            _call(spec, kw, bad)


# ----------------------------------------------------------------------------- max pooling
def _pool_input(dtype, rng, shape=(2, 3, 7, 6)):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_out_array_and_tuple(dtype, isa, rng):
    x = _pool_input(dtype, rng)
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    oy = np.full(y.shape, np.nan, dtype)
    assert nf.max_pool2d(x, 2, out=oy) is oy and _same_bits(oy, y)
    for given in itertools.product([False, True], repeat=2):
        out = (
            np.full(y.shape, np.nan, dtype) if given[0] else None,
            np.full(y.shape, -5, np.int64) if given[1] else None,
        )
        gy, gi = nf.max_pool2d(x, 2, return_indices=True, out=out)
        assert (gy is out[0]) == given[0] and (gi is out[1]) == given[1]
        assert _same_bits(gy, y) and _same_bits(gi, idx)
    # reused with another input: holds the new result
    x2 = _pool_input(dtype, rng)
    y2, idx2 = nf.max_pool2d(x2, 2, return_indices=True)
    out = (np.empty_like(y), np.empty_like(idx))
    nf.max_pool2d(x, 2, return_indices=True, out=out)
    nf.max_pool2d(x2, 2, return_indices=True, out=out)
    assert _same_bits(out[0], y2) and _same_bits(out[1], idx2)


def _pool_bad_cases(dtype, yshape):
    other = np.float64 if dtype == np.float32 else np.float32
    ro = np.full(yshape, 7.0, dtype)
    ro.flags.writeable = False
    ro_i = np.full(yshape, 7, np.int64)
    ro_i.flags.writeable = False
    return [
        # (entry, bad array, exception, message tail)
        (0, np.full(yshape, 7.0, other), TypeError, f"must have dtype {np.dtype(dtype).name}"),
        (1, np.full(yshape, 7, np.int32), TypeError, "must have dtype int64, got int32$"),
        (1, np.full(yshape, 7.0, dtype), TypeError, "must have dtype int64, got float"),
        (0, np.full(yshape[:-1], 7.0, dtype), ValueError, "must have shape "),
        (1, np.full(yshape + (1,), 7, np.int64), ValueError, "must have shape "),
        (0, np.full(yshape, 7.0, dtype, order="F"), ValueError, "must be C-contiguous$"),
        (1, np.full(yshape, 7, np.int64, order="F"), ValueError, "must be C-contiguous$"),
        (0, ro, ValueError, "must be writeable, got a read-only array$"),
        (1, ro_i, ValueError, "must be writeable, got a read-only array$"),
        (0, [7.0], TypeError, "must be a numpy.ndarray or None, got list$"),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_bad_out(dtype, rng):
    x = _pool_input(dtype, rng)
    xs = x.copy()
    y = nf.max_pool2d(x, 2)
    names = ("y", "indices")
    for entry, bad, exc, msg in _pool_bad_cases(dtype, y.shape):
        out = [np.full(y.shape, 7.0, dtype), np.full(y.shape, 7, np.int64)]
        out[entry] = bad
        before = [np.array(o, copy=True) for o in out]
        with pytest.raises(exc, match=rf"^max_pool2d: out\[{entry}\] \({names[entry]}\) {msg}"):
            nf.max_pool2d(x, 2, return_indices=True, out=tuple(out))
        for o, b in zip(out, before):
            np.testing.assert_array_equal(np.asarray(o), b)
        if entry == 0:  # the single-result form names plain "out"
            with pytest.raises(exc, match=rf"^max_pool2d: out {msg}"):
                nf.max_pool2d(x, 2, out=bad)
    assert _same_bits(x, xs)
    # overlapping the input, or each other (same bytes seen as float and as int64)
    base = np.zeros(x.size + y.size, dtype)
    base[: x.size] = x.ravel()
    xv = base[: x.size].reshape(x.shape)
    with pytest.raises(ValueError, match=r"^max_pool2d: out must not overlap an input"):
        nf.max_pool2d(xv, 2, out=base[x.size - 1 : x.size - 1 + y.size].reshape(y.shape))
    y64 = np.zeros(y.shape, np.float64)
    msg = r"^max_pool2d: out\[1\] \(indices\) must not overlap out\[0\] \(y\)$"
    with pytest.raises(ValueError, match=msg):
        nf.max_pool2d(x.astype(np.float64), 2, return_indices=True, out=(y64, y64.view(np.int64)))
    # the form of out follows return_indices
    with pytest.raises(TypeError, match=r"^max_pool2d: out must be a numpy.ndarray or None, got"):
        nf.max_pool2d(x, 2, out=(np.empty_like(y), None))
    with pytest.raises(TypeError, match=r"^max_pool2d: out must be None or a tuple \(y, indices\)"):
        nf.max_pool2d(x, 2, return_indices=True, out=np.empty_like(y))
    with pytest.raises(ValueError, match=r"^max_pool2d: out must have 2 entries \(y, indices\)"):
        nf.max_pool2d(x, 2, return_indices=True, out=(np.empty_like(y),))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_backward_out_is_zeroed_and_reused(dtype, isa, rng):
    # out holds garbage (and then the previous call's result): every element is rewritten.
    out = np.full((2, 3, 7, 6), np.nan, dtype)
    for _ in range(2):
        x = _pool_input(dtype, rng)
        y, idx = nf.max_pool2d(x, 2, return_indices=True)
        gy = rng.standard_normal(y.shape).astype(dtype)
        want = nf.max_pool2d_backward(gy, idx, x.shape)
        assert nf.max_pool2d_backward(gy, idx, x.shape, out=out) is out
        assert _same_bits(out, want)


@pytest.mark.parametrize("forged", [10**6, -1, 0, 64, -(2**63), 2**63 - 1])
def test_max_pool2d_backward_invalid_index_leaves_out_unwritten(forged, rng):
    x = _pool_input(np.float64, rng, (2, 3, 8, 8))
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    idx = idx.copy()
    idx[1, 2, 3, 3] = forged  # 0: inside the plane but outside window (3, 3)
    out = np.full(x.shape, 7.0)
    msg = "is not a position in the" if forged != 0 else "is outside its pooling window"
    with pytest.raises(ValueError, match=rf"^max_pool2d_backward: indices\[1, 2, 3, 3\] = .*{msg}"):
        nf.max_pool2d_backward(np.ones_like(y), idx, x.shape, pool_size=2, out=out)
    assert np.all(out == 7.0)


def test_max_pool2d_backward_empty_plane_has_no_valid_index():
    out = np.full((1, 1, 0, 5), 7.0)
    with pytest.raises(ValueError, match=r"is not a position in the 0x5 input plane"):
        nf.max_pool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64), (1, 1, 0, 5),
                               out=out)  # fmt: skip
