"""Convolution: forward (direct and im2col + GEMM), backward, the tutorial's example, bad inputs."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import _core
from nnfast import reference as ref

ALGOS = ["direct", "im2col"]
# (N, C, H, W, O, kh, kw, stride, padding): N of 0, 1 and odd; H != W; odd sizes; 1x1..7x7 and
# non-square kernels; strides 1-3; paddings 0-3; output rows around the vector widths.
CASES = [
    (1, 1, 28, 28, 32, 3, 3, 1, 1),
    (3, 2, 9, 13, 5, 3, 2, 1, 0),
    (2, 3, 11, 7, 4, 5, 5, 2, 3),
    (1, 4, 6, 5, 3, 1, 1, 3, 0),
    (5, 1, 8, 19, 9, 7, 7, (1, 2), (3, 2)),
    (0, 2, 5, 5, 3, 3, 3, 1, 1),
    (2, 5, 12, 17, 13, 2, 4, (2, 1), (1, 0)),
    (1, 3, 4, 33, 2, 4, 1, 1, "same"),
    (2, 2, 7, 9, 3, 2, 2, 1, "same"),
    (3, 8, 10, 10, 16, 3, 3, 1, "valid"),
    (1, 2, 3, 2, 1, 3, 2, 3, 2),
    (2, 3, 5, 6, 4, 1, 2, 1, (2, 1)),  # stride 1, padding beyond the kernel: grad_x by col2im
    # Wide layers: output channels along the vectors (forward, grad_x and grad_w), with rows split
    # into runs of positions (17 wide), 5 or 1 positions, one or more channel blocks and a partial
    # last block (24 of 32 lanes), tap runs of 12 and 16 input channels.
    (1, 12, 5, 3, 32, 2, 3, 1, (1, 2)),
    (3, 16, 6, 17, 64, 3, 3, 1, 0),
    (2, 8, 4, 1, 24, 1, 1, 1, 0),
    (2, 9, 9, 31, 40, 3, 3, 1, 1),
    # Few taps, 3x3 (the row-wise kernel's unrolled taps): a partial channel block, 18-wide rows.
    (2, 2, 9, 18, 10, 3, 3, 1, 1),
]


def tol(dtype, taps):
    s = np.sqrt(max(taps, 1))
    if dtype == np.float32:
        return dict(rtol=1e-5, atol=2e-6 * s)
    return dict(rtol=1e-12, atol=1e-13 * s)


def make(rng, case, dtype):
    n, c, h, w, o, kh, kw, stride, padding = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((o, c, kh, kw)) / np.sqrt(c * kh * kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, wt, b, stride, padding


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_forward_matches_reference(isa, dtype, algo, rng):
    for case in CASES:
        x, w, b, s, p = make(rng, case, dtype)
        want = ref.conv2d(*f64(x, w, b), s, p)
        taps = w[0].size
        for act in ("linear", "relu"):
            y = _core.conv2d(x, w, b, s, p, None, act, algo)
            assert y.dtype == dtype and y.shape == want.shape, case
            w_act = np.maximum(want, 0) if act == "relu" else want
            np.testing.assert_allclose(y, w_act, **tol(dtype, taps), err_msg=str(case))
        y = _core.conv2d(x, w, None, s, p, None, "linear", algo)
        np.testing.assert_allclose(y, ref.conv2d(*f64(x, w), None, s, p), **tol(dtype, taps))


def test_conv2d_sigmoid_tanh_fused(rng):
    x, w, b, s, p = make(rng, CASES[1], np.float64)
    z = ref.conv2d(x, w, b, s, p)
    for algo in ALGOS:
        np.testing.assert_allclose(
            _core.conv2d(x, w, b, s, p, None, "sigmoid", algo), 1 / (1 + np.exp(-z)), rtol=1e-13
        )
        np.testing.assert_allclose(
            _core.conv2d(x, w, b, s, p, None, "tanh", algo), np.tanh(z), rtol=1e-13, atol=1e-15
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_backward_matches_reference(isa, dtype, rng):
    for case in CASES:
        x, w, b, s, p = make(rng, case, dtype)
        y = nf.conv2d(x, w, b, s, p)
        g = rng.standard_normal(y.shape).astype(dtype)
        gx, gw, gb = nf.conv2d_backward(x, w, g, s, p)
        wx, ww, wb = ref.conv2d_backward(*f64(x, w, g), s, p)
        n, o, ho, wo = y.shape
        for name, got, want, k in (
            ("grad_x", gx, wx, o * w.shape[2] * w.shape[3]),
            ("grad_w", gw, ww, n * ho * wo),
            ("grad_b", gb, wb, n * ho * wo),
        ):
            assert got.dtype == dtype and got.shape == want.shape, (name, case)
            np.testing.assert_allclose(got, want, **tol(dtype, k), err_msg=f"{name} {case}")
        gx2, gw2, gb2 = nf.conv2d_backward(x, w, g, s, p, need_grad_x=False)
        assert gx2 is None
        np.testing.assert_array_equal(gw2, gw)
        np.testing.assert_array_equal(gb2, gb)


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[4], CASES[8], CASES[12]])
def test_conv2d_backward_finite_differences(case, rng):
    # L = sum(g * conv2d(x, w, b)); central differences in float64 for x, w and b.
    x, w, b, s, p = make(rng, case, np.float64)
    x, w = x[:2], w
    g = rng.standard_normal(nf.conv2d(x, w, b, s, p).shape)
    gx, gw, gb = nf.conv2d_backward(x, w, g, s, p)

    def loss(xx, ww, bb):
        return float(np.sum(g * nf.conv2d(xx, ww, bb, s, p)))

    eps = 1e-6
    for arr, grad, name in ((x, gx, "x"), (w, gw, "w"), (b, gb, "b")):
        flat = arr.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        for i in picks:
            old = flat[i]
            flat[i] = old + eps
            up = loss(x, w, b)
            flat[i] = old - eps
            down = loss(x, w, b)
            flat[i] = old
            num = (up - down) / (2 * eps)
            assert abs(grad.reshape(-1)[i] - num) <= 1e-6 * max(1.0, abs(num)), (name, i)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    for case in CASES:
        x, w, b, s, p = make(rng, case, np.float64)
        tx = torch.from_numpy(x).requires_grad_()
        tw = torch.from_numpy(w).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()
        ty = tf.conv2d(tx, tw, tb, stride=s, padding=p)
        g = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(
            nf.conv2d(x, w, b, s, p), ty.detach().numpy(), rtol=1e-12, atol=1e-12
        )
        gx, gw, gb = nf.conv2d_backward(x, w, g, s, p)
        if x.size:
            np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv2d_thread_determinism(rng):
    for case in [
        (9, 3, 20, 23, 10, 3, 3, 1, 1),
        (7, 32, 14, 14, 64, 3, 3, 1, 1),
        (5, 1, 28, 28, 8, 5, 5, 2, 2),
    ]:
        x, w, b, s, p = make(rng, case, np.float32)
        y = nf.conv2d(x, w, b, s, p)
        g = rng.standard_normal(y.shape).astype(np.float32)
        results = []
        for t in (1, 2, 3, 4):
            with with_num_threads(t):
                outs = [_core.conv2d(x, w, b, s, p, None, "relu", a) for a in ALGOS]
                results.append(outs + list(nf.conv2d_backward(x, w, g, s, p)))
        for r in results[1:]:
            for a, b_ in zip(results[0], r):
                np.testing.assert_array_equal(a, b_)


def test_conv2d_tutorial_edge_example():
    # The tutorial's Part 3 example: an 8x8 image with a vertical edge, integer kernels.
    image = np.zeros((8, 8))
    image[:, 4:8] = 255
    vertical = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])
    horizontal = np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    v = nf.conv2d(image, vertical)
    h = nf.conv2d(image, horizontal)
    assert v.shape == (6, 6) and v.dtype == np.float64
    assert np.max(np.abs(v)) == 765.0
    assert np.max(np.abs(h)) == 0.0
    np.testing.assert_array_equal(v, ref.conv2d(image, vertical))
    pooled = nf.max_pool2d(nf.relu(v), 2)
    assert pooled.shape == (3, 3)
    np.testing.assert_array_equal(pooled, [[0, 765, 0]] * 3)


def test_conv2d_single_image_forms(rng):
    x = rng.standard_normal((28, 28))
    k = rng.standard_normal((3, 3))
    for algo in ALGOS:
        np.testing.assert_allclose(
            _core.conv2d(x, k, None, 1, 0, None, "linear", algo),
            ref.conv2d(x, k),
            rtol=1e-13,
            atol=1e-13,
        )
    np.testing.assert_allclose(
        nf.conv2d(x, k, 0.5, padding="same"),
        ref.conv2d(x, k, None, 1, "same") + 0.5,
        rtol=1e-13,
        atol=1e-13,
    )
    gx, gw, gb = nf.conv2d_backward(x, k, np.ones((26, 26)))
    assert gx.shape == (28, 28) and gw.shape == (3, 3) and gb.shape == () and gb == 26 * 26
    # Lists, integer arrays and mixed dtypes follow the conversion policy.
    y = nf.conv2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[1, 0], [0, -1]])
    np.testing.assert_array_equal(y, [[-4, -4], [-4, -4]])
    assert y.dtype == np.float64
    assert nf.conv2d(x.astype(np.float32), k).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_line_aligned_kernel_any_out_alignment(rng, isa, dtype):
    # Few taps with rows as wide as the input take the line-aligned kernel (vectors along each
    # plane on a grid aligned to y's cache lines, masked first and last lines): an out= at every
    # element offset within a line gives the same bits, and nothing outside out is written.
    cases = [
        (3, 1, 28, 28, 32, 3, 3, 1),  # the C=1 MNIST layer
        (2, 2, 9, 18, 10, 3, 3, 1),  # partial channel block, plane not a whole number of lines
        (1, 3, 4, 33, 2, 4, 1, "same"),  # generic (not 3x3) taps
        (2, 1, 5, 17, 9, 1, 3, (0, 1)),
    ]
    for n, c, h, w, o, kh, kw, p in cases:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        x[0, 0, 1, 2] = np.nan
        wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
        b = rng.standard_normal(o).astype(dtype)
        assert "line-aligned" in _core._conv2d_kernels(x, wt, 1, p)
        want = nf.conv2d(x, wt, b, 1, p, activation="relu")
        np.testing.assert_allclose(
            want, np.maximum(ref.conv2d(*f64(x, wt, b), 1, p), 0), **tol(dtype, c * kh * kw)
        )
        for off in range(64 // np.dtype(dtype).itemsize):
            buf = np.full(want.size + 64, 7.0, dtype)
            out = buf[off : off + want.size].reshape(want.shape)
            nf.conv2d(x, wt, b, 1, p, out=out, activation="relu")
            np.testing.assert_array_equal(out, want)
            assert (buf[:off] == 7).all() and (buf[off + want.size :] == 7).all()


INT_KERNEL_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64]
INT_KERNEL_DTYPES += [np.uint64, np.bool_, np.dtype(">i4"), np.dtype("<i2").newbyteorder()]


@pytest.mark.parametrize("dtype", INT_KERNEL_DTYPES, ids=str)
def test_conv2d_integer_kernel_converted_in_binding(rng, isa, dtype):
    # The binding converts an integer/bool kernel given with a float64 x itself (the tutorial's
    # call); the result must be the policy's: exactly the float64 kernel's. Kernels beyond the
    # binding's stack buffer (9x9), 4-D kernels, non-native byte order (left to the Python policy),
    # and a non-contiguous kernel go through the same check.
    x2 = rng.uniform(0, 255, (12, 11))
    x4 = rng.standard_normal((2, 3, 9, 10))
    for x, shape in [(x2, (3, 3)), (x2, (9, 9)), (x2, (1, 2)), (x4, (4, 3, 3, 2))]:
        k = rng.integers(0, 2 if dtype == np.bool_ else 100, shape).astype(dtype)
        want = nf.conv2d(x, k.astype(np.float64), padding=1)
        got = nf.conv2d(x, k, padding=1)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
        if k.dtype.isnative:
            np.testing.assert_array_equal(_core.conv2d(x, k, None, 1, 1, None, "linear"), want)
        kt = np.asfortranarray(k)
        np.testing.assert_array_equal(nf.conv2d(x, kt, padding=1), want)
    # Only with a float64 x: the policy promotes float32 x with an integer kernel to float64.
    with pytest.raises(TypeError, match="conv2d: w must have dtype float32 or float64, got int64"):
        _core.conv2d(x2.astype(np.float32), np.ones((3, 3), np.int64), None, 1, 0, None, "linear")
    assert nf.conv2d(x2.astype(np.float32), np.ones((3, 3), np.int64)).dtype == np.float64
    # Bad shapes of an integer kernel give the float kernel's messages.
    with pytest.raises(ValueError, match=r"conv2d: w must have 2 dims \(kh, kw\) for a 2-D"):
        nf.conv2d(x2, np.ones((1, 3, 3), np.int64))
    with pytest.raises(ValueError, match=r"conv2d: the kernel \(13, 1\) is larger than"):
        nf.conv2d(x2, np.ones((13, 1), np.int64))
    # The converted kernel is a copy: out may share the integer kernel's bytes.
    buf = np.zeros(10 * 9, np.float64)
    k = buf[:9].view(np.int64).reshape(3, 3)
    k[...] = np.arange(9).reshape(3, 3)
    want = nf.conv2d(x2, np.arange(9.0).reshape(3, 3))
    out = buf.reshape(10, 9)
    assert nf.conv2d(x2, k, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_conv2d_out_and_layouts(rng):
    x, w, b, s, p = make(rng, CASES[1], np.float32)
    want = nf.conv2d(x, w, b, s, p)
    out = np.empty_like(want)
    assert nf.conv2d(x, w, b, s, p, out=out) is out
    np.testing.assert_array_equal(out, want)
    xf = np.asfortranarray(x)
    np.testing.assert_array_equal(nf.conv2d(xf, w, b, s, p), want)
    big = np.zeros((x.shape[0], x.shape[1], x.shape[2], 2 * x.shape[3]), np.float32)
    big[..., ::2] = x
    np.testing.assert_array_equal(nf.conv2d(big[..., ::2], w, b, s, p), want)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv2d_same_padding_even_kernel_like_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 4, 2))
    y = nf.conv2d(x, w, padding="same")
    assert y.shape == (2, 4, 7, 6)
    t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same")
    np.testing.assert_allclose(y, t.numpy(), rtol=1e-12, atol=1e-12)


def test_conv2d_nan_propagates():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    y = nf.conv2d(x, np.ones((1, 1, 2, 2)), activation="relu")
    assert np.isnan(y[0, 0, :2, :2]).all() and not np.isnan(y[0, 0, 2:, 2:]).any()


X4 = np.zeros((2, 3, 8, 8))
W4 = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(w=np.zeros((4, 3, 9, 9))),
            ValueError,
            r"conv2d: the kernel \(9, 9\) is larger than the padded input \(8, 8\)",
        ),
        (dict(stride=0), ValueError, r"conv2d: stride must be in \[1, "),
        (dict(stride=-1), ValueError, r"conv2d: stride must be in \[1, "),
        (
            dict(stride=2**63),
            ValueError,
            r"conv2d: stride must be in \[1, 9223372036854775807\], got 9223372036854775808",
        ),
        (dict(stride=2**70), ValueError, r"conv2d: stride must be in"),
        (dict(stride=(1, 0)), ValueError, r"conv2d: stride\[1\] must be in \[1, "),
        (
            dict(stride=(1, 2, 3)),
            ValueError,
            r"conv2d: stride must be an int or a pair of ints, got a tuple of length 3",
        ),
        (
            dict(stride=np.array([1, 2])),
            TypeError,
            r"conv2d: stride must be an integer, got a int64 array of shape \(2,\)",
        ),
        (dict(stride=1.5), TypeError, r"conv2d: stride must be an integer, got float"),
        (dict(stride="1"), TypeError, r"conv2d: stride must be an integer, got str"),
        (dict(padding=-1), ValueError, r"conv2d: padding must be in \[0, "),
        (dict(padding=(0, -2)), ValueError, r"conv2d: padding\[1\] must be in \[0, "),
        (
            dict(padding="full"),
            ValueError,
            r"conv2d: padding must be an int, a pair of ints, 'valid' or 'same', got 'full'",
        ),
        (
            dict(padding="same", stride=2),
            ValueError,
            r"conv2d: padding='same' needs stride 1, got stride \(2, 2\)",
        ),
        (
            dict(w=np.zeros((4, 2, 3, 3))),
            ValueError,
            r"conv2d: w must have in_channels = x.shape\[1\] = 3, got w of shape \(4, 2, 3, 3\)",
        ),
        (
            dict(w=np.zeros((3, 3))),
            ValueError,
            r"conv2d: w must have 4 dims \(out_channels, in_channels, kh, kw\), got shape \(3, 3\)",
        ),
        (
            dict(x=np.zeros((3, 8, 8))),
            ValueError,
            r"conv2d: x must have 4 dims \(N, C, H, W\) or 2 dims \(H, W\), got shape \(3, 8, 8\)",
        ),
        (
            dict(x=np.zeros((8, 8))),
            ValueError,
            r"conv2d: w must have 2 dims \(kh, kw\) for a 2-D image x, got shape \(4, 3, 3, 3\)",
        ),
        (dict(w=np.zeros((4, 3, 0, 3))), ValueError, r"conv2d: the kernel must be at least 1x1"),
        (
            dict(b=np.zeros(3)),
            ValueError,
            r"conv2d: b must have shape \(out_channels,\) = \(4,\), got \(3,\)",
        ),
        (dict(b=np.zeros((4, 1))), ValueError, r"conv2d: b must have shape \(out_channels,\)"),
        (
            dict(activation="softmax"),
            ValueError,
            r"conv2d: activation must be one of 'linear', 'relu', 'sigmoid' or 'tanh', got 'softmax'",
        ),
        (
            dict(x=np.zeros((2, 3, 8, 8), np.complex128)),
            TypeError,
            r"conv2d: x must be a float32 or float64 array",
        ),
        (dict(x="image"), TypeError, r"conv2d: x must be an array of numbers, got str"),
        (dict(padding=2**40 + 1), ValueError, r"conv2d: padding must be in \[0, 1099511627776\]"),
        (
            dict(x=np.zeros((1, 1, 1, 1)), w=np.zeros((1, 1, 1, 1)), padding=2**30),
            ValueError,
            r"conv2d: the output of shape \(1, 1, 2147483649, 2147483649\) has more elements than can be addressed",
        ),
        (
            dict(x=np.zeros((1, 1, 1, 1)), w=np.zeros((1, 1, 1, 1)), padding=2**18),
            MemoryError,
            None,
        ),
    ],
)
def test_conv2d_bad_inputs(kwargs, exc, match):
    args = dict(x=X4, w=W4, b=None, stride=1, padding=0)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        nf.conv2d(**args)


def test_conv2d_out_checks():
    y = nf.conv2d(X4, W4)
    with pytest.raises(
        ValueError, match=r"conv2d: out must have shape \(2, 4, 6, 6\), got \(2, 4, 6, 5\)"
    ):
        nf.conv2d(X4, W4, out=np.empty((2, 4, 6, 5)))
    with pytest.raises(TypeError, match=r"conv2d: out must have dtype float64, got float32"):
        nf.conv2d(X4, W4, out=np.empty(y.shape, np.float32))
    with pytest.raises(ValueError, match=r"conv2d: out must not overlap an input"):
        x = np.zeros((1, 1, 3, 3))
        nf.conv2d(x, np.ones((1, 1, 1, 1)), out=x)


def test_conv2d_backward_bad_inputs():
    g = np.zeros((2, 4, 6, 6))
    with pytest.raises(
        ValueError,
        match=r"conv2d_backward: grad_y must have the output's shape \(N, out_channels, Ho, Wo\) = \(2, 4, 6, 6\), got \(2, 4, 6, 5\)",
    ):
        nf.conv2d_backward(X4, W4, np.zeros((2, 4, 6, 5)))
    with pytest.raises(ValueError, match=r"conv2d_backward: stride must be in"):
        nf.conv2d_backward(X4, W4, g, stride=2**63)
    with pytest.raises(
        TypeError, match=r"conv2d_backward: need_grad_x must be a bool, got ndarray"
    ):
        nf.conv2d_backward(X4, W4, g, need_grad_x=np.array([True, False]))
    with pytest.raises(ValueError, match=r"conv2d_backward: w must have in_channels"):
        nf.conv2d_backward(X4, np.zeros((4, 2, 3, 3)), g)
    assert nf.conv2d_backward(X4, W4, g, need_grad_x=np.True_)[0].shape == X4.shape


def test_conv2d_algorithm_choice():
    assert (
        _core._testing.conv2d_algorithm(
            np.zeros((64, 1, 28, 28), np.float32), np.zeros((32, 1, 3, 3), np.float32), 1, 1
        )
        == "direct"
    )
    assert (
        _core._testing.conv2d_algorithm(
            np.zeros((64, 32, 14, 14), np.float32), np.zeros((64, 32, 3, 3), np.float32), 1, 1
        )
        == "direct"
    )
    assert (
        _core._testing.conv2d_algorithm(np.zeros((1, 1, 28, 28)), np.zeros((1, 1, 3, 3)), 2, 0) == "im2col"
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_kernel_choice(isa, dtype):
    # The MNIST layers on every ISA: C=1 line-aligned (its grad_x has one output channel, so
    # flat); 32->64 output channels along the vectors for the forward pass and both gradients;
    # few taps with rows narrower than the input row-wise.
    def kernels(x_shape, w_shape, stride, padding):
        return _core._conv2d_kernels(
            np.zeros(x_shape, dtype), np.zeros(w_shape, dtype), stride, padding
        )

    assert kernels((64, 1, 28, 28), (32, 1, 3, 3), 1, 1) == (
        "forward direct line-aligned; grad_x direct flat; grad_w direct"
    )
    assert kernels((64, 1, 28, 28), (32, 1, 3, 3), 1, 0).startswith("forward direct row-wise")
    assert kernels((64, 32, 14, 14), (64, 32, 3, 3), 1, 1) == (
        "forward direct channel-vector; grad_x direct channel-vector; grad_w channel-vector"
    )
    assert kernels((2, 3, 9, 9), (4, 3, 3, 3), 2, 1) == (
        "forward im2col + GEMM; grad_x GEMM + col2im; grad_w im2col + GEMM"
    )


@pytest.mark.parametrize("where", ["x", "w"])
def test_conv2d_backward_non_finite_like_reference(where, rng):
    # The direct stride-1 paths compute dropped padding positions; an inf/NaN must not leak
    # through them (0 * inf) where the reference has a finite value.
    x, w, b, s, p = make(rng, (2, 3, 6, 7, 4, 3, 3, 1, 1), np.float64)
    a = x if where == "x" else w
    a.reshape(-1)[0] = np.nan
    a.reshape(-1)[-1] = np.inf
    g = rng.standard_normal(nf.conv2d(x, w, b, s, p).shape)
    with np.errstate(all="ignore"):
        want = ref.conv2d_backward(x, w, g, s, p)
    for got, exp in zip(nf.conv2d_backward(x, w, g, s, p), want):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(exp))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(exp))


@pytest.mark.parametrize(
    "stride, padding", [(2**62, 1), ((1, 2**63 - 1), (0, 2)), ((2, 2**63 - 1), (1, 3))]
)
def test_regression_huge_stride_backward_writes_in_bounds(stride, padding):
    # A stride near 2^63 overflowed ceil_div's a + b - 1 in im2col and wrote before the column
    # buffer (heap corruption found by the hypothesis property test, hypothesis seed 2).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((2, 3, 2, 3))
    y = nf.conv2d(x, w, None, stride, padding)
    assert y.shape[:2] == (2, 2) and y.shape[3] == 1
    g = rng.standard_normal(y.shape)
    got = nf.conv2d_backward(x, w, g, stride, padding)
    want = ref.conv2d_backward(x, w, g, stride, padding)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "xshape, wshape, stride, padding",
    [
        ((9, 33, 0, 33), (31, 33, 2, 3), 1, (1, 0)),
        ((1, 1, 0, 5), (1, 1, 2, 3), 1, (1, 0)),
        ((2, 3, 4, 0), (2, 3, 3, 2), 1, (0, 1)),
        ((2, 8, 0, 0), (4, 8, 3, 3), 1, (2, 2)),
        ((3, 2, 0, 40), (3, 2, 2, 3), 1, (1, 0)),
        ((3, 2, 0, 40), (3, 2, 2, 3), 1, (1, 1)),
        ((2, 9, 5, 0), (40, 9, 3, 2), 1, 1),
        ((2, 3, 0, 7), (4, 3, 3, 3), (2, 1), (2, 1)),
        ((2, 3, 6, 0), (4, 3, 2, 2), 2, (0, 1)),
    ],
)
@pytest.mark.parametrize("w_finite", [True, False])
def test_regression_empty_input_with_padding_backward(
    isa, dtype, xshape, wshape, stride, padding, w_finite
):
    # x with no rows or columns, padding alone making the output non-empty: grad_x ran the direct
    # forward kernel on an output of h x w (no rows), whose row blocking divided by zero and killed
    # the interpreter with SIGFPE (tests/fuzz seed 11678). Strides 1 and 2 (direct kernels and
    # GEMM), a w with an inf (grad_x by GEMM + col2im); grad_x on each direct kernel (flat,
    # row-wise, line-aligned, channel-vector), grad_w on both.
    rng = np.random.default_rng(1)
    x = np.zeros(xshape, dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    if not w_finite:
        w[0, 0, 0, 0] = np.inf
    y = nf.conv2d(x, w, None, stride, padding)
    g = rng.standard_normal(y.shape).astype(dtype)
    for need_grad_x in (True, False):
        gx, gw, gb = nf.conv2d_backward(x, w, g, stride, padding, need_grad_x=need_grad_x)
        # grad_w and grad_b do not depend on w (the reference would warn on 0 * inf in grad_x).
        w_ref = np.where(np.isfinite(w), w, 0)
        _, want_w, want_b = ref.conv2d_backward(x, w_ref, g, stride, padding)
        assert gx is None if not need_grad_x else gx.shape == x.shape
        np.testing.assert_array_equal(gw, np.zeros_like(w))
        np.testing.assert_allclose(gw, want_w)
        np.testing.assert_allclose(gb, want_b, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_through_a_fused_activation(isa, activation, dtype):
    # conv2d_backward(activation=, y=) equals the chain dL/dz = act'(z) dL/dy, then linear.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 7, 6)).astype(dtype)
    w = rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    y = nf.conv2d(x, w, b, 1, 1, activation=activation)
    g = rng.standard_normal(y.shape).astype(dtype)
    gz = {"relu": g * (y > 0), "sigmoid": g * y * (1 - y), "tanh": g * (1 - y * y)}[activation]
    want = nf.conv2d_backward(x, w, gz.astype(dtype), 1, 1)
    got = nf.conv2d_backward(x, w, g, 1, 1, activation=activation, y=y)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, **tol)
    g0 = g.copy()
    nf.conv2d_backward(x, w, g, 1, 1, activation=activation, y=y)
    np.testing.assert_array_equal(g, g0)  # grad_y is not overwritten
    with pytest.raises(ValueError, match=r"y \(the forward's output\) is required"):
        nf.conv2d_backward(x, w, g, 1, 1, activation=activation)
    with pytest.raises(ValueError, match="y must have the output's shape"):
        nf.conv2d_backward(x, w, g, 1, 1, activation=activation, y=y[:1])
    with pytest.raises(ValueError, match="activation must be one of 'linear', 'relu', 'sigmoid'"):
        nf.conv2d_backward(x, w, g, 1, 1, activation="softmax", y=y)
