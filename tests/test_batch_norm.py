"""Batch-norm kernels: training/inference forward and backward against the float64 reference and
torch, running statistics, fused ReLU, finite differences, every ISA, any thread count, bad input."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import reference as ref

@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype_of(request):
    return request.param


SHAPES = [(2, 3), (7, 5), (1, 4, 3, 3), (3, 2, 5, 7), (2, 3, 1, 17), (4, 16, 6, 6), (5, 1, 2, 2)]


def _params(rng, c, dtype):
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    return gamma, beta, rm, rv


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_train_forward_and_running_stats_match_reference(isa, shape, activation, dtype_of, rng):
    dtype = dtype_of
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    want = ref.batch_norm_train(x, gamma, beta, rm, rv, 0.1, 1e-5, activation)
    rm2, rv2 = rm.copy(), rv.copy()
    y, mean, invstd = nf.batch_norm_train(x, gamma, beta, rm2, rv2, 0.1, 1e-5, activation)
    assert y.dtype == mean.dtype == invstd.dtype == dtype and y.shape == shape
    for got, exp in zip((y, mean, invstd, rm2, rv2), want):
        np.testing.assert_allclose(got, exp, **_tol(dtype))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_eval_forward_matches_reference(isa, shape, activation, dtype_of, rng):
    dtype = dtype_of
    x = rng.standard_normal(shape).astype(dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    y = nf.batch_norm_eval(x, gamma, beta, rm, rv, 1e-3, activation)
    np.testing.assert_allclose(y, ref.batch_norm_eval(x, gamma, beta, rm, rv, 1e-3, activation),
                               **_tol(dtype))
    # in place
    x2 = x.copy()
    assert nf.batch_norm_eval(x2, gamma, beta, rm, rv, 1e-3, activation, out=x2) is x2
    np.testing.assert_array_equal(x2, y)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_reference(isa, shape, activation, training, dtype_of, rng):
    dtype = dtype_of
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    gamma, beta, rm, rv = _params(rng, shape[1], dtype)
    if training:
        y, mean, invstd = nf.batch_norm_train(x, gamma, beta, rm, rv, 0.1, 1e-5, activation)
    else:
        y = nf.batch_norm_eval(x, gamma, beta, rm, rv, 1e-5, activation)
        mean, invstd = rm, (1 / np.sqrt(rv.astype(np.float64) + 1e-5)).astype(dtype)
    got = nf.batch_norm_backward(g, x, gamma, mean, invstd, y, activation, training)
    want = ref.batch_norm_backward(g, x, gamma, mean, invstd, y, activation, training)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **_tol(dtype))


@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 5, 5), (2, 3, 1, 1), (1, 2, 3, 2)])
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_matches_torch_float64_train_and_eval(shape, activation, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape) * 2 + 0.5
    g = rng.standard_normal(shape)
    gamma, beta, rm, rv = _params(rng, shape[1], np.float64)
    for training in (True, False):
        tx = torch.from_numpy(x.copy()).requires_grad_()
        tg = torch.from_numpy(gamma.copy()).requires_grad_()
        tb = torch.from_numpy(beta.copy()).requires_grad_()
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training, 0.1, 1e-5)
        if activation == "relu":
            ty = torch.relu(ty)
        ty.backward(torch.from_numpy(g))
        rm2, rv2 = rm.copy(), rv.copy()
        if training:
            y, mean, invstd = nf.batch_norm_train(x, gamma, beta, rm2, rv2, 0.1, 1e-5, activation)
        else:
            y = nf.batch_norm_eval(x, gamma, beta, rm2, rv2, 1e-5, activation)
            mean, invstd = rm2, 1 / np.sqrt(rv2 + 1e-5)
        gx, gg, gb = nf.batch_norm_backward(g, x, gamma, mean, invstd, y, activation, training)
        kw = dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(y, ty.detach().numpy(), **kw)
        np.testing.assert_allclose(rm2, trm.numpy(), **kw)
        np.testing.assert_allclose(rv2, trv.numpy(), **kw)
        np.testing.assert_allclose(gx, tx.grad.numpy(), **kw)
        np.testing.assert_allclose(gg, tg.grad.numpy(), **kw)
        np.testing.assert_allclose(gb, tb.grad.numpy(), **kw)


def test_finite_differences_float64(rng):
    shape = (3, 2, 3, 2)
    x = rng.standard_normal(shape)
    gamma, beta, rm, rv = _params(rng, 2, np.float64)
    g = rng.standard_normal(shape)

    def loss(xv, gv, bv):
        y, _, _ = nf.batch_norm_train(xv, gv, bv, rm.copy(), rv.copy(), 0.1, 1e-5)
        return float((y * g).sum())

    y, mean, invstd = nf.batch_norm_train(x, gamma, beta, rm.copy(), rv.copy(), 0.1, 1e-5)
    gx, gg, gb = nf.batch_norm_backward(g, x, gamma, mean, invstd)
    h = 1e-6
    for arr, grad, which in ((x, gx, 0), (gamma, gg, 1), (beta, gb, 2)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            args = [x.copy(), gamma.copy(), beta.copy()]
            args[which][i] += h
            up = loss(*args)
            args[which][i] -= 2 * h
            num[i] = (up - loss(*args)) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(64, 8, 9, 9), (33, 70), (2, 5, 40, 3)])
def test_threads_and_isas_give_identical_bits_per_isa(shape, rng):
    from nnfast import _core

    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    gamma, beta, rm, rv = _params(rng, shape[1], np.float32)
    before = _core._isa()
    try:
        for isa in _core._isa_available():
            _core._testing.set_isa(isa)
            results = []
            for t in (1, 2, 3):
                with with_num_threads(t):
                    rm2, rv2 = rm.copy(), rv.copy()
                    y, m, s = nf.batch_norm_train(x, gamma, beta, rm2, rv2, 0.1, 1e-5, "relu")
                    grads = nf.batch_norm_backward(g, x, gamma, m, s, y, "relu", True)
                    results.append([y, m, s, rm2, rv2, *grads])
            for other in results[1:]:
                for a, b in zip(results[0], other):
                    np.testing.assert_array_equal(a, b)
    finally:
        _core._testing.set_isa(before)


def test_one_value_per_channel_is_refused_and_nothing_changes(rng):
    x = rng.standard_normal((1, 3)).astype(np.float32)
    gamma, beta, rm, rv = _params(rng, 3, np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nf.batch_norm_train(x, gamma, beta, rm, rv)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nf.batch_norm_train(np.zeros((1, 3, 1, 1), np.float32), gamma, beta, rm, rv)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)
    # one sample but several positions is fine (torch too)
    nf.batch_norm_train(np.ones((1, 3, 2, 2), np.float32), gamma, beta, rm, rv)


def test_empty_batch_in_eval_and_backward(rng):
    gamma, beta, rm, rv = _params(rng, 3, np.float64)
    x = np.zeros((0, 3, 4, 4))
    assert nf.batch_norm_eval(x, gamma, beta, rm, rv).shape == (0, 3, 4, 4)
    gx, gg, gb = nf.batch_norm_backward(x, x, gamma, rm, rv, training=False)
    assert gx.shape == x.shape
    np.testing.assert_array_equal(gg, 0)
    np.testing.assert_array_equal(gb, 0)


BAD = [
    (lambda a: nf.batch_norm_train(a["x"], a["g"][:2], a["b"], a["rm"], a["rv"]), ValueError,
     r"batch_norm_train: gamma must have shape \(C,\) = \(3,\), one value per channel of x, got shape \(2,\)"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"].astype(np.float64), a["rv"]),
     ValueError, "running_mean"),
    (lambda a: nf.batch_norm_train(a["x"][0, 0, 0], a["g"], a["b"], a["rm"], a["rv"]), ValueError,
     r"x must have at least 2 dims \(N, C, ...\), got shape \(5,\)"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"], a["rv"], momentum=1.5),
     ValueError, r"momentum must be in \[0, 1\], got 1.5"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"], a["rv"], eps=0.0),
     ValueError, "eps must be > 0, got 0.0"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"], a["rv"], activation="tanh"),
     ValueError, "activation must be one of 'linear' or 'relu', got 'tanh'"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"], a["rv"], activation=3),
     TypeError, "activation must be a str"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["ro"], a["rv"]), ValueError,
     "running_mean must be writeable"),
    (lambda a: nf.batch_norm_train(a["x"], a["g"], a["b"], a["rm"], a["rm"]), ValueError,
     "running_mean and running_var must not overlap"),
    (lambda a: nf.batch_norm_eval(a["x"], a["g"], a["b"], a["rm"], a["rv"], eps=float("nan")),
     ValueError, "eps"),
    (lambda a: nf.batch_norm_backward(a["x"][:1], a["x"], a["g"], a["rm"], a["rv"]), ValueError,
     r"grad_y must have x's shape \(2, 3, 5, 5\), got \(1, 3, 5, 5\)"),
    (lambda a: nf.batch_norm_backward(a["x"], a["x"], a["g"], a["rm"], a["rv"], None, "relu"),
     ValueError, r"y \(the forward's output\) is required with activation='relu'"),
    (lambda a: nf.batch_norm_backward(a["x"], a["x"], a["g"], a["rm"], a["rv"], training=1),
     TypeError, "training must be a bool, got int"),
    (lambda a: nf.batch_norm_backward(a["x"], a["x"], a["g"], a["rm"], a["rv"], out=(a["x"],)),
     (TypeError, ValueError), "batch_norm_backward: out"),
    (lambda a: nf.batch_norm_train("abc", a["g"], a["b"], a["rm"], a["rv"]), TypeError,
     "batch_norm_train: x must be an array of numbers, got str"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input_is_a_clear_error_and_changes_nothing(i, rng):
    a = {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32)}
    a["g"], a["b"], a["rm"], a["rv"] = _params(rng, 3, np.float32)
    ro = a["rm"].copy()
    ro.flags.writeable = False
    a["ro"] = ro
    snap = {k: v.copy() for k, v in a.items()}
    call, exc, msg = BAD[i]
    with pytest.raises(exc, match=msg):
        call(a)
    for k, v in snap.items():
        np.testing.assert_array_equal(a[k], v)
