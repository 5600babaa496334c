"""Average pooling and global average pooling: forward, backward, torch, gradients, threads."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import TOL, with_num_threads
from nnfast import reference as ref

# (N, C, H, W, pool, stride): the 2x2/2 vector path around the vector widths (W 2..64), the
# stride-1 vector path, overlapping (3, stride 2), non-square and gapped windows, empty batches.
CASES = [(2, 3, 6, w, 2, None) for w in (2, 3, 14, 15, 16, 17, 28, 31, 33, 64)] + [
    (2, 3, 28, 28, 2, None),
    (1, 2, 9, 17, 3, 2),
    (2, 2, 11, 13, 3, 2),
    (1, 1, 9, 33, 3, 1),
    (1, 2, 7, 35, (3, 2), (1, 2)),
    (2, 2, 7, 15, (2, 3), (1, 2)),
    (1, 3, 5, 8, (1, 3), (2, 3)),
    (2, 2, 8, 9, (2, 2), (3, 2)),
    (1, 2, 8, 8, 4, None),
    (1, 1, 1, 1, 1, None),
    (1, 1, 5, 64, (1, 2), None),
    (0, 2, 4, 4, 2, None),
    (2, 0, 4, 4, 2, None),
]
IDS = [f"{n}x{c}x{h}x{w}-p{ps}-s{st}" for n, c, h, w, ps, st in CASES]


def _x(rng, case, dtype):
    n, c, h, w = case[:4]
    return rng.standard_normal((n, c, h, w)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool2d_matches_reference(isa, dtype, rng):
    for case in CASES:
        x, ps, st = _x(rng, case, dtype), case[4], case[5]
        y = nf.avg_pool2d(x, ps, st)
        want = ref.avg_pool2d(x.astype(np.float64), ps, st)
        assert y.dtype == dtype and y.shape == want.shape, case
        np.testing.assert_allclose(y, want, **TOL[dtype], err_msg=str(case))
        g = rng.standard_normal(y.shape).astype(dtype)
        gx = nf.avg_pool2d_backward(g, x.shape, ps, st)
        want = ref.avg_pool2d_backward(g.astype(np.float64), x.shape, ps, st)
        assert gx.dtype == dtype and gx.shape == x.shape, case
        np.testing.assert_allclose(gx, want, **TOL[dtype], err_msg=str(case))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avg_pool2d_matches_torch_float64(case, rng):
    torch = pytest.importorskip("torch")
    x, ps, st = _x(rng, case, np.float64), case[4], case[5]
    if x.size == 0:
        return
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, ps, st)
    y = nf.avg_pool2d(x, ps, st)
    # 1e-12 relative to the data's scale (a mean near zero has cancelled digits in both).
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12 * np.abs(x).max())
    g = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(
        nf.avg_pool2d_backward(g, x.shape, ps, st),
        tx.grad.numpy(),
        rtol=1e-12,
        atol=1e-12 * np.abs(g).max(),
    )


def test_global_avg_pool2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for shape in [(2, 3, 7, 7), (1, 1, 1, 1), (3, 5, 28, 28), (2, 4, 1, 33), (1, 2, 17, 3)]:
        x = rng.standard_normal(shape)
        tx = torch.from_numpy(x).requires_grad_()
        ty = tx.mean((2, 3))
        np.testing.assert_allclose(
            nf.global_avg_pool2d(x), ty.detach().numpy(), rtol=1e-12, atol=1e-12 * np.abs(x).max()
        )
        g = rng.standard_normal(shape[:2])
        ty.backward(torch.from_numpy(g))
        np.testing.assert_allclose(
            nf.global_avg_pool2d_backward(g, shape), tx.grad.numpy(), rtol=1e-12
        )
        x32 = x.astype(np.float32)
        np.testing.assert_allclose(
            nf.global_avg_pool2d(x32), torch.from_numpy(x32).mean((2, 3)).numpy(), rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool2d_matches_reference(isa, dtype, rng):
    for shape in [(2, 3, 7, 7), (1, 1, 1, 1), (2, 3, 28, 28), (0, 3, 4, 4), (2, 0, 4, 4)]:
        for w in (1, 2, 3, 5, 15, 16, 17, 31, 33, 64):
            s = shape[:3] + (w,)
            x = rng.standard_normal(s).astype(dtype)
            y = nf.global_avg_pool2d(x)
            assert y.dtype == dtype and y.shape == s[:2]
            np.testing.assert_allclose(y, ref.global_avg_pool2d(x.astype(np.float64)), **TOL[dtype])
            g = rng.standard_normal(s[:2]).astype(dtype)
            gx = nf.global_avg_pool2d_backward(g, s)
            assert gx.dtype == dtype and gx.shape == s
            np.testing.assert_allclose(
                gx, ref.global_avg_pool2d_backward(g.astype(np.float64), s), **TOL[dtype]
            )


def test_global_avg_pool2d_empty_plane_is_nan():
    with np.errstate(invalid="ignore"):
        want = ref.global_avg_pool2d(np.zeros((2, 3, 0, 4)))
    got = nf.global_avg_pool2d(np.zeros((2, 3, 0, 4)))
    assert got.shape == (2, 3) and np.isnan(got).all() and np.isnan(want).all()
    assert nf.global_avg_pool2d_backward(np.ones((2, 3)), (2, 3, 0, 4)).shape == (2, 3, 0, 4)


def _fd_check(f, x, g, gx, rng, count=40, eps=1e-6):
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, size=min(count, flat.size), replace=False):
        old = flat[i]
        flat[i] = old + eps
        up = np.sum(g * f(x))
        flat[i] = old - eps
        down = np.sum(g * f(x))
        flat[i] = old
        assert abs(gx.reshape(-1)[i] - (up - down) / (2 * eps)) < 1e-8


def test_finite_differences(rng):
    for ps, st in ((2, None), (3, 2), (3, 1), ((2, 3), (1, 2)), ((2, 2), (3, 3))):
        x = rng.standard_normal((2, 3, 9, 10))
        y = nf.avg_pool2d(x, ps, st)
        g = rng.standard_normal(y.shape)
        gx = nf.avg_pool2d_backward(g, x.shape, ps, st)
        _fd_check(lambda a: nf.avg_pool2d(a, ps, st), x, g, gx, rng)
    x = rng.standard_normal((2, 3, 5, 6))
    g = rng.standard_normal((2, 3))
    _fd_check(nf.global_avg_pool2d, x, g, nf.global_avg_pool2d_backward(g, x.shape), rng)


def test_single_plane_and_non_contiguous(rng):
    img = rng.standard_normal((9, 14))
    y = nf.avg_pool2d(img, 2)
    assert y.shape == (4, 7)
    np.testing.assert_allclose(y, ref.avg_pool2d(img, 2), rtol=1e-15)
    gx = nf.avg_pool2d_backward(np.ones((4, 7)), img.shape, 2)
    assert gx.shape == (9, 14) and gx.sum() == pytest.approx(28.0)
    np.testing.assert_array_equal(gx[8], 0.0)  # the floor-mode row no window reaches
    np.testing.assert_array_equal(nf.avg_pool2d(img, 3, 2), nf.avg_pool2d(img[None, None], 3, 2)[0, 0])
    x = rng.standard_normal((2, 3, 8, 20))
    for view in (x[:, :, :, ::2], np.asfortranarray(x), x[:, ::-1]):
        np.testing.assert_array_equal(nf.avg_pool2d(view, 2), nf.avg_pool2d(np.ascontiguousarray(view), 2))
        np.testing.assert_array_equal(nf.global_avg_pool2d(view), nf.global_avg_pool2d(view.copy()))
    g = rng.standard_normal((2, 3, 8, 4))[..., ::2]
    np.testing.assert_array_equal(
        nf.avg_pool2d_backward(g, (2, 3, 16, 4)), nf.avg_pool2d_backward(g.copy(), (2, 3, 16, 4))
    )
    assert nf.avg_pool2d([[1, 2], [3, 4]]).tolist() == [[2.5]]  # lists and ints become float64


def test_threads_identical_bits(rng):
    x = rng.standard_normal((6, 16, 28, 28)).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        with with_num_threads(t):
            r = []
            for ps, st in ((2, None), (3, 2), (3, 1), ((2, 3), (1, 2))):
                y = nf.avg_pool2d(x, ps, st)
                r += [y, nf.avg_pool2d_backward(y, x.shape, ps, st)]
            r += [nf.global_avg_pool2d(x), nf.global_avg_pool2d_backward(x[:, :, 0, 0], x.shape)]
            results.append([a.tobytes() for a in r])
    assert results[0] == results[1] == results[2]


def test_identical_bits_on_every_isa(rng):
    # The window sum's order is the same on every path (global pooling's lane order is not).
    from nnfast import _core

    before = _core._isa()
    x = rng.standard_normal((2, 3, 13, 35)).astype(np.float32)
    got = []
    try:
        for isa in _core._isa_available():
            _core._testing.set_isa(isa)
            r = []
            for ps, st in ((2, None), (3, 2), (3, 1), (2, (1, 2))):
                y = nf.avg_pool2d(x, ps, st)
                r += [y.tobytes(), nf.avg_pool2d_backward(y, x.shape, ps, st).tobytes()]
            got.append(r)
    finally:
        _core._testing.set_isa(before)
    assert all(g == got[0] for g in got)


def test_out_is_written_and_returned(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = np.full((2, 3, 4, 4), np.nan, np.float32)
    assert nf.avg_pool2d(x, 2, out=out) is out
    np.testing.assert_array_equal(out, nf.avg_pool2d(x, 2))
    gx = np.full(x.shape, np.nan, np.float32)
    assert nf.avg_pool2d_backward(out, x.shape, 2, out=gx) is gx
    np.testing.assert_array_equal(gx, nf.avg_pool2d_backward(out, x.shape, 2))
    gy = np.full((2, 3), np.nan, np.float32)
    assert nf.global_avg_pool2d(x, out=gy) is gy
    assert nf.global_avg_pool2d_backward(gy, x.shape, out=gx) is gx
    with pytest.raises(ValueError, match=r"^avg_pool2d: out must have shape \(2, 3, 4, 4\), got"):
        nf.avg_pool2d(x, 2, out=np.empty((2, 3, 4, 5), np.float32))
    with pytest.raises(TypeError, match=r"^global_avg_pool2d: out must have dtype float32, got"):
        nf.global_avg_pool2d(x, out=np.empty((2, 3)))
    with pytest.raises(ValueError, match=r"^avg_pool2d_backward: out must not overlap an input"):
        big = np.zeros(2 * 3 * 8 * 8, np.float32)
        nf.avg_pool2d_backward(big[:96].reshape(2, 3, 4, 4), x.shape, 2, out=big.reshape(x.shape))


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (
            lambda: nf.avg_pool2d(np.zeros((3, 8, 8))),
            ValueError,
            r"avg_pool2d: x must have 4 dims \(N, C, H, W\) or 2 dims \(H, W\), got shape \(3, 8, 8\)",
        ),
        (
            lambda: nf.avg_pool2d(np.zeros((2, 3, 8, 8)), 9),
            ValueError,
            r"avg_pool2d: pool_size \(9, 9\) is larger than the input \(8, 8\)",
        ),
        (
            lambda: nf.avg_pool2d(np.zeros((8, 8)), 2, 0),
            ValueError,
            r"avg_pool2d: stride must be in \[1, 9223372036854775807\], got 0",
        ),
        (
            lambda: nf.avg_pool2d(np.zeros((8, 8)), 2.0),
            TypeError,
            r"avg_pool2d: pool_size must be an integer, got float",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((2, 3, 4, 4)), (2, 3, 8, 8), 3),
            ValueError,
            r"avg_pool2d_backward: grad_y's plane \(4, 4\) is not the pooled size of input_shape "
            r"\(2, 3, 8, 8\) with pool_size \(3, 3\) and stride \(3, 3\)",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((2, 3, 4, 4)), (2, 4, 8, 8)),
            ValueError,
            r"avg_pool2d_backward: grad_y must have the \(N, C\) of input_shape \(2, 4, 8, 8\), "
            r"got shape \(2, 3, 4, 4\)",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((4, 4)), (2, 3, 8, 8)),
            ValueError,
            r"avg_pool2d_backward: grad_y must have 4 dims like input_shape \(2, 3, 8, 8\), got "
            r"shape \(4, 4\)",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((4, 4)), (8,)),
            ValueError,
            r"avg_pool2d_backward: input_shape must be a tuple of 2 or 4 ints, got 1",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((4, 4)), 8),
            TypeError,
            r"avg_pool2d_backward: input_shape must be a tuple of 2 or 4 ints, got int",
        ),
        (
            lambda: nf.avg_pool2d_backward(np.zeros((4, 4)), (8, -8)),
            ValueError,
            r"avg_pool2d_backward: input_shape\[1\] must be in \[0, 9223372036854775807\], got -8",
        ),
        (
            lambda: nf.global_avg_pool2d(np.zeros((8, 8))),
            ValueError,
            r"global_avg_pool2d: x must have 4 dims \(N, C, H, W\), got shape \(8, 8\)",
        ),
        (
            lambda: nf.global_avg_pool2d_backward(np.zeros((2, 3)), (2, 3, 8)),
            ValueError,
            r"global_avg_pool2d_backward: input_shape must be a tuple of 4 ints \(N, C, H, W\), "
            r"got 3",
        ),
        (
            lambda: nf.global_avg_pool2d_backward(np.zeros((2, 3)), (2, 4, 8, 8)),
            ValueError,
            r"global_avg_pool2d_backward: grad_y must have the \(N, C\) of input_shape "
            r"\(2, 4, 8, 8\), got shape \(2, 3\)",
        ),
        (
            lambda: nf.global_avg_pool2d_backward(np.zeros((2, 3, 1)), (2, 3, 8, 8)),
            ValueError,
            r"global_avg_pool2d_backward: grad_y must have 2 dims \(N, C\), got shape \(2, 3, 1\)",
        ),
        (
            lambda: nf.global_avg_pool2d(np.zeros((2, 2, 2, 2), complex)),
            TypeError,
            r"global_avg_pool2d: x must be a float32 or float64 array",
        ),
    ],
)
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match="^" + msg):
        call()


def test_huge_input_shape_is_refused_before_allocating():
    g = np.ones((2, 3, 2, 2))
    with pytest.raises(
        ValueError,
        match=r"^avg_pool2d_backward: the output of shape .* has more elements than can be addressed",
    ):
        nf.avg_pool2d_backward(g, (2, 3, 2**31, 2**31), 2**30)
    with pytest.raises(MemoryError):
        nf.avg_pool2d_backward(g, (2, 3, 2**20, 2**20), 2**19)
    with pytest.raises(ValueError, match=r"^global_avg_pool2d_backward: the output of shape"):
        nf.global_avg_pool2d_backward(np.ones((2, 3)), (2, 3, 2**31, 2**31))
