"""The bad-input matrix for every public kernel function, driven by tests/fuzz/specs.py.

For each function: wrong types, wrong ndim, every pairwise shape mismatch, empty dimensions,
out= misuse (no partial writes), unknown option names, overflowing/unallocatable sizes,
broadcast/zero-stride, unaligned, byte-swapped, masked and read-only inputs, NaN propagation.
Each case asserts the exception type and the message (function, argument, expected, got).
"""

from __future__ import annotations

import re

import nnfast as nf
import numpy as np
import pytest
from fuzz import specs
from fuzz.specs import Choice, Flag, Int, Real

SPECS = specs.present(nf)
IDS = [s.name for s in SPECS]


def shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def esc(shape: tuple) -> str:
    return re.escape(shape_str(shape))


def check_result(spec, kw, got, dtype=np.float64):
    """got equals the float64 reference (exactly shaped, input dtype, close values)."""
    want = specs.reference(spec, kw)
    got_t = got if isinstance(got, tuple) else (got,)
    want_t = want if isinstance(want, tuple) else (want,)
    assert len(got_t) == len(want_t)
    for g, w in zip(got_t, want_t):
        if w is None:
            assert g is None
            continue
        g = np.asarray(g)
        w = np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        if g.ndim and w.dtype.kind == "f":
            assert g.dtype == dtype
        tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g.astype(np.float64), w, **tol)


def snapshot(kw):
    return {k: np.array(v, copy=True) for k, v in kw.items() if isinstance(v, np.ndarray)}


def assert_unchanged(kw, snap):
    for k, v in snap.items():
        np.testing.assert_array_equal(kw[k], v, err_msg=f"input {k} was modified")


def test_every_exported_kernel_has_a_spec():
    # flatten: a view, tested below (test_flatten_*); dropout_mask: no array argument, tested in
    # tests/test_dropout.py; batch_norm_*: three results and state updated in place, their bad
    # input (types, shapes, dtypes, layouts, options, out=) in tests/test_batch_norm.py.
    explicit = {"flatten", "dropout_mask", "batch_norm_train", "batch_norm_eval",
                "batch_norm_backward"}
    missing = [f for f in nf.functional.__all__ if f not in specs.SPECS and f not in explicit]
    assert not missing, (
        f"no bad-input spec for: {', '.join(missing)} (add it to tests/fuzz/specs.py)"
    )


# ----------------------------------------------------------------------------- wrong types
BAD_TYPES = {
    "str": ("abc", TypeError, "{fn}: {arg} must be an array of numbers, got str"),
    "bytes": (b"abc", TypeError, "{fn}: {arg} must be an array of numbers, got bytes"),
    "None": (None, TypeError, "{fn}: {arg} must be an array of numbers, got NoneType"),
    "list_of_str": (
        ["a", "b"],
        TypeError,
        "{fn}: {arg} must be a float32 or float64 array, got dtype <U1",
    ),
    "object_array": (
        np.array([1.0, None], dtype=object),
        TypeError,
        "{fn}: {arg} must be a float32 or float64 array, got dtype object",
    ),
    "complex_array": (
        "complex",
        TypeError,
        "{fn}: {arg} must be a float32 or float64 array, got dtype complex128",
    ),
    "longdouble_array": (
        "longdouble",
        TypeError,
        r"{fn}: {arg} must be a float32 or float64 array, got dtype float(96|128)",
    ),
    "datetime_array": (
        np.array(["2020-01-01"], dtype="M8[D]"),
        TypeError,
        r"{fn}: {arg} must be a float32 or float64 array, got dtype datetime64\[D\]",
    ),
    "ragged_list": (
        [[1.0, 2.0], [3.0]],
        ValueError,
        "{fn}: {arg} could not be converted to an array: .*inhomogeneous.*",
    ),
    "masked_array": (
        "masked",
        TypeError,
        r"{fn}: {arg} is a masked array \(numpy.ma.MaskedArray\); nnfast would ignore its mask: "
        r"pass {arg}.filled\(value\) or {arg}.data",
    ),
}

# A binding called directly (strict specs) converts nothing: its own messages.
_NOT_ARRAY = "{fn}: {arg} must be a float32 or float64 numpy.ndarray, got "
_NOT_FLOAT = "{fn}: {arg} must have dtype float32 or float64, got "
BAD_TYPES_STRICT = {
    "str": (TypeError, _NOT_ARRAY + "str"),
    "bytes": (TypeError, _NOT_ARRAY + "bytes"),
    "None": (TypeError, _NOT_ARRAY + "NoneType"),
    "list_of_str": (TypeError, _NOT_ARRAY + "list"),
    "object_array": (TypeError, _NOT_FLOAT + "object"),
    "complex_array": (TypeError, _NOT_FLOAT + "complex128"),
    "longdouble_array": (TypeError, _NOT_FLOAT + "float(96|128)"),
    "datetime_array": (TypeError, _NOT_FLOAT + r"datetime64\[D\]"),
    "ragged_list": (TypeError, _NOT_ARRAY + "list"),
    "masked_array": BAD_TYPES["masked_array"][1:],
}

TYPE_CASES = [
    (s, arg, kind)
    for s in SPECS
    for arg in s.float_arrays
    for kind in BAD_TYPES
    if not (kind == "None" and s.args[arg].optional)
]


@pytest.mark.parametrize(
    "spec, arg, kind", TYPE_CASES, ids=[f"{s.name}-{a}-{k}" for s, a, k in TYPE_CASES]
)
def test_wrong_type(spec, arg, kind, rng):
    kw = specs.valid_kwargs(spec, rng)
    value, exc, msg = BAD_TYPES[kind]
    if isinstance(value, np.ndarray):
        pass
    elif value == "complex":
        value = kw[arg].astype(complex)
    elif value == "longdouble":
        value = kw[arg].astype(np.longdouble)
        if value.dtype == np.float64:
            pytest.skip("long double is double on this platform")
    elif value == "masked":
        value = np.ma.array(kw[arg], mask=np.ones(kw[arg].shape, bool))
    kw[arg] = value
    if spec.strict:
        exc, msg = BAD_TYPES_STRICT[kind]
    snap = snapshot(kw)
    with pytest.raises(exc, match="^" + msg.format(fn=spec.name, arg=arg) + "$"):
        specs.call(nf, spec, kw)
    assert_unchanged(kw, snap)


INT_ARRAY_CASES = [
    (s, arg) for s in SPECS for arg, a in s.arrays.items() if a.kind in ("labels", "indices")
]


@pytest.mark.parametrize(
    "spec, arg", INT_ARRAY_CASES, ids=[f"{s.name}-{a}" for s, a in INT_ARRAY_CASES]
)
@pytest.mark.parametrize("mask", ["none", "some", "all"])
def test_masked_integer_arrays_are_rejected(spec, arg, mask, rng):
    # Labels and pooling indices too: the kernels would use the masked entries' data.
    kw = specs.valid_kwargs(spec, rng)
    m = np.zeros(kw[arg].shape, bool)
    if mask == "all":
        m[...] = True
    elif mask == "some" and m.size:
        m.reshape(-1)[0] = True
    kw[arg] = np.ma.array(kw[arg], mask=m)
    snap = snapshot(kw)
    msg = BAD_TYPES["masked_array"][2].format(fn=spec.name, arg=arg)
    with pytest.raises(TypeError, match="^" + msg + "$"):
        specs.call(nf, spec, kw)
    assert_unchanged(kw, snap)


# ----------------------------------------------------------------------------- wrong ndim
NDIM_CASES = []
for s in SPECS:
    for arg, a in s.arrays.items():
        if a.dims is None or a.kind != "float":
            continue
        n = len(a.dims)
        for bad in (n - 1, n + 1, n + 2):
            if bad >= 0 and bad not in a.other_ndims:
                NDIM_CASES.append((s, arg, bad))


@pytest.mark.parametrize(
    "spec, arg, ndim", NDIM_CASES, ids=[f"{s.name}-{a}-{n}d" for s, a, n in NDIM_CASES]
)
def test_wrong_ndim(spec, arg, ndim, rng):
    kw = specs.valid_kwargs(spec, rng)
    a = spec.args[arg]
    shape = kw[arg].shape
    shape = shape[:ndim] if ndim < len(shape) else shape + (2,) * (ndim - len(shape))
    kw[arg] = specs.make_array(a, shape, np.float64, rng, {})
    msg = rf"^{spec.name}: {arg} must have (\d+ dims|shape|the) .*, got (shape )?{esc(shape)}$"
    with pytest.raises(ValueError, match=msg):
        specs.call(nf, spec, kw)


# ----------------------------------------------------------------------------- shape mismatches
MISMATCH_CASES = [
    (s, sym, arg) for s in SPECS for sym, users in s.shared_symbols().items() for arg in users
]


@pytest.mark.parametrize(
    "spec, sym, arg",
    MISMATCH_CASES,
    ids=[f"{s.name}-{a}.{sym}" for s, sym, a in MISMATCH_CASES],
)
def test_pairwise_shape_mismatch(spec, sym, arg, rng):
    kw = specs.valid_kwargs(spec, rng)
    users = spec.shared_symbols()[sym]
    a = spec.args[arg]
    shape = list(kw[arg].shape)
    shape[a.dims.index(sym)] += 1
    kw[arg] = specs.make_array(a, tuple(shape), kw[arg].dtype, rng, {})
    with pytest.raises(ValueError) as info:
        specs.call(nf, spec, kw)
    msg = str(info.value)
    assert msg.startswith(f"{spec.name}: "), msg
    assert re.search(r"\b(" + "|".join(users) + r")\b", msg), msg


ELEMENTWISE_CASES = [
    (s, arg) for s in SPECS for arg in [n for n in s.float_arrays if s.args[n].dims is None][1:]
]


@pytest.mark.parametrize(
    "spec, arg", ELEMENTWISE_CASES, ids=[f"{s.name}-{a}" for s, a in ELEMENTWISE_CASES]
)
@pytest.mark.parametrize("shape", [(3, 5), (4, 3), (3, 4, 1), (12,), ()])
def test_elementwise_shape_mismatch(spec, arg, shape, rng):
    # Element-wise arrays must all have the first one's shape (3, 4): no broadcasting.
    kw = specs.valid_kwargs(spec, rng, elementwise_shape=(3, 4))
    first = next(n for n in spec.float_arrays if spec.args[n].dims is None)
    kw[arg] = specs.make_array(spec.args[arg], shape, np.float64, rng, {})
    snap = snapshot(kw)
    msg = rf"^{spec.name}: {arg} must have the shape of {first} \(3, 4\), got {esc(shape)}$"
    with pytest.raises(ValueError, match=msg):
        specs.call(nf, spec, kw)
    assert_unchanged(kw, snap)


# ----------------------------------------------------------------------------- empty dims
EMPTY_CASES = [(s, sym) for s in SPECS for sym in (s.sizes or {"rows": 0, "cols": 0})]


@pytest.mark.parametrize(
    "spec, sym", EMPTY_CASES, ids=[f"{s.name}-{sym}=0" for s, sym in EMPTY_CASES]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_dims_give_empty_or_reference_results(spec, sym, dtype, rng):
    sizes = {sym: 0} if sym in spec.sizes else {}
    shape = {"rows": (0, 4), "cols": (3, 0)}.get(sym, (3, 4))
    if not spec.valid(spec.full_sizes(sizes, specs.default_options(spec))):
        pytest.skip("this size is invalid for this function (covered by the spec's cases)")
    kw = specs.valid_kwargs(spec, rng, dtype, sizes, shape)
    check_result(spec, kw, specs.call(nf, spec, kw), dtype)


# ----------------------------------------------------------------------------- options
CHOICE_CASES = [
    (s, arg, bad)
    for s in SPECS
    for arg, a in s.args.items()
    if isinstance(a, Choice)
    for bad in ("gelu", "", "RELU", 3, b"relu", ["relu"])
]


@pytest.mark.parametrize(
    "spec, arg, bad", CHOICE_CASES, ids=[f"{s.name}-{a}-{b!r}" for s, a, b in CHOICE_CASES]
)
def test_unknown_option_names(spec, arg, bad, rng):
    kw = specs.valid_kwargs(spec, rng)
    kw[arg] = bad
    if isinstance(bad, str):
        msg = rf"^{spec.name}: {arg} must be one of .*, got {re.escape(repr(bad))}$"
        exc = ValueError
    else:
        msg = rf"^{spec.name}: {arg} must be a str .*, got {type(bad).__name__}$"
        exc = TypeError
    with pytest.raises(exc, match=msg):
        specs.call(nf, spec, kw)


INT_BAD = ["lo-1", "hi+1", 2**70, -(2**70), 2.0, "2", True, None, "pair3", "pair_huge",
           "pair_str", "array"]  # fmt: skip
INT_CASES = [
    (s, arg, bad)
    for s in SPECS
    for arg, a in s.args.items()
    if isinstance(a, Int)
    for bad in INT_BAD
    if not (bad is None and a.none_ok) and (a.pair or not str(bad).startswith("pair"))
]


@pytest.mark.parametrize(
    "spec, arg, bad", INT_CASES, ids=[f"{s.name}-{a}-{b!r}" for s, a, b in INT_CASES]
)
def test_bad_integers(spec, arg, bad, rng):
    a = spec.args[arg]
    kw = specs.valid_kwargs(spec, rng)
    fn = spec.name
    value_error = rf"^{fn}: {arg} must be in \[.*\], got "
    type_error = rf"^{fn}: {arg} must be an integer, got "
    cases = {
        "lo-1": (a.lo - 1, ValueError, value_error + rf"{a.lo - 1}$"),
        "hi+1": (a.hi + 1, ValueError, value_error + rf"{a.hi + 1}$"),
        2**70: (2**70, ValueError, value_error + rf"{2**70}$"),
        -(2**70): (-(2**70), ValueError, value_error + rf"{-(2**70)}$"),
        2.0: (2.0, TypeError, type_error + "float$"),
        True: (True, TypeError, type_error + "bool$"),
        None: (None, TypeError, type_error + "NoneType$"),
        "2": ("2", TypeError, type_error + "str$"),
        "pair3": (
            (1, 1, 1),
            ValueError,
            rf"^{fn}: {arg} must be an int or a pair of ints, got a tuple of length 3$",
        ),
        "pair_huge": (
            (1, 2**70),
            ValueError,
            rf"^{fn}: {arg}\[1\] must be in \[.*\], got {2**70}$",
        ),
        "pair_str": ([1, "a"], TypeError, rf"^{fn}: {arg}\[1\] must be an integer, got str$"),
        "array": (np.array([1, 2]), TypeError, type_error + r"a int64 array of shape \(2,\)$"),
    }
    value, exc, msg = cases[bad]
    if bad == "2" and a.names:
        exc, msg = ValueError, rf"^{fn}: {arg} must be an int, a pair of ints, .*, got '2'$"
    kw[arg] = value
    with pytest.raises(exc, match=msg):
        specs.call(nf, spec, kw)


REAL_BAD = ["str", None, True, "np_bool", 1j, "array1", "list", "nan", "inf", "-inf", "huge_int",
            "below", "above"]  # fmt: skip
REAL_CASES = [
    (s, arg, bad)
    for s in SPECS
    for arg, a in s.args.items()
    if isinstance(a, Real)
    for bad in REAL_BAD
    if (bad != "below" or a.lo > -np.inf) and (bad != "above" or a.hi < np.inf)
]


@pytest.mark.parametrize(
    "spec, arg, bad", REAL_CASES, ids=[f"{s.name}-{a}-{b!r}" for s, a, b in REAL_CASES]
)
def test_bad_reals(spec, arg, bad, rng):
    a = spec.args[arg]
    kw = specs.valid_kwargs(spec, rng)
    fn = spec.name
    type_error = rf"^{fn}: {arg} must be a real number, got "
    value_error = rf"^{fn}: {arg} must be "
    cases = {
        "str": ("0.1", TypeError, type_error + "str$"),
        None: (None, TypeError, type_error + "NoneType$"),
        True: (True, TypeError, type_error + "bool$"),
        "np_bool": (np.True_, TypeError, type_error + "(numpy.)?bool_?$"),
        1j: (1j, TypeError, type_error + "complex$"),
        "array1": (np.array([0.1]), TypeError, type_error + r"a float64 array of shape \(1,\)$"),
        "list": ([0.1], TypeError, type_error + "list$"),
        "nan": (np.nan, ValueError, value_error + "finite.*, got nan$"),
        "inf": (np.inf, ValueError, value_error + "finite.*, got inf$"),
        "-inf": (-np.inf, ValueError, value_error + "finite.*, got -inf$"),
        "huge_int": (10**400, ValueError, value_error + "finite.*, got 1000+$"),
        "below": (a.lo - 0.5, ValueError, value_error + rf".*, got {a.lo - 0.5}$"),
        "above": (a.hi + (0.0 if a.hi_open else 0.5), ValueError, value_error + ".*, got "),
    }
    value, exc, msg = cases[bad]
    kw[arg] = value
    snap = snapshot(kw)
    with pytest.raises(exc, match=msg):
        specs.call(nf, spec, kw)
    assert_unchanged(kw, snap)


@pytest.mark.parametrize(
    "spec",
    [s for s in SPECS if any(isinstance(a, Real) for a in s.args.values())],
    ids=lambda s: s.name,
)
@pytest.mark.parametrize("form", ["int", "np_float32", "np_float64", "np_int64", "0d_array"])
def test_real_options_accept_every_number_type(spec, form, rng):
    kw = specs.valid_kwargs(spec, rng)
    name = next(n for n, a in spec.args.items() if isinstance(a, Real))
    value = {"int": 0, "np_float32": np.float32(0.5), "np_float64": np.float64(0.5),
             "np_int64": np.int64(0), "0d_array": np.array(0.5)}[form]  # fmt: skip
    kw[name] = value
    check_result(spec, kw, specs.call(nf, spec, kw))


FLAG_CASES = [
    (s, arg, bad)
    for s in SPECS
    for arg, a in s.args.items()
    if isinstance(a, Flag)
    for bad in (1, 0, "yes", None, np.array([True]), 1.0)
]


@pytest.mark.parametrize(
    "spec, arg, bad", FLAG_CASES, ids=[f"{s.name}-{a}-{b!r}" for s, a, b in FLAG_CASES]
)
def test_bad_flags(spec, arg, bad, rng):
    kw = specs.valid_kwargs(spec, rng)
    kw[arg] = bad
    with pytest.raises(TypeError, match=rf"^{spec.name}: {arg} must be a bool, got \w+$"):
        specs.call(nf, spec, kw)


# ----------------------------------------------------------------------------- out=
OUT_SPECS = [s for s in SPECS if s.has_out]
OUT_KINDS = ["dtype", "shape", "fortran", "readonly", "overlap", "list", "strided"]


@pytest.mark.parametrize("spec", OUT_SPECS, ids=[s.name for s in OUT_SPECS])
@pytest.mark.parametrize("kind", OUT_KINDS)
def test_out_misuse_raises_and_writes_nothing(spec, kind, rng):
    kw = specs.valid_kwargs(spec, rng, elementwise_shape=(3, 4))
    want = np.asarray(specs.reference(spec, kw))
    fn = spec.name
    if kind == "dtype":
        out = np.full(want.shape, 7.0, np.float32)
        exc, msg = TypeError, rf"^{fn}: out must have dtype float64, got float32$"
    elif kind == "shape":
        out = np.full(want.shape + (1,), 7.0)
        exc, msg = ValueError, rf"^{fn}: out must have shape {esc(want.shape)}, got "
    elif kind == "fortran":
        out = np.full(want.shape, 7.0, order="F")
        exc, msg = ValueError, rf"^{fn}: out must be C-contiguous$"
    elif kind == "strided":
        out = np.full(want.shape[:-1] + (2 * want.shape[-1],), 7.0)[..., ::2]
        exc, msg = ValueError, rf"^{fn}: out must be C-contiguous$"
    elif kind == "readonly":
        out = np.full(want.shape, 7.0)
        out.flags.writeable = False
        exc, msg = ValueError, rf"^{fn}: out must be writeable, got a read-only array$"
    elif kind == "list":
        out = [7.0] * want.size
        exc, msg = TypeError, rf"^{fn}: out must be a numpy.ndarray or None, got list$"
    else:  # overlap: out shares one element with the first array input (partial overlap)
        arg = next(iter(spec.arrays))
        inp = kw[arg]
        base = np.full(inp.size + want.size - 1, 7.0)
        base[: inp.size] = inp.ravel()
        kw[arg] = base[: inp.size].reshape(inp.shape)
        out = base[inp.size - 1 :].reshape(want.shape)
        exc, msg = ValueError, rf"^{fn}: out must not overlap an input"
    before = np.array(out, copy=True)
    snap = snapshot(kw)
    with pytest.raises(exc, match=msg):
        specs.call(nf, spec, {**kw, "out": out})
    np.testing.assert_array_equal(np.asarray(out), before)  # no partial write
    assert_unchanged(kw, snap)


@pytest.mark.parametrize("spec", OUT_SPECS, ids=[s.name for s in OUT_SPECS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_valid_out_is_written_and_returned(spec, dtype, rng):
    kw = specs.valid_kwargs(spec, rng, dtype)
    want = np.asarray(specs.reference(spec, kw))
    out = np.full(want.shape, np.nan, dtype)
    assert specs.call(nf, spec, {**kw, "out": out}) is out
    check_result(spec, kw, out, dtype)


# ----------------------------------------------------------------------------- sizes
SIZE_SPECS = [s for s in SPECS if s.overflow_sizes]


@pytest.mark.parametrize("spec", SIZE_SPECS, ids=[s.name for s in SIZE_SPECS])
def test_overflowing_output_size_is_value_error(spec, rng):
    kw = specs.huge_kwargs(spec, spec.overflow_sizes)
    with pytest.raises(ValueError, match=rf"^{spec.name}: .* has more elements than can be"):
        specs.call(nf, spec, kw)


@pytest.mark.parametrize("spec", SIZE_SPECS, ids=[s.name for s in SIZE_SPECS])
def test_unallocatable_output_is_memory_error(spec, rng):
    kw = specs.huge_kwargs(spec, spec.oom_sizes)
    with pytest.raises(MemoryError):
        specs.call(nf, spec, kw)


# ----------------------------------------------------------------------------- accepted layouts
def _layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    """Views of a's values in every layout the conversion layer must accept."""
    out = {}
    out["fortran"] = np.asfortranarray(a)
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],) if a.ndim else (), a.dtype)
    if a.ndim:
        big[..., ::2] = a
        out["strided"] = big[..., ::2]
        rev = a[..., ::-1].copy()
        out["negative_stride"] = rev[..., ::-1]
    out["byteswapped"] = a.astype(a.dtype.newbyteorder())
    buf = np.zeros(a.nbytes + 1, np.uint8)
    un = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
    un[...] = a
    out["unaligned"] = un
    ro = a.copy()
    ro.flags.writeable = False
    out["readonly"] = ro
    out["list"] = a.tolist()
    return out


LAYOUTS = ("fortran", "strided", "negative_stride", "byteswapped", "unaligned", "readonly", "list",
           "broadcast")  # fmt: skip
LAYOUT_CASES = [
    (s, arg, layout)
    for s in SPECS
    if not s.strict
    for arg, a in s.arrays.items()
    if a.kind == "float"
    for layout in LAYOUTS
]


@pytest.mark.parametrize(
    "spec, arg, layout", LAYOUT_CASES, ids=[f"{s.name}-{a}-{lay}" for s, a, lay in LAYOUT_CASES]
)
def test_accepted_layouts_give_the_reference_result(spec, arg, layout, rng):
    kw = specs.valid_kwargs(spec, rng)
    a = kw[arg]
    if layout == "broadcast":
        # A zero-stride view: every row is the first one.
        row = a[:1] if a.ndim else a
        a = np.ascontiguousarray(np.broadcast_to(row, a.shape))
        kw[arg] = np.broadcast_to(row, a.shape)
    else:
        kw[arg] = _layouts(a)[layout]
    snap = snapshot(kw)
    got = specs.call(nf, spec, kw)
    assert_unchanged(kw, snap)
    check_result(spec, {**kw, arg: a}, got)


STRICT_LAYOUT_CASES = [
    (s, arg, layout) for s in SPECS if s.strict for arg in s.float_arrays for layout in LAYOUTS
]


@pytest.mark.parametrize(
    "spec, arg, layout",
    STRICT_LAYOUT_CASES,
    ids=[f"{s.name}-{a}-{lay}" for s, a, lay in STRICT_LAYOUT_CASES],
)
def test_binding_refuses_layouts_it_would_have_to_copy(spec, arg, layout, rng):
    # Called directly, a binding converts nothing (an in-place update of a copy would be lost):
    # only a read-only input that is not updated is fine.
    kw = specs.valid_kwargs(spec, rng)
    a = kw[arg]
    if layout == "broadcast":
        kw[arg] = np.broadcast_to(a[:1], a.shape)
    else:
        kw[arg] = _layouts(a)[layout]
    snap = snapshot(kw)
    if layout == "readonly" and spec.args[arg].kind != "state":
        check_result(spec, kw, specs.call(nf, spec, kw))
        assert_unchanged(kw, snap)
        return
    with pytest.raises((TypeError, ValueError)) as info:
        specs.call(nf, spec, kw)
    assert str(info.value).startswith(f"{spec.name}: {arg} "), info.value
    assert_unchanged(kw, snap)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_mixed_dtypes_promote_to_float64(spec, rng):
    kw = specs.valid_kwargs(spec, rng, np.float32)
    first = next(iter(spec.arrays))
    kw[first] = kw[first].astype(np.float64)
    if spec.strict:  # no promotion: every array must have the first one's dtype
        second = spec.float_arrays[1]
        msg = rf"^{spec.name}: {second} must have the dtype of {first} \(float64\), got float32$"
        with pytest.raises(ValueError, match=msg):
            specs.call(nf, spec, kw)
        return
    check_result(spec, kw, specs.call(nf, spec, kw), np.float64)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_like_the_reference(spec, dtype, rng):
    # Documented rule (SECURITY.md): where the float64 reference gives NaN, nnfast gives NaN,
    # and infinities come out where the reference has them.
    kw = specs.valid_kwargs(spec, rng, dtype)
    for name, a in spec.arrays.items():
        if a.kind == "float" and kw.get(name) is not None and kw[name].size:
            flat = kw[name].reshape(-1)
            flat[0] = np.nan
            flat[-1] = np.inf if flat.size > 1 else flat[-1]
    with np.errstate(all="ignore"):
        want = specs.reference(spec, kw)
    got = specs.call(nf, spec, kw)
    for g, w in zip(
        got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)
    ):
        if w is None:
            continue
        g = np.asarray(g, np.float64)
        w = np.asarray(w)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))


# ----------------------------------------------------------------------------- regressions
# Defects the fuzzer and this matrix found; each is also covered by the generic cases above.


def test_regression_sgd_momentum_without_velocity_is_refused():
    # The momentum was silently ignored (a plain SGD step); there is no buffer to keep it in.
    p = np.zeros(4)
    with pytest.raises(
        ValueError, match=r"^sgd_step: momentum 0.9 needs a velocity array, got velocity=None$"
    ):
        nf._core.sgd_step(p, np.ones(4), None, 0.1, 0.9)
    np.testing.assert_array_equal(p, 0.0)
    nf._core.sgd_step(p, np.ones(4), None, 0.1, 0.0)
    np.testing.assert_array_equal(p, -0.1)


@pytest.mark.parametrize("fn", ["sgd_step", "adam_step"])
def test_regression_optimizer_options_out_of_float32_range_are_refused(fn):
    # lr = 1e300 converted to float (undefined behaviour in C++; inf on x86) for float32 params.
    p, g, m, v = (np.zeros(4, np.float32) for _ in range(4))
    args = (p, g, None, 1e300) if fn == "sgd_step" else (p, g, m, v, 1e300, 0.9, 0.999, 1e-8, 1)
    with pytest.raises(ValueError, match=rf"^{fn}: lr must be finite in float32, got 1e\+300$"):
        getattr(nf._core, fn)(*args)
    np.testing.assert_array_equal(p, 0.0)


def test_regression_adam_beta_that_rounds_to_one_in_float32_is_refused():
    # beta2 = 1 - 1e-9 is < 1 in float64 but 1.0f in float32: v never moved off 0 and the step
    # was lr m / eps (a silently wrong update, 1e8 times too large).
    p, g, m, v = (np.ones(4, np.float32) for _ in range(4))
    with pytest.raises(ValueError, match=r"^adam_step: beta2 must be in \[0, 1\) in float32, got"):
        nf._core.adam_step(p, g, m, v, 1e-3, 0.9, 1 - 1e-9, 1e-8, 1)
    np.testing.assert_array_equal(p, 1.0)


def test_regression_masked_arrays_are_rejected_not_silently_unmasked():
    z = np.ma.array([1.0, -2.0, 3.0], mask=[0, 1, 0])
    with pytest.raises(TypeError, match=r"^relu: z is a masked array"):
        nf.relu(z)
    with pytest.raises(TypeError, match=r"^relu: z is a masked array"):
        nf._core.relu(z)
    # dense's fast path hands ndarray subclasses straight to the binding, which must refuse too.
    b = np.ma.array(np.ones(2), mask=[1, 0])
    with pytest.raises(TypeError, match=r"^dense: b is a masked array"):
        nf.dense(np.ones((3, 4)), np.ones((4, 2)), b)


def test_regression_misaligned_arrays_are_copied_not_read_misaligned():
    buf = np.zeros(8 * 6 + 1, np.uint8)
    z = np.frombuffer(buf.data, np.float64, 6, offset=1)
    z[...] = [-1, 2, -3, 4, -5, 6]
    assert not z.flags.aligned and z.flags.c_contiguous
    np.testing.assert_array_equal(nf.relu(z), [0, 2, 0, 4, 0, 6])
    with pytest.raises(
        ValueError, match=r"^relu: z must be aligned to its dtype, got a misaligned"
    ):
        nf._core.relu(z)
    np.testing.assert_array_equal(nf.matmul(z.reshape(2, 3), np.eye(3)), z.reshape(2, 3))
    out = np.frombuffer(np.zeros(8 * 6 + 1, np.uint8).data, np.float64, 6, offset=1)
    with pytest.raises(ValueError, match=r"^relu: out must be aligned to its dtype"):
        nf.relu(np.ones(6), out=out)


def test_regression_dense_single_sample_out_message_shows_callers_shapes():
    with pytest.raises(ValueError, match=r"^dense: out must have shape \(2,\), got \(3,\)$"):
        nf.dense(np.ones(3), np.ones((3, 2)), out=np.ones(3))


def test_regression_dense_softmax_with_no_outputs_is_empty():
    # nnfast.reference.softmax raised on an empty axis (np.max has no identity).
    y = nf.dense(np.ones((3, 4)), np.ones((4, 0)), None, "softmax")
    assert y.shape == (3, 0)
    assert nf.reference.softmax(np.ones((3, 0))).shape == (3, 0)


# ----------------------------------------------------------------------------- not in the table
# flatten is a view (no kernel, any dtype); the 2-D single-image forms of conv2d/max_pool2d.


def test_flatten_is_a_view_and_refuses_to_copy():
    x = np.arange(24.0).reshape(2, 3, 4)
    v = nf.flatten(x, 1)
    assert v.shape == (2, 12) and np.shares_memory(v, x)
    with pytest.raises(
        ValueError, match=r"^flatten: x of shape \(4, 3, 2\) and strides .* without a copy"
    ):
        nf.flatten(x.T)


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (
            2**70,
            ValueError,
            rf"^flatten: start_axis must be in \[-3, 3\] for a 3-d x, got {2**70}$",
        ),
        (4, ValueError, r"^flatten: start_axis must be in \[-3, 3\] for a 3-d x, got 4$"),
        (-4, ValueError, r"^flatten: start_axis must be in \[-3, 3\] for a 3-d x, got -4$"),
        ("1", TypeError, r"^flatten: start_axis must be an int, got str$"),
        (True, TypeError, r"^flatten: start_axis must be an int, got bool$"),
        (1.0, TypeError, r"^flatten: start_axis must be an int, got float$"),
        (None, TypeError, r"^flatten: start_axis must be an int, got NoneType$"),
    ],
)
def test_flatten_bad_start_axis(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        nf.flatten(np.ones((2, 3, 4)), bad)


@pytest.mark.parametrize("bad", ["abc", None])
def test_flatten_rejects_non_arrays(bad):
    with pytest.raises(TypeError, match=r"^flatten: x must be"):
        nf.flatten(bad)


def test_conv2d_single_image_forms():
    x, k = np.ones((5, 6)), np.ones((2, 3))
    np.testing.assert_array_equal(nf.conv2d(x, k), np.full((4, 4), 6.0))
    with pytest.raises(
        ValueError, match=r"^conv2d: w must have 2 dims \(kh, kw\) for a 2-D image x, got shape"
    ):
        nf.conv2d(x, np.ones((1, 1, 2, 3)))
    with pytest.raises(ValueError, match=r"^conv2d: b must have shape \(\) or \(1,\), got \(2,\)$"):
        nf.conv2d(x, k, np.ones(2))
    with pytest.raises(
        ValueError, match=r"^conv2d: the kernel \(6, 3\) is larger than the padded input \(5, 6\)$"
    ):
        nf.conv2d(x, np.ones((6, 3)))
    with pytest.raises(ValueError, match=r"^conv2d: padding='same' needs stride 1, got stride"):
        nf.conv2d(x, k, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"^conv2d: the kernel must be at least 1x1"):
        nf.conv2d(x, np.ones((0, 3)))


def test_max_pool2d_single_plane_and_window_checks():
    x = np.arange(30.0).reshape(5, 6)
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y, [[7, 9, 11], [19, 21, 23]])
    with pytest.raises(
        ValueError, match=r"^max_pool2d: pool_size \(6, 6\) is larger than the input \(5, 6\)$"
    ):
        nf.max_pool2d(x, 6)
    with pytest.raises(ValueError, match=r"^max_pool2d_backward: stride needs pool_size$"):
        nf.max_pool2d_backward(y, idx, x.shape, None, 2)


@pytest.mark.parametrize(
    "value, msg",
    [
        (-1, r"indices\[0, 0\] = -1 is not a position in the 5x6 input plane"),
        (30, r"indices\[0, 0\] = 30 is not a position in the 5x6 input plane"),
        (2**62, r"indices\[0, 0\] = 4611686018427387904 is not a position in the 5x6 input"),
        (13, r"indices\[0, 0\] = 13 is outside its pooling window \(rows 0..1, cols 0..1\)"),
    ],
)
def test_forged_pooling_indices_are_rejected(value, msg):
    x = np.arange(30.0).reshape(5, 6)
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    idx = idx.copy()
    idx[0, 0] = value
    with pytest.raises(ValueError, match=rf"^max_pool2d_backward: {msg}"):
        nf.max_pool2d_backward(np.ones_like(y), idx, x.shape, 2)
    if value in (-1, 30, 2**62):  # out of the plane: rejected even without the window check
        with pytest.raises(ValueError, match=rf"^max_pool2d_backward: {msg}"):
            nf.max_pool2d_backward(np.ones_like(y), idx, x.shape)


@pytest.mark.parametrize(
    "shape, exc, msg",
    [
        ((5,), ValueError, r"input_shape must be a tuple of 2 or 4 ints, got 1$"),
        ("ab", TypeError, r"input_shape must be a tuple of 2 or 4 ints, got str$"),
        (None, TypeError, r"input_shape must be a tuple of 2 or 4 ints, got NoneType$"),
        ((5, 2**70), ValueError, r"input_shape\[1\] must be in \[0, \d+\], got 2**70"),
        ((5, -6), ValueError, r"input_shape\[1\] must be in \[0, \d+\], got -6$"),
        ((5, 6.0), TypeError, r"input_shape\[1\] must be an integer, got float$"),
    ],
)
def test_pool_backward_bad_input_shape(shape, exc, msg):
    y, idx = nf.max_pool2d(np.ones((5, 6)), 2, return_indices=True)
    with pytest.raises(exc, match="^max_pool2d_backward: " + msg.replace("2**70", str(2**70))):
        nf.max_pool2d_backward(y, idx, shape)


def test_regression_empty_output_with_huge_other_sizes_names_the_function():
    # Found by the fuzzer: padding 2**40 makes Ho, Wo ~2**39 while out_channels is 0; NumPy
    # refused the (empty) output with its own "array is too big" message.
    with pytest.raises(
        ValueError, match=r"^conv2d: the output of shape \(3, 0, \d+, \d+\) has more elements"
    ):
        nf.conv2d(np.empty((3, 1, 16, 0)), np.empty((0, 1, 9, 9)), padding=2**40)
    with pytest.raises(
        ValueError, match=r"^_new_array: the output of shape \(0, 4611686018427387904, 4\)"
    ):
        nf._core._testing.new_array([0, 2**62, 4], np.dtype(np.float64))


def _misaligned(values, dtype):
    a = np.asarray(values, dtype)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def test_regression_misaligned_integer_labels_and_indices_are_copied():
    # The int64 paths checked C-contiguity only: a misaligned array reached the kernel.
    logits = np.random.default_rng(0).standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    want = nf.softmax_cross_entropy(logits, labels)
    got = nf.softmax_cross_entropy(logits, _misaligned(labels, np.int64))
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match=r"^softmax_cross_entropy: labels must be aligned"):
        nf._core.softmax_cross_entropy(logits, _misaligned(labels, np.int64))
    x = np.arange(30.0).reshape(5, 6)
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    want = nf.max_pool2d_backward(y, idx, x.shape, 2)
    np.testing.assert_array_equal(
        nf.max_pool2d_backward(y, _misaligned(idx, np.int64), x.shape, 2), want
    )
    with pytest.raises(ValueError, match=r"^max_pool2d_backward: indices must be aligned"):
        nf._core.max_pool2d_backward(y, _misaligned(idx, np.int64), x.shape, 2, None)
