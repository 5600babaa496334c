"""GELU and LeakyReLU kernels: accuracy against float64 erfc, torch, finite differences, special
values, every ISA, any thread count, bad input."""

from __future__ import annotations

import math

import nnfast as nf
import numpy as np
import pytest
from conftest import with_num_threads
from nnfast import reference as ref

_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _gelu64(x):
    x = np.asarray(x, np.float64)
    return x * 0.5 * np.asarray(_ERFC(-x * math.sqrt(0.5)), np.float64)


def _dgelu64(x):
    x = np.asarray(x, np.float64)
    phi = 0.5 * np.asarray(_ERFC(-x * math.sqrt(0.5)), np.float64)
    return phi + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _ulps32(got, want):
    # error in units of the float32 spacing at the reference (normal spacing floor for tiny values)
    tiny = np.finfo(np.float32).tiny
    sp = np.spacing(np.maximum(np.abs(want.astype(np.float32)), tiny)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / sp


def _sweep(rng, n=200_000):
    return np.concatenate([
        rng.uniform(-15, 15, n), rng.uniform(-1.5, 1.5, n // 2), rng.standard_normal(n // 2),
        np.linspace(-16, 16, 20_001),
    ]).astype(np.float32)


def test_gelu_float32_within_8_ulps_on_every_isa(isa, rng):
    x = _sweep(rng)
    u = _ulps32(nf.gelu(x), _gelu64(x))
    assert u.max() <= 8, f"max {u.max():.2f} ulps at x = {x[np.argmax(u)]!r}"


def test_gelu_backward_float32_accuracy_on_every_isa(isa, rng):
    x = _sweep(rng)
    g = rng.standard_normal(x.size).astype(np.float32)
    got = nf.gelu_backward(g, x).astype(np.float64)
    want = g.astype(np.float64) * _dgelu64(x)
    # gelu' is at most 1.13 and crosses 0 at x = -0.75: absolute error against the scale of g
    err = np.abs(got - want) / np.maximum(np.abs(g), 1e-30)
    assert err.max() <= 4e-7, f"max {err.max():.3g} at x = {x[np.argmax(err)]!r}"


def test_gelu_float64_matches_erfc_reference(rng):
    x = rng.uniform(-30, 30, 50_000)
    np.testing.assert_allclose(nf.gelu(x), _gelu64(x), rtol=1e-15, atol=0)
    g = rng.standard_normal(x.size)
    # (against |g|: gelu' crosses 0, where its relative error is unbounded in any implementation)
    err = np.abs(nf.gelu_backward(g, x) - g * _dgelu64(x)) / np.abs(g)
    assert err.max() <= 1e-15
    np.testing.assert_allclose(nf.gelu(x), ref.gelu(x), rtol=1e-15, atol=0)


def test_gelu_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30, 20.0, -20.0], np.float32)
    for dt in (np.float32, np.float64):
        y = nf.gelu(x.astype(dt))
        # the limits at +-inf (torch: NaN at -inf, and at +inf in float32)
        assert y[0] == np.inf and y[1] == 0 and np.signbit(y[1]) and np.isnan(y[2])
        assert y[3] == 0 and y[4] == 0 and np.signbit(y[4])
        assert y[5] == dt(np.float32(1e30)) and y[6] == 0 and y[7] == 20
        assert float(abs(y[8])) < 1e-80  # -20 Phi(-20) = -5.5e-88 (0 in float32)
        d = nf.gelu_backward(np.ones(x.size, dt), x.astype(dt))
        assert d[0] == 1 and d[1] == 0 and np.isnan(d[2]) and abs(d[3] - 0.5) < 2e-7
        assert d[7] == 1 and float(abs(d[8])) < 1e-80 and d[6] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_and_leaky_relu_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    # torch computes 1 + erf(x / sqrt2): exact to 1e-10 only where that does not cancel
    x = (rng.uniform(-4, 4, (37, 41))).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-6)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.nn.functional.gelu(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(nf.gelu(x), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(nf.gelu_backward(g, x), tx.grad.numpy(), **tol)
    for slope in (0.01, 0.2, -0.5, 0.0):
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ty = torch.nn.functional.leaky_relu(tx, slope)
        ty.backward(torch.from_numpy(g))
        np.testing.assert_array_equal(nf.leaky_relu(x, slope), ty.detach().numpy())
        np.testing.assert_array_equal(nf.leaky_relu_backward(g, x, slope), tx.grad.numpy())


def test_finite_differences_float64(rng):
    x = rng.uniform(-5, 5, 200)
    x = x[np.abs(x) > 1e-3]  # leaky relu's kink
    h = 1e-6
    num = (_gelu64(x + h) - _gelu64(x - h)) / (2 * h)
    np.testing.assert_allclose(nf.gelu_backward(np.ones_like(x), x), num, rtol=1e-7, atol=1e-8)
    num = (nf.leaky_relu(x + h, 0.3) - nf.leaky_relu(x - h, 0.3)) / (2 * h)
    np.testing.assert_allclose(nf.leaky_relu_backward(np.ones_like(x), x, 0.3), num, rtol=1e-7)


def test_leaky_relu_matches_reference_on_every_isa(isa, rng):
    for dt in (np.float32, np.float64):
        for n in (0, 1, 7, 16, 33, 1000):
            x = rng.standard_normal(n).astype(dt)
            x[: n // 3] = 0
            g = rng.standard_normal(n).astype(dt)
            np.testing.assert_array_equal(nf.leaky_relu(x, 0.1), ref.leaky_relu(x, 0.1))
            np.testing.assert_array_equal(nf.leaky_relu_backward(g, x, 0.1),
                                          ref.leaky_relu_backward(g, x, 0.1))
    y = nf.leaky_relu(np.array([np.nan, -0.0, 0.0, -np.inf], np.float32), 0.01)
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 0 and y[3] == -np.inf


def test_odd_sizes_and_shapes_on_every_isa(isa, rng):
    for shape in [(), (1,), (15,), (17,), (3, 5, 7), (0, 4)]:
        x = np.asarray(rng.uniform(-6, 6, shape), np.float32)
        want = _gelu64(x)
        got = nf.gelu(x)
        assert np.shape(got) == shape
        assert _ulps32(np.asarray(got), np.asarray(want)).max(initial=0) <= 8


def test_identical_bits_for_any_thread_count(rng):
    x = rng.standard_normal(300_001).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    runs = []
    for t in (1, 2, 3):
        with with_num_threads(t):
            runs.append((nf.gelu(x), nf.gelu_backward(g, x), nf.leaky_relu(x, 0.2),
                         nf.leaky_relu_backward(g, x, 0.2)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_out_and_in_place(rng):
    x = rng.standard_normal(100).astype(np.float32)
    g = rng.standard_normal(100).astype(np.float32)
    want = nf.gelu_backward(g, x)
    g2 = g.copy()
    assert nf.gelu_backward(g2, x, out=g2) is g2
    np.testing.assert_array_equal(g2, want)
    x2 = x.copy()
    assert nf.leaky_relu(x2, 0.1, out=x2) is x2
    np.testing.assert_array_equal(x2, nf.leaky_relu(x, 0.1))


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: nf.leaky_relu(np.ones(3), "a"), TypeError, "leaky_relu: negative_slope must be"),
        (lambda: nf.leaky_relu(np.ones(3), float("nan")), ValueError,
         "leaky_relu: negative_slope must be finite"),
        (lambda: nf.leaky_relu(np.ones(3, np.float32), 1e300), ValueError, "negative_slope"),
        (lambda: nf.leaky_relu(np.ones(3), True), TypeError, "negative_slope"),
        (lambda: nf.gelu_backward(np.ones(3), np.ones(4)), ValueError,
         r"gelu_backward: z must have the shape of grad_y \(3,\), got \(4,\)"),
        (lambda: nf.leaky_relu_backward(np.ones(3), np.ones(4), 0.1), ValueError,
         r"leaky_relu_backward: z must have the shape of grad_y \(3,\), got \(4,\)"),
        (lambda: nf.gelu("x"), TypeError, "gelu: z must be an array of numbers, got str"),
        (lambda: nf.gelu(np.ones(3), out=np.ones(4)), ValueError, "gelu: out"),
    ],
)
def test_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()
