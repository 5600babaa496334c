"""Activations (sigmoid, tanh, their derivatives, relu_derivative) and softmax along any axis."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import THREAD_COUNTS, with_num_threads
from nnfast import reference as ref

ELEMENTWISE = ["sigmoid", "tanh", "relu_derivative", "sigmoid_derivative", "tanh_derivative"]
REF = {name: getattr(ref, name) for name in ELEMENTWISE + ["relu"]}

# Around every vector width (4/8/16 floats, 2/4/8 doubles), the 4x unroll, and the thread grains.
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 97, 127, 1021, 16385, 70001]

# Measured maximum: 2.9 ulp (float32), 2.5 ulp (float64); the float64 reference adds its own few
# ulps. atol covers subnormal results (granularity of the smallest subnormal).
TOL = {
    np.float32: dict(rtol=8 * 2.0**-24, atol=4e-45),
    np.float64: dict(rtol=12 * 2.0**-53, atol=1e-322),
}


def _inputs(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    z = rng.standard_normal(n) * 6
    z[::7] *= 10  # tails, where exp underflows
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_reference_on_every_isa(isa, name, dtype, rng):
    fn = getattr(nf, name)
    for n in SIZES:
        z = _inputs(rng, n, dtype)
        y = fn(z)
        assert y.dtype == dtype and y.shape == z.shape
        np.testing.assert_allclose(y, REF[name](z.astype(np.float64)), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_relative_accuracy_over_the_range(isa, name, dtype):
    # Tiny inputs (tanh(1e-8) must be 1e-8, not 0 or 1e-8 with few digits) and both tails.
    mag = np.logspace(-30, np.log10(80 if dtype == np.float32 else 700), 3000)
    z = np.concatenate([mag, -mag, np.linspace(-40, 40, 4001)]).astype(dtype)
    np.testing.assert_allclose(getattr(nf, name)(z), REF[name](z.astype(np.float64)), **TOL[dtype])
    if name == "tanh":
        assert nf.tanh(np.array(1e-8, dtype)) == dtype(1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(isa, dtype):
    z = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1e4, -1e4, 1e-8, -1e-8], dtype=dtype)
    s, t = nf.sigmoid(z), nf.tanh(z)
    ds, dt, dr = nf.sigmoid_derivative(z), nf.tanh_derivative(z), nf.relu_derivative(z)
    for y in (s, t, ds, dt):
        assert np.isnan(y[0])
    np.testing.assert_array_equal(s[1:7], [0, 1, 0.5, 0.5, 1, 0])
    np.testing.assert_array_equal(t[1:7], [-1, 1, -0.0, 0.0, 1, -1])
    assert np.signbit(t[3]) and not np.signbit(t[4])  # tanh(-0.0) = -0.0, like np.tanh
    np.testing.assert_array_equal(ds[1:7], [0, 0, 0.25, 0.25, 0, 0])
    np.testing.assert_array_equal(dt[1:7], [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(dr, [0, 0, 1, 0, 0, 1, 0, 1, 0])
    np.testing.assert_allclose(t[7:], [1e-8, -1e-8], rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_allclose(s[7:], [0.5 + 0.25e-8, 0.5 - 0.25e-8], rtol=np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_edges_through_sigmoid(isa, dtype):
    # sigmoid(z) = exp(z) (1 - ...) far in the left tail: exercises exp's subnormal results,
    # its underflow to exactly 0, and the overflow side (exp(-z) for z << 0 never overflows).
    lo = -103.0 if dtype == np.float32 else -744.0
    z = np.linspace(lo + 30, lo, 2001).astype(dtype)
    np.testing.assert_allclose(nf.sigmoid(z), ref.sigmoid(z.astype(np.float64)), **TOL[dtype])
    assert nf.sigmoid(np.array([lo - 2], dtype))[0] == 0
    big = np.array([lo - 2, -lo + 2], dtype)
    np.testing.assert_array_equal(nf.tanh_derivative(big), [0, 0])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_bit_identical_across_thread_counts(name, rng):
    z = _inputs(rng, 300_001, np.float32)
    fn = getattr(nf, name)
    with with_num_threads(1):
        want = fn(z)
    for t in THREAD_COUNTS:
        with with_num_threads(t):
            np.testing.assert_array_equal(fn(z), want)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_layouts_out_and_inplace(name, rng):
    fn = getattr(nf, name)
    z = rng.standard_normal((5, 6, 7)) * 3
    want = fn(np.ascontiguousarray(z))
    np.testing.assert_array_equal(fn(np.asfortranarray(z)), want)
    np.testing.assert_array_equal(fn(z[:, ::2]), want[:, ::2])
    np.testing.assert_array_equal(fn(z.astype(np.float32)), fn(z.astype(np.float32).copy()))
    out = np.empty_like(z)
    assert fn(z, out=out) is out
    np.testing.assert_array_equal(out, want)
    same = z.copy()
    assert fn(same, out=same) is same
    np.testing.assert_array_equal(same, want)
    assert fn(np.empty((0, 3))).shape == (0, 3)
    y = fn(0.5)
    assert np.ndim(y) == 0 and isinstance(y, np.float64)
    np.testing.assert_array_equal(fn([[0.5, -1]]), fn(np.array([[0.5, -1.0]])))
    np.testing.assert_array_equal(fn(np.arange(-3, 3)), fn(np.arange(-3.0, 3.0)))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_derivatives_match_central_differences(name, rng):
    f, df = getattr(nf, name), getattr(nf, name + "_derivative")
    z = rng.standard_normal(2000) * 4
    z = z[np.abs(z) > 1e-3]  # relu has a kink at 0
    h = 1e-6
    fd = (f(z + h) - f(z - h)) / (2 * h)
    np.testing.assert_allclose(df(z), fd, rtol=1e-6, atol=1e-9)


def test_tutorial_formulas():
    # The tutorial's own code for the derivatives (where it is accurate: moderate z).
    z = np.linspace(-6, 6, 100)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(nf.sigmoid(z), s, rtol=1e-15)
    np.testing.assert_allclose(nf.sigmoid_derivative(z), s * (1 - s), rtol=1e-13)
    # 1 - tanh**2 cancels for large |z|: agree to its absolute accuracy.
    np.testing.assert_allclose(nf.tanh_derivative(z), 1 - np.tanh(z) ** 2, rtol=1e-12, atol=4e-16)
    np.testing.assert_array_equal(nf.relu_derivative(z), (z > 0).astype(float))


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_matches_torch(name, rng):
    torch = pytest.importorskip("torch")
    for dtype in (np.float32, np.float64):
        z = _inputs(rng, 10_001, dtype)
        want = getattr(torch, name)(torch.from_numpy(z)).numpy()
        # torch flushes results below the smallest normal number to 0
        tiny = np.finfo(dtype).tiny
        np.testing.assert_allclose(
            getattr(nf, name)(z), want, rtol=8 * np.finfo(dtype).eps, atol=tiny
        )
    z = torch.tensor(_inputs(rng, 1000, np.float64), requires_grad=True)
    getattr(torch, name)(z).sum().backward()
    dz = getattr(nf, name + "_derivative")(z.detach().numpy())
    # torch's gradient comes from the rounded output (s * (1 - s)): absolute accuracy only.
    np.testing.assert_allclose(dz, z.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_bad_input(name):
    fn = getattr(nf, name)
    with pytest.raises(
        TypeError, match=rf"{name}: z must be a float32 or float64 array, got dtype complex128"
    ):
        fn(np.ones(3, dtype=complex))
    with pytest.raises(
        TypeError, match=rf"{name}: z must be a float32 or float64 array, got dtype object"
    ):
        fn(np.array([1, None], dtype=object))
    with pytest.raises(TypeError, match=rf"{name}: z must be an array of numbers, got str"):
        fn("abc")
    with pytest.raises(ValueError, match=rf"{name}: z could not be converted to an array"):
        fn([[1, 2], [3]])
    z = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match=rf"{name}: out must have dtype float32, got float64"):
        fn(z, out=np.empty(4))
    with pytest.raises(ValueError, match=rf"{name}: out must have shape \(4,\), got \(5,\)"):
        fn(z, out=np.empty(5, dtype=np.float32))
    big = np.ones(8, dtype=np.float32)
    with pytest.raises(ValueError, match=rf"{name}: out must not overlap an input"):
        fn(big[:4], out=big[2:6])


# ----------------------------------------------------------------------------- softmax


def _softmax_ref(z: np.ndarray, axis: int) -> np.ndarray:
    return ref.softmax(z.astype(np.float64), axis=axis)


def _sm_tol(z: np.ndarray) -> dict:
    # The float64 reference rounds z - max(z) (nnfast restores that error): for float64 inputs
    # allow the reference's own error, |z - max| / 2 ulps.
    tol = dict(TOL[z.dtype.type])
    if z.dtype == np.float64 and z.size:
        tol["rtol"] += 2.0**-53 * 4 * float(np.max(np.abs(z)))
    return tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_every_axis_on_every_isa(isa, dtype, rng):
    # Inner sizes around the vector widths (strided path) and row lengths around them (row path).
    for shape in [(3, 17, 5), (2, 9, 33), (4, 1, 16), (1, 31, 7), (65, 2, 3), (2, 3, 4, 9)]:
        z = (rng.standard_normal(shape) * 5).astype(dtype)
        for axis in range(-len(shape), len(shape)):
            y = nf.softmax(z, axis=axis)
            assert y.dtype == dtype and y.shape == z.shape
            np.testing.assert_allclose(y, _softmax_ref(z, axis), **_sm_tol(z))
            np.testing.assert_allclose(y.sum(axis=axis), 1, rtol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_row_lengths_on_every_isa(isa, dtype, rng):
    for n in SIZES[1:]:
        z = (rng.standard_normal((3, n)) * 10).astype(dtype)
        np.testing.assert_allclose(nf.softmax(z), _softmax_ref(z, -1), **_sm_tol(z))
        np.testing.assert_allclose(nf.softmax(z.T, axis=0), _softmax_ref(z.T, 0), **_sm_tol(z))


def test_softmax_stability_and_specials(isa):
    z = np.array(
        [[1e4, -1e4, 0], [-1e4, -1e4, -1e4], [np.nan, 1, 2], [np.inf, 1, 2], [-np.inf, 0, 0]]
    )
    y = nf.softmax(z)
    np.testing.assert_array_equal(y[0], [1, 0, 0])
    np.testing.assert_allclose(y[1], 1 / 3, rtol=1e-15)
    assert np.isnan(y[2]).all() and np.isnan(y[3]).all()  # NumPy's reference gives NaN too
    np.testing.assert_array_equal(y[4], [0, 0.5, 0.5])
    yc = nf.softmax(np.ascontiguousarray(z.T), axis=0)
    np.testing.assert_array_equal(yc[:, [0, 1, 4]], y[[0, 1, 4]].T)
    assert np.isnan(yc[:, 2:4]).all()


def test_softmax_shapes_layouts_out_inplace(rng):
    z = rng.standard_normal((4, 5, 6))
    for axis in (0, 1, 2):
        want = nf.softmax(z, axis)
        np.testing.assert_array_equal(nf.softmax(np.asfortranarray(z), axis), want)
        out = np.empty_like(z)
        assert nf.softmax(z, axis, out=out) is out
        np.testing.assert_array_equal(out, want)
        same = z.copy()
        assert nf.softmax(same, axis=axis, out=same) is same
        np.testing.assert_array_equal(same, want)
    np.testing.assert_array_equal(nf.softmax(z[:, ::2], 1), nf.softmax(z[:, ::2].copy(), 1))
    assert nf.softmax(np.empty((0, 3))).shape == (0, 3)
    assert nf.softmax(np.empty((3, 0)), axis=0).shape == (3, 0)
    np.testing.assert_array_equal(nf.softmax(np.ones((2, 1))), [[1.0], [1.0]])
    np.testing.assert_allclose(nf.softmax([1, 2, 3]), ref.softmax(np.array([1.0, 2, 3])))
    np.testing.assert_array_equal(nf.softmax(z, np.int64(1)), nf.softmax(z, 1))


# Row maxima reaching each way softmax shifts a row (see vmath::row_softmax_exp): below 0 (shift
# by the max, split exactly), in [0, ~80] (no shift), above it, and beyond +-16384 (plain
# difference); row lengths around the vector widths.
SOFTMAX_OFFSETS = [-3e4, -1e4, -100.0, -7.5, -1e-3, 0.0, 2.5, 60.0, 90.0, 700.0, 1e4, 3e4]
SOFTMAX_LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_every_shift_path_on_every_isa(isa, dtype, rng):
    for n in SOFTMAX_LENGTHS:
        z = rng.standard_normal((len(SOFTMAX_OFFSETS), n)) * 8
        z += np.array(SOFTMAX_OFFSETS)[:, None]
        z[:, 0] = np.array(SOFTMAX_OFFSETS)  # the offset itself, exactly, in every row
        z = z.astype(dtype)
        y = nf.softmax(z)
        np.testing.assert_allclose(y, _softmax_ref(z, -1), **_sm_tol(z))
        np.testing.assert_allclose(y.sum(axis=1), 1, rtol=8 * np.finfo(dtype).eps)
        inplace = z.copy()
        nf.softmax(inplace, out=inplace)
        np.testing.assert_array_equal(inplace, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_one_hot_rows_are_exact(isa, dtype):
    # One element, or one whose exp the others cannot move: exactly 1 there, as in NumPy.
    for v in [-1e5, -3.7, -1e-3, 0.0, 1e-3, 3.7, 50.0, 85.0, 1e5]:
        np.testing.assert_array_equal(nf.softmax(np.array([[v]], dtype)), [[1]])
    gap = 20.0 if dtype == np.float32 else 40.0
    for v in [-50.0, -0.3, 0.0, 0.3, 30.0, 200.0]:
        z = np.array([[v, v - gap], [v - gap - 1, v]], dtype)
        y = nf.softmax(z)
        assert y[0, 0] == 1 and y[1, 1] == 1
        np.testing.assert_allclose([y[0, 1], y[1, 0]], np.exp([-gap, -gap - 1]), rtol=4e-6)
        inplace = z.copy()
        np.testing.assert_array_equal(nf.softmax(inplace, out=inplace), y)


def test_softmax_many_short_rows_bit_identical_across_thread_counts(rng):
    # Rows are handed out to threads as they free up: any split gives the same bits.
    z = (rng.standard_normal((20_000, 7)) * 4 + rng.standard_normal((20_000, 1)) * 30).astype(
        np.float32
    )
    with with_num_threads(1):
        want = nf.softmax(z)
    for t in THREAD_COUNTS:
        with with_num_threads(t):
            np.testing.assert_array_equal(nf.softmax(z), want)


def test_softmax_bit_identical_across_thread_counts(rng):
    for shape, axis in [((300, 1000), -1), ((50, 40, 200), 1), ((1, 3000, 17), 1)]:
        z = rng.standard_normal(shape).astype(np.float32)
        with with_num_threads(1):
            want = nf.softmax(z, axis)
        for t in THREAD_COUNTS:
            with with_num_threads(t):
                np.testing.assert_array_equal(nf.softmax(z, axis), want)


def test_softmax_matches_torch(rng):
    torch = pytest.importorskip("torch")
    z = rng.standard_normal((7, 9, 11)) * 4
    for axis in range(3):
        want = torch.softmax(torch.from_numpy(z), dim=axis).numpy()
        np.testing.assert_allclose(nf.softmax(z, axis), want, rtol=1e-14, atol=1e-300)


def test_softmax_bad_input():
    z = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"softmax: axis must be in \[-2, 1\], got 2$"):
        nf.softmax(z, axis=2)
    with pytest.raises(ValueError, match=r"softmax: axis must be in \[-2, 1\], got -3"):
        nf.softmax(z, axis=-3)
    with pytest.raises(
        ValueError, match=r"softmax: axis must be in \[-2, 1\], got 1180591620717411303424"
    ):
        nf.softmax(z, axis=2**70)
    with pytest.raises(TypeError, match=r"softmax: axis must be an integer, got bool"):
        nf.softmax(z, axis=True)
    with pytest.raises(TypeError, match=r"softmax: axis must be an integer, got float"):
        nf.softmax(z, axis=1.0)
    with pytest.raises(TypeError, match=r"softmax: axis must be an integer, got NoneType"):
        nf.softmax(z, axis=None)
    with pytest.raises(ValueError, match=r"softmax: z must have at least 1 dim, got a 0-d array"):
        nf.softmax(3.0)
    with pytest.raises(
        TypeError, match=r"softmax: z must be a float32 or float64 array, got dtype complex128"
    ):
        nf.softmax(np.ones(3, dtype=complex))
    with pytest.raises(TypeError, match=r"softmax: z must be an array of numbers, got str"):
        nf.softmax("abc")
    with pytest.raises(ValueError, match=r"softmax: out must have shape \(2, 3\), got \(3, 2\)"):
        nf.softmax(z, out=np.empty((3, 2)))
    with pytest.raises(ValueError, match=r"softmax: out must not overlap an input"):
        big = np.ones(12)
        nf.softmax(big[:6].reshape(2, 3), out=big[3:9].reshape(2, 3))


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softmax"])
def test_dense_epilogue_uses_the_same_kernels(isa, act, rng):
    # One mechanism: the GEMM's fused activation computes the same bits as the standalone op.
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((37, 19)).astype(dtype)
        w = rng.standard_normal((19, 45)).astype(dtype)
        np.testing.assert_array_equal(nf.dense(x, w, None, act), getattr(nf, act)(nf.matmul(x, w)))
