"""BatchNorm1D/2D, LeakyReLU and GELU layers on the native kernels: equal to torch in float64
(training and eval, running statistics after three steps), the Conv2D+BatchNorm2D fusion, gradcheck,
save/load of the buffers, and bad input leaving the model unchanged."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from nnfast.nn import (
    GELU, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU,
    Residual, Sequential,
)  # fmt: skip
from nnfast.testing import gradcheck

torch = pytest.importorskip("torch")


def bn_resnet(**kw):
    """The issue's BatchNorm + residual CNN, small."""
    return Sequential([
        Conv2D(1, 4, 3, padding=1), BatchNorm2D(4), ReLU(),
        Residual(Sequential([Conv2D(4, 4, 3, padding=1), BatchNorm2D(4), ReLU(),
                             Conv2D(4, 4, 3, padding=1), BatchNorm2D(4)])),
        ReLU(), MaxPool2D(2),
        Conv2D(4, 6, 3, padding=1), BatchNorm2D(6), ReLU(), MaxPool2D(2),
        Flatten(), Dropout(0.0), Dense(24, 5),
    ], **kw)  # fmt: skip


class TorchTwin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        T = torch.nn
        self.c1, self.b1 = T.Conv2d(1, 4, 3, padding=1), T.BatchNorm2d(4)
        self.c2, self.b2 = T.Conv2d(4, 4, 3, padding=1), T.BatchNorm2d(4)
        self.c3, self.b3 = T.Conv2d(4, 4, 3, padding=1), T.BatchNorm2d(4)
        self.c4, self.b4 = T.Conv2d(4, 6, 3, padding=1), T.BatchNorm2d(6)
        self.fc = T.Linear(24, 5)

    def forward(self, x):
        r = torch.relu
        h = r(self.b1(self.c1(x)))
        h = torch.max_pool2d(r(self.b3(self.c3(r(self.b2(self.c2(h))))) + h), 2)
        h = torch.max_pool2d(r(self.b4(self.c4(h))), 2)
        return self.fc(h.flatten(1))


def _pairs(m, t):
    blk = m.layers[3].block.layers
    convs = [(m.layers[0], m.layers[1], t.c1, t.b1), (blk[0], blk[1], t.c2, t.b2),
             (blk[3], blk[4], t.c3, t.b3), (m.layers[6], m.layers[7], t.c4, t.b4)]
    return convs, m.layers[-1]


def _copy(m, t):
    convs, d = _pairs(m, t)
    with torch.no_grad():
        for c, b, tc, tb in convs:
            tc.weight.copy_(torch.from_numpy(c.W))
            tc.bias.copy_(torch.from_numpy(c.b))
            tb.weight.copy_(torch.from_numpy(b.gamma))
            tb.bias.copy_(torch.from_numpy(b.beta))
            tb.running_mean.copy_(torch.from_numpy(b.running_mean))
            tb.running_var.copy_(torch.from_numpy(b.running_var))
        t.fc.weight.copy_(torch.from_numpy(d.W.T))
        t.fc.bias.copy_(torch.from_numpy(d.b))


def _compare(m, t, **tol):
    convs, d = _pairs(m, t)
    grads = {id(p): g for p, g in zip(m.parameters(), m.gradients())}
    for c, b, tc, tb in convs:
        for arr, tp in ((c.W, tc.weight), (c.b, tc.bias), (b.gamma, tb.weight), (b.beta, tb.bias)):
            np.testing.assert_allclose(arr, tp.detach().numpy(), **tol)
            if tp.grad is not None:
                np.testing.assert_allclose(grads[id(arr)], tp.grad.numpy(), **tol)
        np.testing.assert_allclose(b.running_mean, tb.running_mean.numpy(), **tol)
        np.testing.assert_allclose(b.running_var, tb.running_var.numpy(), **tol)
        assert int(b.num_batches_tracked) == int(tb.num_batches_tracked)


def _step_both(m, t, x, g, **tol):
    """One forward and backward of the nnfast model and its torch twin; outputs and input
    gradients must agree."""
    y = m.forward(x).copy()
    gx = m.backward(g).copy()
    tx = torch.from_numpy(x).requires_grad_()
    t.zero_grad()
    ty = t(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(gx, tx.grad.numpy(), **tol)


def test_bn_resnet_equals_torch_float64_training_three_steps_then_eval(rng):
    m = bn_resnet(seed=0, dtype="float64")
    m.build((1, 8, 8))
    t = TorchTwin().double()
    _copy(m, t)
    tol = dict(rtol=1e-10, atol=1e-12)
    m.train()
    t.train()
    for step in range(3):
        x = rng.standard_normal((6, 1, 8, 8)) * 2 + 0.3
        _step_both(m, t, x, rng.standard_normal((6, 5)), **tol)
        _compare(m, t, **tol)
        for p, gr in zip(m.parameters(), m.gradients()):
            p -= 0.1 * gr
        with torch.no_grad():
            for p in t.parameters():
                p -= 0.1 * p.grad
    _compare(m, t, **tol)  # running statistics after three steps
    m.eval()
    t.eval()
    _step_both(m, t, rng.standard_normal((4, 1, 8, 8)), rng.standard_normal((4, 5)), **tol)
    _compare(m, t, **tol)  # eval: Conv2D+BN folded, gradients through the fold


def test_conv_absorbs_batchnorm_and_its_relu():
    m = bn_resnet(seed=0)
    m.build((1, 8, 8))
    c, b = m.layers[0], m.layers[1]
    assert c._bn is b and b._act == "relu"
    assert [n for n, _ in m.named_buffers()][:3] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked"]


def test_dense_leaky_gelu_bn1d_equal_torch_float64(rng):
    m = Sequential([Dense(7, 9), LeakyReLU(0.1), Dense(9, 8), GELU(), BatchNorm1D(8), ReLU(),
                    Dense(8, 3)], seed=1, dtype="float64")  # fmt: skip
    m.build((7,))
    T = torch.nn
    t = T.Sequential(T.Linear(7, 9), T.LeakyReLU(0.1), T.Linear(9, 8), T.GELU(), T.BatchNorm1d(8),
                     T.ReLU(), T.Linear(8, 3)).double()  # fmt: skip
    with torch.no_grad():
        for i in (0, 2, 6):
            t[i].weight.copy_(torch.from_numpy(m.layers[i].W.T))
            t[i].bias.copy_(torch.from_numpy(m.layers[i].b))
        t[4].weight.copy_(torch.from_numpy(m.layers[4].gamma + 0.5))
        m.layers[4].gamma += 0.5
    tol = dict(rtol=1e-10, atol=1e-12)
    for training in (True, True, False):
        m.train(training)
        t.train(training)
        _step_both(m, t, rng.uniform(-3, 3, (10, 7)), rng.standard_normal((10, 3)), **tol)
        grads = dict(m.named_gradients())
        np.testing.assert_allclose(grads["4.gamma"], t[4].weight.grad.numpy(), **tol)
        np.testing.assert_allclose(grads["2.W"], t[2].weight.grad.numpy().T, **tol)
        np.testing.assert_allclose(m.layers[4].running_var, t[4].running_var.numpy(), **tol)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_norm_and_activation_layers(training, rng):
    x4 = rng.standard_normal((4, 1, 6, 6))
    x2 = rng.standard_normal((6, 5))
    for m, x in (
        (bn_resnet(seed=2, dtype="float64"), rng.standard_normal((3, 1, 8, 8))),
        (Sequential([Conv2D(1, 3, 3), BatchNorm2D(3), GELU(), Flatten(), Dense(48, 2)], seed=3,
                    dtype="float64"), x4),  # fmt: skip
        (Sequential([Dense(5, 6), BatchNorm1D(6), LeakyReLU(0.2), Dense(6, 3)], seed=4,
                    dtype="float64"), x2),  # fmt: skip
        (Sequential([BatchNorm2D(1), ReLU(), Flatten()], seed=5, dtype="float64"), x4),
    ):
        m.build(x.shape[1:])
        m.train(training)
        if not training:  # non-trivial running statistics
            for b in m.modules():
                if isinstance(b, (BatchNorm1D, BatchNorm2D)):
                    b.running_mean[...] = rng.standard_normal(b.running_mean.shape) * 0.1
                    b.running_var[...] = rng.uniform(0.5, 2, b.running_var.shape)
        assert gradcheck(m, x)


def test_fit_predict_save_load_keeps_statistics(tmp_path, rng):
    X = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    m = bn_resnet(seed=7)
    m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    b = m.layers[1]
    assert int(b.num_batches_tracked) == 8 and not np.allclose(b.running_mean, 0)
    p = m.predict_proba(X)
    m.save(tmp_path / "m.npz")
    m2 = nf.load(tmp_path / "m.npz")
    assert repr(m2) == repr(m)
    np.testing.assert_array_equal(m2.predict_proba(X), p)
    for (n1, a), (n2, c) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2
        np.testing.assert_array_equal(a, c)


def test_bad_input_is_clear_and_leaves_the_model_unchanged(rng):
    m = bn_resnet(seed=0)
    m.build((1, 8, 8))
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        Sequential([Dense(3, 4), BatchNorm1D(4)], seed=0).fit(
            rng.standard_normal((1, 3)), np.zeros(1, int), epochs=1, batch_size=1, verbose=0)
    one = Sequential([Dense(3, 4), BatchNorm1D(4), Dense(4, 2)], seed=0)
    one.build((3,))
    sd = {k: v.copy() for k, v in one.state_dict().items()}
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        one.forward(rng.standard_normal((1, 3)).astype(np.float32))
    for k, v in one.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    with pytest.raises(ValueError, match="BatchNorm2D.*expects samples of shape .*with 3 channels"):
        Sequential([Conv2D(1, 4, 3), BatchNorm2D(3)], seed=0).build((1, 6, 6))
    with pytest.raises(ValueError, match="in_channels"):
        m.forward(rng.standard_normal((2, 2, 8, 8)).astype(np.float32))
    bn = Sequential([BatchNorm2D(4), Flatten()], seed=0)
    bn.build((4, 3, 3))
    bn_before = {k: v.copy() for k, v in bn.state_dict().items()}
    with pytest.raises(ValueError, match=r"BatchNorm2D.*with 4 channels, got \(2, 3, 3\)"):
        bn.forward(rng.standard_normal((5, 2, 3, 3)).astype(np.float32))
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, bn_before[k])
    with pytest.raises(RuntimeError, match="backward"):
        bn_resnet(seed=0).backward(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2D(3, eps=0)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1D(3, momentum=2)
    with pytest.raises(TypeError, match="negative_slope"):
        LeakyReLU("a")
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
