"""GEMM: nnfast.matmul and the C++ gemm_ex (through the _core._testing.gemm hook).

Register tiles are MR x NR = 12 x 32 (AVX-512 f32), 12 x 16 (AVX-512 f64), 6 x 16 / 6 x 8 (AVX2),
6 x 8 / 6 x 4 (baseline SSE); K slices are up to 512 / 256 (AVX-512 f32 / f64), 1024 / 512
(AVX2) and 256 (baseline) deep, row blocks up to 240 / 192 rows (fewer for deep slices), column
blocks 768 (AVX-512), 3072 / 2048 (AVX2), 1024 (baseline), stretched by up to 1/8 when that saves
a block (864, 3456 / 2304, 1152). Sizes below sit on and around each of those edges.
"""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from nnfast import _core
from nnfast import reference as ref

EDGE = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 97]
# (m, n, k) triples crossing the packing blocks (MC, KC, NC) and the tiny-problem path.
BLOCKS = [
    (250, 70, 520),
    (241, 33, 1030),
    (37, 3100, 9),
    (193, 2049, 3),
    (25, 769, 513),
    (14, 1025, 257),
    (9, 865, 5),
    (5, 1153, 7),
    (4, 2305, 5),
    (3, 3457, 9),
    (8, 4, 2),
    (2, 3, 1),
]


def tol(dtype, k):
    # Rounding error of a length-k dot product of standard normals grows like sqrt(k).
    s = np.sqrt(max(k, 1))
    if dtype == np.float32:
        return dict(rtol=1e-5, atol=2e-6 * s * 4)
    return dict(rtol=1e-12, atol=1e-14 * s * 4)


def operands(rng, m, n, k, dtype, ta=False, tb=False):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    opa = (a.T if ta else a).astype(np.float64)
    opb = (b.T if tb else b).astype(np.float64)
    return a, b, opa, opb


def shapes():
    out = []
    for s in EDGE:
        out += [(s, 17, 13), (13, s, 17), (17, 13, s)]
    return out + BLOCKS


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_reference_on_every_isa(isa, dtype, ta, tb, rng):
    for m, n, k in shapes():
        a, b, opa, opb = operands(rng, m, n, k, dtype, ta, tb)
        c = _core.matmul(a, b, None, ta, tb)
        assert c.dtype == dtype and c.shape == (m, n)
        np.testing.assert_allclose(c, ref.matmul(opa, opb), **tol(dtype, k), err_msg=f"{m}x{n}x{k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_alpha_beta_bias_activation(isa, dtype, rng):
    # k = 1100 spans two K slices: beta must apply once, bias and activation only at the end.
    for m, n, k in [(29, 45, 1100), (5, 3, 7), (13, 33, 0)]:
        for ta, tb in [(False, False), (True, True)]:
            a, b, opa, opb = operands(rng, m, n, k, dtype, ta, tb)
            c0 = rng.standard_normal((m, n)).astype(dtype)
            br = rng.standard_normal(m).astype(dtype)
            bc = rng.standard_normal(n).astype(dtype)
            for act in nf._core.GEMM_ACTIVATIONS:
                c = c0.copy()
                _core._testing.gemm(a, b, c, 0.5, -1.5, ta, tb, br, bc, act)
                z = 0.5 * opa @ opb - 1.5 * c0.astype(np.float64) + br[:, None] + bc[None, :]
                np.testing.assert_allclose(
                    c, ref._ACTIVATIONS[act](z), **tol(dtype, k), err_msg=f"{act} {m}x{n}x{k}"
                )


def test_gemm_beta_zero_ignores_nan_in_c(isa):
    a = np.ones((20, 30))
    b = np.ones((30, 40))
    c = np.full((20, 40), np.nan)
    _core._testing.gemm(a, b, c, 1.0, 0.0)
    np.testing.assert_array_equal(c, 30.0)
    c = np.full((2, 3), np.nan)
    _core._testing.gemm(np.ones((2, 1)), np.ones((1, 3)), c, 1.0, 0.0)  # tiny path
    np.testing.assert_array_equal(c, 1.0)


def test_gemm_alpha_zero_does_not_read_a_b(isa):
    a = np.full((30, 40), np.nan)
    b = np.full((40, 50), np.inf)
    c = np.ones((30, 50))
    _core._testing.gemm(a, b, c, 0.0, 2.0)
    np.testing.assert_array_equal(c, 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_empty_and_degenerate(dtype):
    for m, k, n in [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 0, 1)]:
        c = nf.matmul(np.ones((m, k), dtype), np.ones((k, n), dtype))
        assert c.shape == (m, n) and c.dtype == dtype
        np.testing.assert_array_equal(c, np.zeros((m, n)))
    big_k0 = nf.matmul(np.ones((600, 0), dtype), np.ones((0, 700), dtype))
    assert not big_k0.any()


def test_matmul_bit_identical_across_thread_counts(threads, rng):
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((301, 777)).astype(dtype)
        b = rng.standard_normal((777, 419)).astype(dtype)
        with with_num_threads(1):
            expected = nf.matmul(a, b)
            expected_t = _core.matmul(a.T.copy(), b.T.copy(), None, True, True)
        np.testing.assert_array_equal(nf.matmul(a, b), expected)
        np.testing.assert_array_equal(
            _core.matmul(a.T.copy(), b.T.copy(), None, True, True), expected_t
        )


# (m, n, k, trans_a, trans_b) whose packed op(A) or op(B) is shared by the threads: columns split
# (op(A) shared), rows split (op(B) shared), one part spanning several column blocks; with partial
# panels and several K slices.
SHARED_PACKING = [
    (20, 700, 520, False, False),
    (500, 20, 120, True, False),
    (13, 1800, 50, False, True),
    (100, 33, 530, True, True),
]


@pytest.fixture
def share_every_size():
    # Shared packing starts at 64Mi multiply-adds; these shapes are small so that every ISA,
    # the scalar baseline included, runs them quickly.
    old = _core._testing.set_gemm_shared_pack_min(0)
    yield
    _core._testing.set_gemm_shared_pack_min(old)


def test_shared_pack_threshold_hook_round_trips():
    old = _core._testing.set_gemm_shared_pack_min(123)
    assert _core._testing.set_gemm_shared_pack_min(old) == 123
    with pytest.raises(ValueError, match="madds must be >= 0"):
        _core._testing.set_gemm_shared_pack_min(-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_shared_packing_on_every_isa_and_thread_count(
    isa, threads, dtype, rng, share_every_size
):
    for m, n, k, ta, tb in SHARED_PACKING:
        a, b, opa, opb = operands(rng, m, n, k, dtype, ta, tb)
        with with_num_threads(1):
            one = _core.matmul(a, b, None, ta, tb)
        got = _core.matmul(a, b, None, ta, tb)
        np.testing.assert_array_equal(got, one, err_msg=f"{m}x{n}x{k}")
        np.testing.assert_allclose(
            got, ref.matmul(opa, opb), **tol(dtype, k), err_msg=f"{m}x{n}x{k}"
        )


def test_matmul_column_blocks_across_thread_counts(threads, rng):
    # Each thread's columns are cut into column blocks of its own width: parts just below and
    # above the stretched block width (864 on AVX-512) must fit the packing space and agree.
    for n in (1727, 1729, 1760):
        a = rng.standard_normal((40, 21)).astype(np.float32)
        b = rng.standard_normal((21, n)).astype(np.float32)
        with with_num_threads(1):
            expected = nf.matmul(a, b)
        got = nf.matmul(a, b)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_allclose(got, ref.matmul(a.astype(np.float64), b), **tol(np.float32, 21))


def test_matmul_layouts(rng):
    a = rng.standard_normal((37, 53))
    b = rng.standard_normal((53, 29))
    expected = a @ b
    tol64 = tol(np.float64, 53)
    for la in (a, np.asfortranarray(a), a[:, ::-1][:, ::-1], np.repeat(a, 2, axis=1)[:, ::2]):
        for lb in (b, np.asfortranarray(b), b.T.copy().T):
            np.testing.assert_allclose(nf.matmul(la, lb), expected, **tol64)
    # Lists, integers and mixed dtypes follow the conversion policy.
    np.testing.assert_array_equal(nf.matmul([[1, 2], [3, 4]], [[1], [1]]), [[3.0], [7.0]])
    assert nf.matmul(a.astype(np.float32), b).dtype == np.float64
    assert nf.matmul(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32


def test_matmul_out(rng):
    a = rng.standard_normal((20, 30)).astype(np.float32)
    b = rng.standard_normal((30, 10)).astype(np.float32)
    out = np.empty((20, 10), np.float32)
    assert nf.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, **tol(np.float32, 30))
    with pytest.raises(ValueError, match=r"matmul: out must have shape \(20, 10\), got \(10, 20\)"):
        nf.matmul(a, b, out=np.empty((10, 20), np.float32))
    with pytest.raises(TypeError, match=r"matmul: out must have dtype float32, got float64"):
        nf.matmul(a, b, out=np.empty((20, 10)))
    sq = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"matmul: out must not overlap"):
        nf.matmul(sq, sq, out=sq)


def test_matmul_bad_inputs():
    with pytest.raises(ValueError, match=r"matmul: a must have 2 dims \(m, k\), got shape \(3,\)"):
        nf.matmul(np.ones(3), np.ones((3, 2)))
    with pytest.raises(
        ValueError, match=r"matmul: b must have 2 dims \(k, n\), got shape \(2, 3, 4\)"
    ):
        nf.matmul(np.ones((3, 2)), np.ones((2, 3, 4)))
    with pytest.raises(
        ValueError, match=r"matmul: inner dimensions must match, got a \(3, 2\) and b \(3, 2\)"
    ):
        nf.matmul(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(
        ValueError, match=r"matmul: b must have the dtype of a \(float32\), got float64"
    ):
        _core.matmul(np.ones((2, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(
        TypeError, match=r"matmul: a must be a float32 or float64 array, got dtype complex128"
    ):
        nf.matmul(np.ones((2, 2), complex), np.ones((2, 2)))


def test_matmul_impossible_size_is_memory_error():
    # (2^21 x 0) @ (0 x 2^21): a valid 2^42-element result that cannot be allocated.
    with pytest.raises(MemoryError):
        nf.matmul(np.empty((2**21, 0)), np.empty((0, 2**21)))


def test_matmul_matches_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((67, 129))
    b = rng.standard_normal((129, 45))
    expected = torch.mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(nf.matmul(a, b), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 40),
    n=st.integers(0, 70),
    k=st.integers(0, 40),
    sa=st.sampled_from([(1, 1), (2, 1), (1, 3)]),
    f32=st.booleans(),
)
def test_matmul_property_strided_views(m, n, k, sa, f32):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    dtype = np.float32 if f32 else np.float64
    a = rng.standard_normal((m * sa[0], k * sa[1])).astype(dtype)[:: sa[0], :: sa[1]]
    b = rng.standard_normal((k, n)).astype(dtype)
    c = nf.matmul(a, b)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, **tol(dtype, k))
