"""Max pooling (forward, indices, backward with index validation) and flatten."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import reference as ref

# (N, C, H, W, pool, stride): the 2x2/2 vector path around the vector widths and other windows.
CASES = [
    (2, 3, 28, 28, 2, None),
    (1, 2, 9, 67, 2, None),
    (3, 1, 7, 35, (3, 2), (1, 2)),
    (2, 2, 11, 13, 3, 2),
    (1, 1, 6, 6, 2, 1),
    (0, 2, 4, 4, 2, None),
    (2, 0, 4, 4, 2, None),
    (1, 3, 5, 8, (1, 3), (2, 3)),
    (2, 2, 8, 8, 4, None),
    (1, 1, 1, 1, 1, None),
    (1, 2, 3, 33, (2, 2), (2, 2)),
]


def make(rng, case, dtype, nan=False, ties=False):
    n, c, h, w, ps, st = case
    if ties:
        x = rng.integers(-2, 3, size=(n, c, h, w)).astype(dtype)
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if nan and x.size:
        x.reshape(-1)[rng.choice(x.size, size=max(1, x.size // 7), replace=False)] = np.nan
    return x, ps, st


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["plain", "nan", "ties"])
def test_max_pool2d_matches_reference(isa, dtype, kind, rng):
    for case in CASES:
        x, ps, st = make(rng, case, dtype, nan=kind == "nan", ties=kind == "ties")
        y, idx = nf.max_pool2d(x, ps, st, return_indices=True)
        wy, widx = ref.max_pool2d(x, ps, st, return_indices=True)
        assert y.dtype == dtype and idx.dtype == np.int64 and y.shape == wy.shape, case
        np.testing.assert_array_equal(y, wy, err_msg=str(case))
        np.testing.assert_array_equal(idx, widx, err_msg=str(case))
        np.testing.assert_array_equal(nf.max_pool2d(x, ps, st), wy)


@pytest.mark.parametrize("kind", ["plain", "nan", "ties"])
def test_max_pool2d_matches_torch(kind, rng):
    torch = pytest.importorskip("torch")
    for case in CASES:
        x, ps, st = make(rng, case, np.float32, nan=kind == "nan", ties=kind == "ties")
        if x.size == 0:
            continue
        y, idx = nf.max_pool2d(x, ps, st, return_indices=True)
        ty, ti = torch.nn.functional.max_pool2d(torch.from_numpy(x), ps, st, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy(), err_msg=str(case))
        np.testing.assert_array_equal(idx, ti.numpy(), err_msg=str(case))
        g = rng.standard_normal(y.shape).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_()
        torch.nn.functional.max_pool2d(tx, ps, st).backward(torch.from_numpy(g))
        np.testing.assert_allclose(
            nf.max_pool2d_backward(g, idx, x.shape, ps, st), tx.grad.numpy(), rtol=1e-6, atol=1e-6
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d_backward_matches_reference(isa, dtype, rng):
    for case in CASES:
        x, ps, st = make(rng, case, dtype)
        y, idx = nf.max_pool2d(x, ps, st, return_indices=True)
        g = rng.standard_normal(y.shape).astype(dtype)
        want = ref.max_pool2d_backward(g, idx, x.shape)
        for kw in ({}, dict(pool_size=ps, stride=st)):
            gx = nf.max_pool2d_backward(g, idx, x.shape, **kw)
            assert gx.dtype == dtype and gx.shape == x.shape
            np.testing.assert_allclose(gx, want, rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_max_pool2d_backward_finite_differences(rng):
    # Distinct values so the max is stable under a small nudge; overlapping windows (stride 1).
    for ps, st in ((2, None), (3, 1), ((2, 3), (1, 2))):
        x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8).astype(np.float64) / 10
        y, idx = nf.max_pool2d(x, ps, st, return_indices=True)
        g = rng.standard_normal(y.shape)
        gx = nf.max_pool2d_backward(g, idx, x.shape, ps, st)
        eps = 1e-6
        flat = x.reshape(-1)
        for i in rng.choice(flat.size, size=40, replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = np.sum(g * nf.max_pool2d(x, ps, st))
            flat[i] = old - eps
            down = np.sum(g * nf.max_pool2d(x, ps, st))
            flat[i] = old
            assert abs(gx.reshape(-1)[i] - (up - down) / (2 * eps)) < 1e-7


def test_max_pool2d_threads_identical(rng):
    x = rng.standard_normal((6, 16, 28, 28)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    g = rng.standard_normal((6, 16, 9, 13)).astype(np.float32)
    results = []
    for t in (1, 2, 3, 4):
        with with_num_threads(t):
            y, i = nf.max_pool2d(x, 2, return_indices=True)
            y3, i3 = nf.max_pool2d(x, 3, (3, 2), return_indices=True)
            gx = nf.max_pool2d_backward(g, i3, x.shape)
            results.append((y, i, y3, i3, gx))
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_max_pool2d_tutorial_example():
    fmap = np.arange(36, dtype=np.float64).reshape(6, 6) % 7
    pooled = nf.max_pool2d(fmap, pool_size=2)
    assert pooled.shape == (3, 3)
    want = np.array([[fmap[i : i + 2, j : j + 2].max() for j in (0, 2, 4)] for i in (0, 2, 4)])
    np.testing.assert_array_equal(pooled, want)
    y, idx = nf.max_pool2d(fmap, 2, return_indices=True)
    np.testing.assert_array_equal(fmap.reshape(-1)[idx], y)
    gx = nf.max_pool2d_backward(np.ones((3, 3)), idx, (6, 6), 2)
    assert gx.shape == (6, 6) and gx.sum() == 9
    # Integer feature maps and lists become float64.
    assert nf.max_pool2d([[1, 2], [3, 4]]).tolist() == [[4.0]]


def test_max_pool2d_non_contiguous(rng):
    x = rng.standard_normal((2, 3, 8, 10))
    np.testing.assert_array_equal(nf.max_pool2d(np.asfortranarray(x)), nf.max_pool2d(x))
    np.testing.assert_array_equal(nf.max_pool2d(x[:, :, :, ::2]), ref.max_pool2d(x[:, :, :, ::2]))


X = np.zeros((2, 3, 8, 8))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(pool_size=9),
            ValueError,
            r"max_pool2d: pool_size \(9, 9\) is larger than the input \(8, 8\)",
        ),
        (dict(pool_size=0), ValueError, r"max_pool2d: pool_size must be in \[1, "),
        (dict(stride=0), ValueError, r"max_pool2d: stride must be in \[1, "),
        (
            dict(stride=2**63),
            ValueError,
            r"max_pool2d: stride must be in \[1, 9223372036854775807\], got 9223372036854775808",
        ),
        (dict(pool_size=(2, 2**64)), ValueError, r"max_pool2d: pool_size\[1\] must be in"),
        (
            dict(pool_size=np.array([2, 2])),
            TypeError,
            r"max_pool2d: pool_size must be an integer, got a int64 array",
        ),
        (
            dict(stride=np.array(2.0)),
            TypeError,
            r"max_pool2d: stride must be an integer, got a float64 array",
        ),
        (dict(pool_size=2.0), TypeError, r"max_pool2d: pool_size must be an integer, got float"),
        (
            dict(pool_size=(2,)),
            ValueError,
            r"max_pool2d: pool_size must be an int or a pair of ints, got a tuple of length 1",
        ),
        (
            dict(return_indices=np.array([1, 0])),
            TypeError,
            r"max_pool2d: return_indices must be a bool, got ndarray",
        ),
        (
            dict(x=np.zeros((3, 8, 8))),
            ValueError,
            r"max_pool2d: x must have 4 dims \(N, C, H, W\) or 2 dims \(H, W\), got shape \(3, 8, 8\)",
        ),
        (
            dict(x=np.zeros((2, 2), complex)),
            TypeError,
            r"max_pool2d: x must be a float32 or float64 array",
        ),
    ],
)
def test_max_pool2d_bad_inputs(kwargs, exc, match):
    args = dict(x=X, pool_size=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        nf.max_pool2d(**args)


def test_max_pool2d_numpy_int_sizes():
    np.testing.assert_array_equal(nf.max_pool2d(X, np.int64(2), np.array(2)), nf.max_pool2d(X, 2))
    assert nf.max_pool2d(X, (np.int32(2), 4)).shape == (2, 3, 4, 2)


def test_max_pool2d_backward_rejects_bad_indices(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    y, idx = nf.max_pool2d(x, 2, return_indices=True)
    g = np.ones_like(y)
    fn = "max_pool2d_backward"
    for value, msg in (
        (36, "is not a position in the 6x6 input plane"),
        (-1, "is not a position"),
        (2**62, "is not a position"),
    ):
        bad = idx.copy()
        bad[1, 2, 1, 2] = value
        with pytest.raises(ValueError, match=rf"{fn}: indices\[1, 2, 1, 2\] = {value} {msg}"):
            nf.max_pool2d_backward(g, bad, x.shape)
    bad = idx.copy()
    bad[0, 1, 2, 0] = 0  # inside the plane, outside window (rows 4..5, cols 0..1)
    nf.max_pool2d_backward(g, bad, x.shape)  # no window known: accepted (in bounds)
    with pytest.raises(
        ValueError,
        match=rf"{fn}: indices\[0, 1, 2, 0\] = 0 is outside its pooling window \(rows 4..5, cols 0..1\)",
    ):
        nf.max_pool2d_backward(g, bad, x.shape, pool_size=2)
    with pytest.raises(
        ValueError, match=rf"{fn}: input_shape must be a tuple of 2 or 4 ints, got 3"
    ):
        nf.max_pool2d_backward(g, idx, (2, 3, 6))
    with pytest.raises(
        TypeError, match=rf"{fn}: input_shape must be a tuple of 2 or 4 ints, got int"
    ):
        nf.max_pool2d_backward(g, idx, 6)
    with pytest.raises(ValueError, match=rf"{fn}: input_shape\[2\] must be in \[0, "):
        nf.max_pool2d_backward(g, idx, (2, 3, -6, 6))
    with pytest.raises(ValueError, match=rf"{fn}: grad_y must have the \(N, C\) of input_shape"):
        nf.max_pool2d_backward(g, idx, (2, 4, 6, 6))
    with pytest.raises(ValueError, match=rf"{fn}: indices must have the shape of grad_y"):
        nf.max_pool2d_backward(g, idx[:, :, :2], x.shape)
    with pytest.raises(
        TypeError, match=rf"{fn}: indices must be an integer array, got dtype float64"
    ):
        nf.max_pool2d_backward(g, idx.astype(np.float64), x.shape)
    with pytest.raises(ValueError, match=rf"{fn}: grad_y's plane \(3, 3\) is not the pooled size"):
        nf.max_pool2d_backward(g, idx, x.shape, pool_size=3)
    with pytest.raises(
        ValueError, match=rf"{fn}: the output of shape .* has more elements than can be addressed"
    ):
        nf.max_pool2d_backward(g, idx, (2, 3, 2**31, 2**31))
    with pytest.raises(MemoryError):
        nf.max_pool2d_backward(g, idx, (2, 3, 2**20, 2**20))
    # Other integer dtypes are accepted (converted to int64).
    np.testing.assert_array_equal(
        nf.max_pool2d_backward(g, idx.astype(np.int32), x.shape),
        nf.max_pool2d_backward(g, idx, x.shape),
    )


def test_flatten_is_a_view():
    a = np.arange(24.0).reshape(2, 3, 4)
    f = nf.flatten(a)
    assert f.shape == (24,) and np.shares_memory(f, a)
    assert nf.flatten(a, 1).shape == (2, 12) and np.shares_memory(nf.flatten(a, 1), a)
    assert nf.flatten(a, -1).shape == (2, 3, 4)
    assert nf.flatten(a, 3).shape == (2, 3, 4, 1)
    assert nf.flatten(a[:, 1], 1).shape == (2, 4)  # non-contiguous but viewable
    assert nf.flatten(np.float64(3.0)).shape == (1,)
    assert nf.flatten([[1, 2], [3, 4]]).tolist() == [1, 2, 3, 4]
    with pytest.raises(
        ValueError,
        match=r"flatten: x of shape \(4, 3, 2\) .* cannot be flattened from axis 0 without a copy",
    ):
        nf.flatten(a.T)
    with pytest.raises(
        ValueError, match=r"flatten: start_axis must be in \[-3, 3\] for a 3-d x, got 4"
    ):
        nf.flatten(a, 4)
    with pytest.raises(TypeError, match=r"flatten: start_axis must be an int, got ndarray"):
        nf.flatten(a, np.array([1, 2]))
