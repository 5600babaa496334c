"""The Module core: registration, names, state, modes, nesting, Residual, the new layers against
torch (float64), gradcheck, save/load of nested models, optimizer state by name, bad input."""

from __future__ import annotations

import json

import nnfast as nf
import numpy as np
import pytest
from nnfast import functional as F
from nnfast.nn import (
    AvgPool2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, Module, ReLU,
    Residual, Sequential, Sigmoid, Softmax, Tanh,
)  # fmt: skip
from nnfast.testing import GradcheckError, gradcheck

torch = pytest.importorskip("torch")


class Scale(Module):
    """A user's layer: y = x * s (per feature), as the README shows."""

    def __init__(self, n, wrong=False):
        super().__init__()
        self.register_parameter("s", np.linspace(0.5, 1.5, n))
        self.wrong = wrong

    def forward(self, x):
        self._x = x
        return x * self.s

    def backward(self, grad_y):
        self.grads["s"] = (grad_y * self._x).sum(axis=0) * (1.01 if self.wrong else 1.0)
        return grad_y * self.s


def small_cnn(**kw):
    return Sequential([
        Conv2D(2, 4, 3, padding=1), ReLU(),
        Residual(Sequential([Conv2D(4, 4, 3, padding=1), ReLU(), Conv2D(4, 4, 3, padding=1)])),
        ReLU(), MaxPool2D(2), Flatten(), Dropout(0.25), Dense(4 * 3 * 3, 5),
    ], **kw)  # fmt: skip


def test_registration_names_and_order():
    m = small_cnn(seed=0, dtype="float64")
    m.build((2, 6, 6))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.W", "0.b", "2.block.0.W", "2.block.0.b", "2.block.2.W", "2.block.2.b",
                     "7.W", "7.b"]  # fmt: skip
    assert [n for n, _ in m.named_buffers()] == ["6.steps"]
    assert len(m.parameters()) == len(m.gradients()) == 8
    assert all(g is None for g in m.gradients())  # before any backward
    assert m.children()[2].block is m.layers[2].block and len(m.modules()) == 13
    sd = m.state_dict()
    assert set(sd) == set(names) | {"6.steps"}
    sd["0.W"][...] = 0  # a copy
    assert m.layers[0].W.any()
    # reassigning a registered attribute updates the registry
    m.layers[7].W = np.zeros((36, 5))
    assert dict(m.named_parameters())["7.W"] is m.layers[7].W


def test_user_module_attributes_register_children_in_order():
    class Net(Module):
        def __init__(self):
            super().__init__()
            self.fc1 = Dense(4, 8)
            self.act = ReLU()
            self.fc2 = Dense(8, 3)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

        def backward(self, g):
            return self.fc1.backward(self.act.backward(self.fc2.backward(g)))

    net = Net()
    net.seed, net.dtype = 1, np.dtype(np.float64)
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    assert net.training
    h = net.fit(X, y, epochs=3, batch_size=16, verbose=0, optimizer=nf.SGD(0.1))
    assert net.training and h["loss"][-1] < h["loss"][0]
    assert [n for n, _ in net.named_parameters()] == ["fc1.W", "fc1.b", "fc2.W", "fc2.b"]
    net.eval()
    p = net.predict_proba(X)
    assert not net.training and p.shape == (64, 3)  # predict restores the mode it found
    np.testing.assert_allclose(p.sum(axis=1), 1)
    assert gradcheck(net, X[:3])
    assert "fc2 Dense" in net.summary(print_fn=None)


def test_backward_before_forward_is_a_runtime_error():
    for layer in (Dense(3, 2), ReLU(), Sequential([Dense(3, 2)]), Dropout(0.1), AvgPool2D()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.ones((1, 2)))


def test_train_eval_recursive_and_fit_restores_mode():
    m = small_cnn(seed=0)
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.layers[2].train()
    assert m.layers[2].block.layers[0].training and not m.layers[0].training
    X = np.random.default_rng(0).standard_normal((8, 2, 6, 6))
    before = [(x, x.training) for x in m.modules()]
    m.fit(X, np.arange(8) % 5, epochs=1, verbose=0)
    assert [(x, x.training) for x in m.modules()] == before


def _copy_to_torch(m):
    c1, blk, d = m.layers[0], m.layers[2].block, m.layers[7]
    t = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1),
        torch.nn.MaxPool2d(2), torch.nn.Linear(36, 5),
    ).double()  # fmt: skip
    for tm, nm in ((t[0], c1), (t[2], blk.layers[0]), (t[4], blk.layers[2])):
        tm.weight.data = torch.from_numpy(nm.W.copy())
        tm.bias.data = torch.from_numpy(nm.b.copy())
    t[6].weight.data = torch.from_numpy(d.W.T.copy())
    t[6].bias.data = torch.from_numpy(d.b.copy())
    return t


def test_residual_cnn_forward_backward_equal_torch_float64():
    m = small_cnn(seed=3, dtype="float64")
    m.build((2, 6, 6))
    m.eval()  # dropout off: the torch twin has none
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6))
    g = np.random.default_rng(2).standard_normal((3, 5))
    y = m.forward(x).copy()
    gx = m.backward(g).copy()
    t = _copy_to_torch(m)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    h = t[1](t[0](tx))
    h = torch.relu(t[4](t[3](t[2](h))) + h)
    ty = t[6](t[5](h).flatten(1))
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    grads = dict(m.named_gradients())
    pairs = [("0.W", t[0].weight), ("2.block.0.W", t[2].weight), ("2.block.2.b", t[4].bias),
             ("7.b", t[6].bias)]  # fmt: skip
    for name, tp in pairs:
        np.testing.assert_allclose(grads[name], tp.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_residual_shape_mismatch_and_shortcut():
    with pytest.raises(ValueError, match="Residual: the block's output has samples of shape"):
        Sequential([Residual(Dense(4, 3))], seed=0).build((4,))
    r = Sequential([Residual(Dense(4, 3), shortcut=Dense(4, 3))], seed=0, dtype="float64")
    r.build((4,))
    x = np.random.default_rng(0).standard_normal((5, 4))
    a, b = r.layers[0].block, r.layers[0].shortcut
    np.testing.assert_allclose(r.forward(x), x @ a.W + a.b + x @ b.W + b.b, rtol=1e-12)
    assert gradcheck(r, x)


@pytest.mark.parametrize("pool,stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_avg_pool_layers_equal_torch_float64(pool, stride, rng):
    x = rng.standard_normal((3, 2, 7, 8))
    layer = AvgPool2D(pool, stride)
    y = layer.forward(x).copy()
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, pool, stride)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12)
    gap = GlobalAvgPool2D()
    y2 = gap.forward(x)
    tx.grad = None
    t2 = tx.mean((2, 3))
    g2 = rng.standard_normal(y2.shape)
    t2.backward(torch.from_numpy(g2))
    np.testing.assert_allclose(y2, t2.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gap.backward(g2), tx.grad.numpy(), rtol=1e-12)


def test_dropout_masks_seeded_counted_and_identity_in_eval(rng):
    x = rng.standard_normal((4, 50))
    m1 = Sequential([Dropout(0.3)], seed=7, dtype="float64")
    m2 = Sequential([Dropout(0.3)], seed=7, dtype="float64")
    m1.build((50,))
    m2.build((50,))
    a, b = m1.forward(x).copy(), m1.forward(x).copy()
    assert not np.array_equal(a, b)  # a new mask every training forward
    np.testing.assert_array_equal(m2.forward(x), a)  # same seed, same masks
    d = m1.layers[0]
    keep = a != 0
    np.testing.assert_allclose(a[keep], x[keep] / 0.7, rtol=1e-15)
    assert 0.5 < keep.mean() < 0.9
    # the mask is the kernel's counter-based one for this step's key
    np.testing.assert_array_equal(b, x * F.dropout_mask(x.shape, 0.3, d._key))
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(m1.backward(g), g * F.dropout_mask(x.shape, 0.3, d._key))
    assert int(d.steps) == 2
    m1.eval()
    np.testing.assert_array_equal(m1.forward(x), x)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\)"):
            Dropout(bad)


def test_gradcheck_every_layer_and_catches_a_wrong_backward(rng):
    x4 = rng.standard_normal((3, 2, 6, 6))
    for m in (
        small_cnn(seed=0, dtype="float64"),
        Sequential([Conv2D(2, 3, 3), Tanh(), AvgPool2D(2), GlobalAvgPool2D(), Dense(3, 4),
                    Sigmoid()], seed=1, dtype="float64"),  # fmt: skip
        Sequential([Flatten(), Dense(72, 5), Softmax()], seed=2, dtype="float64"),
    ):
        assert gradcheck(m, x4)
    assert gradcheck(Sequential([Scale(4)], dtype="float64"), rng.standard_normal((3, 4)))
    with pytest.raises(GradcheckError, match=r"gradient of 0.s at index \(\d+,\): backward gives"):
        gradcheck(Sequential([Scale(4, wrong=True)], dtype="float64"), rng.standard_normal((3, 4)))


def test_nested_fusion_plan_and_same_training_as_flat(rng):
    X, y = rng.standard_normal((40, 1, 8, 8)), rng.integers(0, 3, 40)
    flat = Sequential(nf.nn.tutorial_cnn(1, 8, 8, 3), seed=5)
    parts = nf.nn.tutorial_cnn(1, 8, 8, 3)
    nested = Sequential([Sequential(parts[:3]), Sequential(parts[3:5]), *parts[5:]], seed=5)
    for m in (flat, nested):
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert nested.layers[1].layers[0]._act == "relu"  # Conv2D absorbed the ReLU inside
    assert nested.layers[2]._relu_mask  # the pool after the nested Conv+ReLU takes its mask
    for a, b in zip(flat.parameters(), nested.parameters()):
        np.testing.assert_array_equal(a, b)


def test_save_load_nested_residual_dropout(tmp_path, rng):
    m = small_cnn(seed=4)
    X = rng.standard_normal((16, 2, 6, 6))
    m.fit(X, np.arange(16) % 5, epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "m.npz")
    m2 = nf.load(tmp_path / "m.npz")
    assert repr(m2) == repr(m)
    for (n1, a), (n2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict_proba(X), m2.predict_proba(X))
    with np.load(tmp_path / "m.npz") as data:
        meta = json.loads(data["__nnfast__"].tobytes())
    assert meta["model"]["layers"][2]["type"] == "Residual"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left


def test_load_state_dict_errors_name_the_key_and_change_nothing():
    m = small_cnn(seed=0)
    m.build((2, 6, 6))
    good = m.state_dict()
    before = m.state_dict()
    cases = [
        ({k: v for k, v in good.items() if k != "7.b"}, r"missing key '7.b'"),
        ({**good, "extra.W": np.zeros(2)}, r"unexpected key 'extra.W'"),
        ({**good, "0.W": np.zeros((4, 2, 3, 2), np.float32)},
         r"'0.W' expected shape \(4, 2, 3, 3\) dtype float32, got shape \(4, 2, 3, 2\)"),
        ({**good, "0.b": np.zeros(4, np.float64)}, r"'0.b' expected .* float32, got .* float64"),
    ]
    for sd, msg in cases:
        sd = {k: (v + 1 if k == "7.W" else v) for k, v in sd.items()}
        with pytest.raises(ValueError, match=msg):
            m.load_state_dict(sd)
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v, before[k])
    m.load_state_dict({"7.b": np.ones(5, np.float32)}, strict=False)
    assert (m.layers[7].b == 1).all()


def test_optimizer_state_by_name_round_trips(rng):
    X, y = rng.standard_normal((32, 4)), rng.integers(0, 3, 32)

    def model():
        return Sequential([Dense(4, 6), ReLU(), Dense(6, 3)], seed=1)

    a, b = model(), model()
    oa = nf.Adam(1e-2)
    a.fit(X, y, epochs=2, batch_size=8, optimizer=oa, verbose=0, shuffle=False)
    sd = oa.state_dict()
    assert sd["t"] == 8 and set(sd["state"]) == {"0.W", "0.b", "2.W", "2.b"}
    b.fit(X, y, epochs=1, batch_size=8, optimizer=nf.Adam(1e-2), verbose=0, shuffle=False)
    # resume b's second epoch from a copy of a's state after one epoch
    c = model()
    oc = nf.Adam(1e-2)
    c.fit(X, y, epochs=1, batch_size=8, optimizer=oc, verbose=0, shuffle=False)
    ob = nf.Adam(1e-2)
    ob.load_state_dict(oc.state_dict())
    b.load_state_dict(c.state_dict())
    b.fit(X, y, epochs=1, batch_size=8, optimizer=ob, verbose=0, shuffle=False)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match="expected the state of a Adam, got 'SGD'"):
        ob.load_state_dict(nf.SGD().state_dict())


def test_summary_table():
    m = small_cnn(seed=0)
    with pytest.raises(RuntimeError, match="not built yet"):
        m.summary()
    m.build((2, 6, 6))
    text = m.summary(print_fn=None)
    assert "2 Residual" in text and "(None, 4, 6, 6)" in text and "(None, 5)" in text
    assert f"Total parameters: {sum(p.size for p in m.parameters()):,}" in text


def test_residual_dropout_training_is_bit_identical_for_any_thread_count(rng):
    X, y = rng.standard_normal((48, 2, 6, 6)).astype(np.float32), rng.integers(0, 5, 48)
    weights = []
    for n in (1, 2, 3):
        before = nf.get_num_threads()
        nf.set_num_threads(n)
        try:
            m = small_cnn(seed=11)
            m.fit(X, y, epochs=2, batch_size=16, verbose=0)
        finally:
            nf.set_num_threads(before)
        weights.append([p.tobytes() for p in m.parameters()])
    assert weights[0] == weights[1] == weights[2]
