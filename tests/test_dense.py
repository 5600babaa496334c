"""Dense layer: forward with fused bias + activation, backward with fused derivative + grad_b."""

from __future__ import annotations

import warnings

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import reference as ref

ACTS = list(nf._core.GEMM_ACTIVATIONS)  # the kernels' one list
# (batch, in, out): the tutorial's XOR layers, tile edges of every ISA, K blocks, a wide layer.
SHAPES = [
    (8, 2, 4),
    (8, 4, 1),
    (1, 1, 1),
    (13, 7, 33),
    (12, 17, 32),
    (25, 31, 17),
    (64, 600, 10),
    (3, 5, 100),
    (100, 3, 5),
]


def tol(dtype, k):
    s = np.sqrt(max(k, 1))
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=1e-5 * s)
    return dict(rtol=1e-11, atol=1e-13 * s)


def layer(rng, batch, fin, fout, dtype):
    x = rng.standard_normal((batch, fin)).astype(dtype)
    w = (rng.standard_normal((fin, fout)) / np.sqrt(max(fin, 1))).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    return x, w, b


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_dense_forward_matches_reference(isa, dtype, act, rng):
    for batch, fin, fout in SHAPES:
        x, w, b = layer(rng, batch, fin, fout, dtype)
        y = nf.dense(x, w, b, act)
        assert y.dtype == dtype and y.shape == (batch, fout)
        np.testing.assert_allclose(
            y, ref.dense(*f64(x, w, b), act), **tol(dtype, fin), err_msg=f"{batch}x{fin}x{fout}"
        )
        np.testing.assert_allclose(
            nf.dense(x, w, None, act), ref.dense(*f64(x, w), None, act), **tol(dtype, fin)
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_dense_backward_matches_reference(isa, dtype, act, rng):
    for batch, fin, fout in SHAPES:
        x, w, b = layer(rng, batch, fin, fout, dtype)
        a = nf.dense(x, w, b, act)
        g = rng.standard_normal(a.shape).astype(dtype)
        got = nf.dense_backward(x, w, a, g, act)
        want = ref.dense_backward(*f64(x, w, a, g), act)
        for name, gv, wv, k in zip(("grad_x", "grad_w", "grad_b"), got, want, (fout, batch, batch)):
            assert gv.dtype == dtype and gv.shape == wv.shape, name
            np.testing.assert_allclose(
                gv, wv, **tol(dtype, k), err_msg=f"{name} {batch}x{fin}x{fout}"
            )


@pytest.mark.parametrize("act", ACTS)
def test_dense_backward_finite_differences(act, rng):
    # L = sum(g * dense(x, w, b)); central differences in float64 for x, w and b.
    x, w, b = layer(rng, 4, 3, 5, np.float64)
    g = rng.standard_normal((4, 5))

    def loss(x_, w_, b_):
        return float(np.sum(g * nf.dense(x_, w_, b_, act)))

    a = nf.dense(x, w, b, act)
    grad_x, grad_w, grad_b = nf.dense_backward(x, w, a, g, act)
    h = 1e-6
    for arr, grad in ((x, grad_x), (w, grad_w), (b, grad_b)):
        num = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + h
            up = loss(x, w, b)
            arr[idx] = keep - h
            down = loss(x, w, b)
            arr[idx] = keep
            num[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_dense_bit_identical_across_thread_counts(threads, rng):
    x, w, b = layer(rng, 256, 784, 130, np.float32)
    g = rng.standard_normal((256, 130)).astype(np.float32)
    for act in ("relu", "softmax"):
        with with_num_threads(1):
            y1 = nf.dense(x, w, b, act)
            grads1 = nf.dense_backward(x, w, y1, g, act)
        y = nf.dense(x, w, b, act)
        np.testing.assert_array_equal(y, y1)
        for got, want in zip(nf.dense_backward(x, w, y, g, act), grads1):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_empty_sizes(dtype):
    for batch, fin, fout in [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)]:
        x = np.ones((batch, fin), dtype)
        w = np.ones((fin, fout), dtype)
        b = np.full(fout, 0.5, dtype)
        # NOTE: NumPy's softmax reference cannot reduce an empty axis, so fout = 0 uses linear's.
        for act in ACTS if fout else [a for a in ACTS if a != "softmax"]:
            y = nf.dense(x, w, b, act)
            assert y.shape == (batch, fout)
            np.testing.assert_allclose(y, ref.dense(*f64(x, w, b), act))
            if not fout:
                assert nf.dense(x, w, b, "softmax").shape == (batch, 0)
            gx, gw, gb = nf.dense_backward(x, w, y, np.ones_like(y), act)
            want = ref.dense_backward(*f64(x, w, y, np.ones_like(y)), act)
            for got, exp in zip((gx, gw, gb), want):
                assert got.shape == exp.shape
                np.testing.assert_allclose(got, exp, atol=1e-6)


def test_dense_single_sample_and_conversions(rng):
    x = rng.standard_normal(3)
    w = rng.standard_normal((3, 2))
    y = nf.dense(x, w, [0.5, -0.5], "sigmoid")
    assert y.shape == (2,)
    np.testing.assert_allclose(y, ref.dense(x, w, np.array([0.5, -0.5]), "sigmoid"), rtol=1e-12)
    assert nf.dense(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32
    assert nf.dense(x.astype(np.float32), w).dtype == np.float64  # promoted
    np.testing.assert_allclose(
        nf.dense(np.asfortranarray(rng.standard_normal((4, 3))), w).shape, (4, 2)
    )
    np.testing.assert_allclose(nf.dense(x, w, activation=None), x @ w, rtol=1e-12)


def test_dense_out(rng):
    x, w, b = layer(rng, 9, 5, 7, np.float32)
    out = np.empty((9, 7), np.float32)
    assert nf.dense(x, w, b, "relu", out=out) is out
    np.testing.assert_allclose(out, ref.dense(*f64(x, w, b), "relu"), **tol(np.float32, 5))
    with pytest.raises(ValueError, match=r"dense: out must have shape \(9, 7\), got \(7, 9\)"):
        nf.dense(x, w, b, out=np.empty((7, 9), np.float32))


def test_dense_stable_for_huge_inputs_and_nan():
    x = np.array([[1e4], [-1e4], [0.0], [np.nan]])
    w = np.array([[1.0, -1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for act in ACTS:
            y = nf.dense(x, w, None, act)
            assert np.isfinite(y[:3]).all(), act
            assert np.isnan(y[3]).all(), act
    np.testing.assert_allclose(
        nf.dense(x[:3], w, None, "sigmoid"), [[1, 0, 1], [0, 1, 0], [0.5, 0.5, 0.5]], atol=1e-30
    )
    np.testing.assert_allclose(
        nf.dense(x[:3], w, None, "tanh"), [[1, -1, 1], [-1, 1, -1], [0, 0, 0]], atol=1e-30
    )
    np.testing.assert_allclose(
        nf.dense(x[:3], w, None, "softmax"),
        [[0, 0, 1], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]],
        atol=1e-15,
    )


def test_dense_bad_inputs():
    x, w, b = np.ones((4, 3)), np.ones((3, 2)), np.ones(2)
    with pytest.raises(
        ValueError, match=r"dense: x must have 2 dims \(batch, in_features\), got shape \(2, 2, 2\)"
    ):
        nf.dense(np.ones((2, 2, 2)), w)
    with pytest.raises(
        ValueError,
        match=r"dense: w must have 2 dims \(in_features, out_features\), got shape \(3,\)",
    ):
        nf.dense(x, np.ones(3))
    with pytest.raises(
        ValueError,
        match=r"dense: w must have shape \(in_features, out_features\) with in_features = x.shape\[1\] = 3, got \(2, 2\)",
    ):
        nf.dense(x, np.ones((2, 2)))
    with pytest.raises(
        ValueError, match=r"dense: b must have shape \(out_features,\) = \(2,\), got \(3,\)"
    ):
        nf.dense(x, w, np.ones(3))
    with pytest.raises(
        ValueError, match=r"dense: b must have shape \(out_features,\) = \(2,\), got \(1, 2\)"
    ):
        nf.dense(x, w, np.ones((1, 2)))
    with pytest.raises(
        ValueError,
        match=r"dense: activation must be one of 'linear', 'relu', 'sigmoid', 'tanh' or 'softmax', got 'gelu'",
    ):
        nf.dense(x, w, b, "gelu")
    with pytest.raises(TypeError, match=r"dense: activation must be a str .*, got int"):
        nf.dense(x, w, b, 3)
    with pytest.raises(
        TypeError, match=r"dense: x must be a float32 or float64 array, got dtype complex128"
    ):
        nf.dense(np.ones((4, 3), complex), w)
    with pytest.raises(MemoryError):
        nf.dense(np.empty((2**21, 0)), np.empty((0, 2**21)))


def test_dense_backward_bad_inputs():
    x, w, a = np.ones((4, 3)), np.ones((3, 2)), np.ones((4, 2))
    with pytest.raises(
        ValueError,
        match=r"dense_backward: a must have shape \(batch, out_features\) = \(4, 2\), got \(4, 3\)",
    ):
        nf.dense_backward(x, w, np.ones((4, 3)), a)
    with pytest.raises(
        ValueError,
        match=r"dense_backward: grad_a must have shape \(batch, out_features\) = \(4, 2\), got \(2, 4\)",
    ):
        nf.dense_backward(x, w, a, np.ones((2, 4)))
    with pytest.raises(
        ValueError,
        match=r"dense_backward: w must have shape \(in_features, out_features\) with in_features = x.shape\[1\] = 3, got \(4, 2\)",
    ):
        nf.dense_backward(x, np.ones((4, 2)), a, a)
    with pytest.raises(
        ValueError, match=r"dense_backward: activation must be one of .*, got 'elu'"
    ):
        nf.dense_backward(x, w, a, a, "elu")


@pytest.mark.parametrize("act", ACTS)
def test_dense_matches_torch_autograd(act, rng):
    torch = pytest.importorskip("torch")
    x, w, b = layer(rng, 6, 5, 4, np.float64)
    g = rng.standard_normal((6, 4))
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    tz = tx @ tw + tb
    ta = {
        "linear": lambda z: z,
        "relu": torch.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda z: torch.softmax(z, dim=-1),
    }[act](tz)
    ta.backward(torch.from_numpy(g))
    a = nf.dense(x, w, b, act)
    np.testing.assert_allclose(a, ta.detach().numpy(), rtol=1e-12, atol=1e-14)
    for got, t in zip(nf.dense_backward(x, w, a, g, act), (tx, tw, tb)):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_epilogue_relative_accuracy(isa, dtype):
    # sigmoid/tanh in the GEMM's store: a few ulps of relative error everywhere, tiny z included.
    mag = np.logspace(-12, 1.5, 1500)
    z = np.concatenate([mag, -mag, np.linspace(-20, 20, 1000)]).astype(dtype)
    for act, f in (("tanh", np.tanh), ("sigmoid", lambda v: 1 / (1 + np.exp(-v)))):
        y = nf.dense(z[:, None], np.ones((1, 1), dtype), None, act)[:, 0]
        np.testing.assert_allclose(y, f(z.astype(np.float64)), rtol=4 * np.finfo(dtype).eps, atol=0)
