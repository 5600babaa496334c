"""Dropout: the Philox mask rule (NumPy regeneration bit for bit), ISAs, threads, statistics."""

from __future__ import annotations

import math

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import _core
from nnfast import reference as ref

# Around the 64-element block and every vector width (4, 8, 16 lanes).
SIZES = [0, 1, 3, 4, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 1000, 4099]
SEEDS = [0, 1, 12345, 2**32 - 1, 2**32, 2**63, 2**64 - 1]


def _bits(a: np.ndarray) -> bytes:
    return a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()


def test_numpy_philox_known_answers():
    # Random123's published known-answer vectors for Philox4x32-10.
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ]
    for ctr, key, want in cases:
        assert tuple(int(w) for w in ref.philox4x32_10(ctr, key)) == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_is_the_documented_rule_on_every_isa(isa, dtype):
    for n in SIZES:
        for seed in SEEDS:
            for p in (0.2, 0.5, 0.9):
                got = nf.dropout_mask(n, p, seed, dtype)
                want = ref.dropout_mask(n, p, seed, dtype)
                assert _bits(got) == _bits(want), (n, seed, p)


def test_mask_identical_across_isas_threads_and_dtypes(rng):
    n = 1 << 20
    x = rng.standard_normal(n).astype(np.float32)
    before = _core._isa()
    runs = []
    try:
        for isa in _core._isa_available():
            _core._testing.set_isa(isa)
            for t in (1, 2, 3):
                with with_num_threads(t):
                    runs.append((_bits(nf.dropout(x, 0.2, 99)), _bits(nf.dropout_mask(n, 0.2, 99))))
    finally:
        _core._testing.set_isa(before)
    assert all(r == runs[0] for r in runs)
    want = ref.dropout_mask(n, 0.2, 99, np.float32)
    assert _bits(nf.dropout(x, 0.2, 99)) == _bits(x * want)
    keep64 = nf.dropout_mask(n, 0.2, 99, np.float64) != 0
    np.testing.assert_array_equal(keep64, want != 0)  # same keep mask in float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_are_x_times_the_mask(isa, dtype, rng):
    for shape in [(3, 5), (2, 3, 7, 9), (129,), ()]:
        x = np.asarray(rng.standard_normal(shape)).astype(dtype)
        g = np.asarray(rng.standard_normal(shape)).astype(dtype)
        m = ref.dropout_mask(shape, 0.3, 5, dtype)
        y = nf.dropout(x, 0.3, 5)
        gx = nf.dropout_backward(g, 0.3, 5)
        assert np.asarray(y).dtype == dtype and np.shape(y) == shape
        assert _bits(np.asarray(y, dtype)) == _bits(np.asarray(x * m, dtype))
        assert _bits(np.asarray(gx, dtype)) == _bits(np.asarray(g * m, dtype))
        # The backward drops exactly what the forward dropped and scales the rest alike.
        np.testing.assert_array_equal(
            nf.dropout_backward(np.ones(shape, dtype), 0.3, 5), nf.dropout(np.ones(shape, dtype), 0.3, 5)
        )
        scale = dtype(1.0 / (1.0 - 0.3))
        kept = np.asarray(m) != 0
        np.testing.assert_array_equal(np.asarray(y)[kept], (x * scale)[kept])
        assert np.all(np.asarray(y)[~kept] == 0)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_kept_fraction_is_one_minus_p(p):
    n = 1 << 20
    for seed in (0, 1, 2**64 - 1):
        kept = np.count_nonzero(nf.dropout_mask(n, p, seed, np.float32)) / n
        # A binomial's standard deviation; 6 of them: a false alarm is ~1e-9 likely.
        assert abs(kept - (1 - p)) < 6 * math.sqrt(p * (1 - p) / n), (seed, kept)


def test_different_seeds_give_independent_masks():
    n, p = 1 << 20, 0.5
    masks = [nf.dropout_mask(n, p, s, np.float32) != 0 for s in (0, 1, 2, 2**32, 2**63)]
    for i in range(len(masks)):
        for j in range(i):
            agree = np.count_nonzero(masks[i] == masks[j]) / n
            assert abs(agree - 0.5) < 6 * math.sqrt(0.25 / n), (i, j, agree)
    # Neighbouring elements and blocks are not correlated either.
    m = masks[0]
    assert abs(np.count_nonzero(m[1:] == m[:-1]) / (n - 1) - 0.5) < 6 * math.sqrt(0.25 / n)
    assert abs(np.count_nonzero(m[64:] == m[:-64]) / (n - 64) - 0.5) < 6 * math.sqrt(0.25 / n)


def test_p_zero_is_the_identity(rng):
    x = rng.standard_normal((4, 33)).astype(np.float32)
    x[0, 0] = np.nan
    x[1, 1] = -0.0
    y = nf.dropout(x, 0.0, 3)
    assert _bits(y) == _bits(x) and not np.shares_memory(x, y)
    assert _bits(nf.dropout_backward(x, 0, 3)) == _bits(x)
    np.testing.assert_array_equal(nf.dropout_mask((4, 33), 0.0, 3), 1.0)
    out = x.copy()
    assert nf.dropout(out, 0.0, 1, out=out) is out and _bits(out) == _bits(x)


def test_dropped_nan_and_inf_give_nan_like_torchs_product():
    x = np.full(256, np.nan)
    x[1::2] = np.inf
    y = nf.dropout(x, 0.5, 0)
    assert np.isnan(y[::2]).all()
    kept = nf.dropout_mask(256, 0.5, 0) != 0
    assert np.isposinf(y[1::2][kept[1::2]]).all() and np.isnan(y[1::2][~kept[1::2]]).all()


def test_in_place_out_and_non_contiguous(rng):
    x = rng.standard_normal((8, 40))
    want = nf.dropout(x, 0.25, 7)
    buf = x.copy()
    assert nf.dropout(buf, 0.25, 7, out=buf) is buf
    assert _bits(buf) == _bits(want)
    out = np.empty_like(x)
    assert nf.dropout_backward(x, 0.25, 7, out=out) is out and _bits(out) == _bits(want)
    for view in (x[:, ::2], np.asfortranarray(x), x[::-1]):
        assert _bits(nf.dropout(view, 0.25, 7)) == _bits(nf.dropout(np.ascontiguousarray(view), 0.25, 7))
    assert nf.dropout([1, 2, 3], 0.0, 0).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"^dropout: out must have shape \(8, 40\), got \(8, 41\)$"):
        nf.dropout(x, 0.5, 0, out=np.empty((8, 41)))
    with pytest.raises(TypeError, match=r"^dropout_backward: out must have dtype float64, got float32$"):
        nf.dropout_backward(x, 0.5, 0, out=np.empty((8, 40), np.float32))
    with pytest.raises(ValueError, match=r"^dropout: out must not overlap an input"):
        flat = x.reshape(-1)
        nf.dropout(flat[:100], 0.5, 0, out=flat[50:150])


@pytest.mark.parametrize(
    "p, msg",
    [
        (1.0, r"dropout: p must be in \[0, 1\), got 1.0"),
        (1.5, r"dropout: p must be in \[0, 1\), got 1.5"),
        (-0.1, r"dropout: p must be in \[0, 1\), got -0.1"),
        (float("nan"), r"dropout: p must be finite and in \[0, 1\), got nan"),
        (float("inf"), r"dropout: p must be finite and in \[0, 1\), got inf"),
        (1, r"dropout: p must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_p(p, msg):
    x = np.ones(10)
    with pytest.raises(ValueError, match="^" + msg + "$"):
        nf.dropout(x, p, 0)
    with pytest.raises(ValueError, match="^" + msg.replace("dropout", "dropout_backward") + "$"):
        nf.dropout_backward(x, p, 0)
    with pytest.raises(ValueError, match="^" + msg.replace("dropout", "dropout_mask") + "$"):
        nf.dropout_mask(10, p, 0)


def test_bad_seed_and_type_errors():
    x = np.ones(10)
    top = 2**64 - 1
    for seed in (-1, 2**64, 2**70):
        with pytest.raises(ValueError, match=rf"^dropout: seed must be in \[0, {top}\], got {seed}$"):
            nf.dropout(x, 0.5, seed)
    with pytest.raises(TypeError, match=r"^dropout: seed must be an integer, got float$"):
        nf.dropout(x, 0.5, 1.0)
    with pytest.raises(TypeError, match=r"^dropout: p must be a real number, got str$"):
        nf.dropout(x, "0.5", 0)
    # NumPy integers (uint64 included) are seeds; NumPy reals are p.
    assert _bits(nf.dropout(x, np.float32(0.5), np.uint64(top))) == _bits(nf.dropout(x, 0.5, top))


def test_dropout_mask_arguments():
    assert nf.dropout_mask(5, 0.5, 0).dtype == np.float64
    assert nf.dropout_mask((2, 3), 0.5, 0, np.float32).shape == (2, 3)
    assert nf.dropout_mask([2, 3], 0.5, 0, "float32").dtype == np.float32
    assert nf.dropout_mask((), 0.5, 0).shape == ()
    assert nf.dropout_mask((0, 4), 0.5, 0).shape == (0, 4)
    with pytest.raises(TypeError, match=r"^dropout_mask: dtype must be float32 or float64, got int64$"):
        nf.dropout_mask(5, 0.5, 0, np.int64)
    with pytest.raises(TypeError, match=r"^dropout_mask: dtype must be float32 or float64, got 'nope'$"):
        nf.dropout_mask(5, 0.5, 0, "nope")
    with pytest.raises(TypeError, match=r"^dropout_mask: shape must be a tuple of ints, got float$"):
        nf.dropout_mask(5.0, 0.5, 0)
    with pytest.raises(ValueError, match=r"^dropout_mask: shape\[1\] must be in \[0, "):
        nf.dropout_mask((2, -1), 0.5, 0)
    with pytest.raises(ValueError, match=r"^dropout_mask: the output of shape .* has more elements"):
        nf.dropout_mask((2**40, 2**40), 0.5, 0)
