"""Optimizer kernels (sgd_step, adam_step) and nnfast.optim against NumPy formulas and torch."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import TOL, with_num_threads
from nnfast import _core
from nnfast.optim import SGD, Adam

SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 33, 100, 70_001]
DTYPES = [np.float32, np.float64]


def ref_sgd(p, g, v, lr, mom):
    if v is None:
        return p - lr * g, None
    v = mom * v + g
    return p - lr * v, v


def ref_adam(p, g, m, v, lr, b1, b2, eps, t):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
    return p - lr / (1 - b1**t) * m / denom, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sgd_step_matches_reference(isa, dtype, n, rng):
    p0 = rng.standard_normal(n)
    g = rng.standard_normal(n)
    v0 = rng.standard_normal(n)
    for mom, use_v in [(0.0, False), (0.9, True), (0.0, True)]:
        p, v = p0.astype(dtype), v0.astype(dtype) if use_v else None
        _core.sgd_step(p, g.astype(dtype), v, 0.05, mom)
        rp, rv = ref_sgd(p0, g, v0 if use_v else None, 0.05, mom)
        np.testing.assert_allclose(p, rp, **TOL[dtype])
        if use_v:
            np.testing.assert_allclose(v, rv, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_adam_step_matches_reference(isa, dtype, n, rng):
    p, m, v = rng.standard_normal(n), rng.standard_normal(n), rng.random(n)
    pp, mm, vv = p.astype(dtype), m.astype(dtype), v.astype(dtype)
    for t in (1, 2, 50):
        g = rng.standard_normal(n)
        _core.adam_step(pp, g.astype(dtype), mm, vv, 1e-2, 0.9, 0.999, 1e-8, t)
        p, m, v = ref_adam(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, t)
        tol = dict(rtol=5e-5, atol=5e-6) if dtype == np.float32 else TOL[dtype]
        np.testing.assert_allclose(pp, p, **tol)
        np.testing.assert_allclose(mm, m, **tol)
        np.testing.assert_allclose(vv, v, **tol)


def test_updates_bit_identical_for_any_thread_count(threads, rng):
    n = 300_007
    p0, g, v0 = (rng.standard_normal(n, dtype=np.float32) for _ in range(3))
    outs = []
    for nt in (1, threads):
        with with_num_threads(nt):
            p, v = p0.copy(), v0.copy()
            _core.sgd_step(p, g, v, 0.1, 0.9)
            m, vv = v0.copy(), np.abs(v0)
            _core.adam_step(p, g, m, vv, 1e-3, 0.9, 0.999, 1e-8, 3)
            outs.append((p, v, m, vv))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizers_match_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    shapes = [(5, 3), (3,), (2, 1, 3, 3)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(6)]
    cases = [
        (SGD(lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
        (SGD(lr=0.05, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
        (Adam(lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
        (
            Adam(lr=0.003, beta1=0.8, beta2=0.99, eps=1e-6),
            lambda ps: torch.optim.Adam(ps, lr=0.003, betas=(0.8, 0.99), eps=1e-6),
        ),
    ]
    for ours, make_torch in cases:
        mine = [p.copy() for p in params]
        theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params]
        topt = make_torch(theirs)
        for gs in grads:
            ours.step(zip(mine, gs))
            for t, g in zip(theirs, gs):
                t.grad = torch.from_numpy(g.copy())
            topt.step()
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
        for a, t in zip(mine, theirs):
            np.testing.assert_allclose(a, t.detach().numpy(), **tol)


def test_optimizer_state_and_config():
    p = np.ones(4)
    opt = Adam(lr=0.1)
    opt.step([(p, np.ones(4))])
    assert opt.t == 1 and opt.config() == {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    opt.reset()
    assert opt.t == 0
    s = SGD(lr=0.5, momentum=0.5)
    q = np.zeros(2)
    s.step([(q, np.ones(2))])
    s.step([(q, np.ones(2))])
    np.testing.assert_allclose(q, [-0.5 - 0.75, -0.5 - 0.75])
    assert repr(s) == "SGD(lr=0.5, momentum=0.5)" and "Adam(lr=0.1" in repr(opt)
    assert nf.SGD is SGD and nf.Adam is Adam


def test_optimizer_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"SGD: momentum must be in \[0, 1\), got 1.0"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="SGD: lr must be a finite number >= 0.0, got nan"):
        SGD(lr=float("nan"))
    with pytest.raises(TypeError, match="Adam: lr must be a number, got str"):
        Adam(lr="0.1")
    with pytest.raises(ValueError, match=r"Adam: beta2 must be in \[0, 1\)"):
        Adam(beta2=1.0)


def test_kernel_bad_input():
    p = np.zeros(4)
    with pytest.raises(ValueError, match=r"sgd_step: grad must have the shape of param \(4,\)"):
        _core.sgd_step(p, np.zeros(5), None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: .*dtype"):
        _core.sgd_step(p, np.zeros(4, np.float32), None, 0.1)
    with pytest.raises(TypeError, match="sgd_step: param"):
        _core.sgd_step(np.zeros(4, np.int64), np.zeros(4), None, 0.1)
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="sgd_step: param must be writeable"):
        _core.sgd_step(ro, np.zeros(4), None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: param and grad must not overlap"):
        _core.sgd_step(p, p, None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: velocity must have the shape of param"):
        _core.sgd_step(p, np.zeros(4), np.zeros(3), 0.1, 0.9)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.sgd_step(np.zeros(8)[::2], np.zeros(4), None, 0.1)
    with pytest.raises(ValueError, match="sgd_step: lr must be finite"):
        _core.sgd_step(p, np.zeros(4), None, float("inf"))
    m, v = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match=r"adam_step: step must be"):
        _core.adam_step(p, np.zeros(4), m, v, 0.1, 0.9, 0.999, 1e-8, 0)
    with pytest.raises(ValueError, match=r"adam_step: step must be"):
        _core.adam_step(p, np.zeros(4), m, v, 0.1, 0.9, 0.999, 1e-8, 2**70)
    with pytest.raises(ValueError, match=r"adam_step: beta1 must be in \[0, 1\)"):
        _core.adam_step(p, np.zeros(4), m, v, 0.1, 1.5, 0.999, 1e-8, 1)
    with pytest.raises(ValueError, match="adam_step: m and v must not overlap"):
        _core.adam_step(p, np.zeros(4), m, m, 0.1, 0.9, 0.999, 1e-8, 1)
    np.testing.assert_array_equal(p, 0)
