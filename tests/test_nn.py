"""nnfast.nn: gradients of whole networks by finite differences, training, bad input."""

from __future__ import annotations

from pathlib import Path

import nnfast as nf
import numpy as np
import pytest
from nnfast.losses import get_loss
from nnfast.nn import Dense, Flatten, ReLU, Sequential, Sigmoid, Softmax, Tanh

MNIST = Path("/work/shared/data/mnist")
HAS_CONV = hasattr(nf.functional, "conv2d") and hasattr(nf.functional, "max_pool2d_backward")


def loss_and_grads(model, x, t, loss_name):
    """Loss of one batch and the analytic gradient of every parameter (no update)."""
    loss = get_loss(loss_name)
    fused, transform = model._loss_mode(loss)
    model._set_loss_fusion(False, fused)  # the loss gradient is w.r.t. the last pre-activation
    try:
        out = model._transform(model.forward(x), transform)
        value, grad = loss.value_and_grad(out, t, fused)
        model._backward(grad, False)
    finally:
        model._set_loss_fusion(False, False)
    return value, [g.copy() for g in model.gradients()]


def check_gradients(model, x, y, loss_name, h=1e-6, rtol=1e-5, atol=1e-8):
    x = model._as_input(x, "test")
    t = model._targets(y, x.shape[0], get_loss(loss_name), "test")
    _, grads = loss_and_grads(model, x, t, loss_name)
    params = model.parameters()
    assert len(params) == len(grads) and params
    for p, g in zip(params, grads):
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = loss_and_grads(model, x, t, loss_name)[0]
            p[i] = old - h
            down = loss_and_grads(model, x, t, loss_name)[0]
            p[i] = old
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol)


NETS = {
    "fused-softmax-ce": (
        lambda: [Dense(4, 6), ReLU(), Dense(6, 5, activation="tanh"), Dense(5, 3), Softmax()],
        "cross_entropy",
        3,
    ),
    "logits-ce": (lambda: [Dense(4, 5, activation="sigmoid"), Dense(5, 3)], "cross_entropy", 3),
    "unfused-activations": (
        lambda: [
            Tanh(),
            Dense(4, 5),
            Flatten(),
            Sigmoid(),
            Dense(5, 3, activation="relu"),
            Softmax(),
        ],
        "cross_entropy",
        3,
    ),
    "mse-sigmoid": (lambda: [Dense(4, 5, activation="relu"), Dense(5, 2), Sigmoid()], "mse", 2),
    "bce-sigmoid": (
        lambda: [Dense(4, 5), Tanh(), Dense(5, 1, activation="sigmoid")],
        "binary_cross_entropy",
        1,
    ),
    "bce-logits": (lambda: [Dense(4, 5), ReLU(), Dense(5, 2)], "binary_cross_entropy", 2),
    "mse-softmax": (lambda: [Dense(4, 3, activation="softmax")], "mse", 3),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_whole_network_gradients_by_finite_differences(name, rng):
    make, loss, n_out = NETS[name]
    model = Sequential(make(), seed=3, dtype="float64")
    x = rng.standard_normal((7, 4))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, 7)
    elif loss == "binary_cross_entropy":
        y = (rng.random((7, n_out)) > 0.5).astype(float)
    else:
        y = rng.random((7, n_out))
    check_gradients(model, x, y, loss)


@pytest.mark.skipif(not HAS_CONV, reason="conv2d/max_pool2d kernels not merged yet")
def test_cnn_gradients_by_finite_differences(rng):
    from nnfast.nn import Conv2D, MaxPool2D

    model = Sequential(
        [
            Conv2D(2, 3, 3, padding=1),
            ReLU(),
            MaxPool2D(2),
            Conv2D(3, 2, (2, 3), stride=1, padding=(1, 0)),
            Tanh(),
            Flatten(),
            Dense(2 * 5 * 2, 3, activation="softmax"),
        ],
        seed=1,
        dtype="float64",
    )
    x = rng.standard_normal((3, 2, 8, 8))
    check_gradients(model, x, rng.integers(0, 3, 3), "cross_entropy")


def split_digits(seed=0):
    X, y = nf.datasets.load_digits()
    order = np.random.default_rng(seed).permutation(len(X))
    tr, te = order[:1400], order[1400:]
    return X[tr], y[tr], X[te], y[te]


def test_mlp_learns_digits():
    xtr, ytr, xte, yte = split_digits()
    model = Sequential(
        [Flatten(), Dense(64, 64), ReLU(), Dense(64, 10, activation="softmax")], seed=0
    )
    hist = model.fit(
        xtr,
        ytr,
        epochs=25,
        batch_size=32,
        optimizer=nf.Adam(3e-3),
        verbose=0,
        validation_data=(xte, yte),
    )
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(hist["loss"]) == 25 and hist["loss"][-1] < hist["loss"][0] / 5
    res = model.evaluate(xte, yte)
    assert res["accuracy"] >= 0.95 and res["accuracy"] == pytest.approx(hist["val_accuracy"][-1])
    assert np.mean(model.predict(xte) == yte) == pytest.approx(res["accuracy"])
    proba = model.predict_proba(xte)
    assert proba.shape == (len(xte), 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)


def test_sgd_momentum_trains_xor_with_mse():
    X, y = nf.datasets.xor()
    model = Sequential([Dense(2, 8, activation="tanh"), Dense(8, 1, activation="sigmoid")], seed=1)
    model.fit(
        X, y, epochs=400, batch_size=8, loss="mse", optimizer=nf.SGD(0.5, momentum=0.9), verbose=0
    )
    np.testing.assert_array_equal(model.predict(X), y[:, 0])
    assert model.evaluate(X, y)["accuracy"] == 1.0


def test_same_seed_same_weights_after_training():
    xtr, ytr, _, _ = split_digits()
    xtr, ytr = xtr[:300], ytr[:300]

    def train(seed, dtype="float32"):
        m = Sequential(
            [Flatten(), Dense(64, 16, activation="relu"), Dense(16, 10)], seed=seed, dtype=dtype
        )
        m.fit(xtr, ytr, epochs=2, batch_size=50, verbose=0)
        return m.parameters()

    a, b, c = train(7), train(7), train(8)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a[0], c[0])
    assert all(p.dtype == np.float64 for p in train(7, "float64"))


def test_initialisation_he_and_glorot():
    m = Sequential([Dense(400, 300), ReLU(), Dense(300, 200, activation="tanh")], seed=0)
    m.build((400,))
    w1, w2 = m.layers[0].W, m.layers[2].W
    assert w1.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)  # He normal (fused ReLU)
    limit = np.sqrt(6 / 500)
    assert np.abs(w2).max() <= limit and w2.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not m.layers[0].b.any()


def test_verbose_levels(capsys):
    import re

    X, y = nf.datasets.xor()
    m = Sequential([Dense(2, 4, activation="relu"), Dense(4, 2)], seed=0)
    m.fit(X, y, epochs=2, batch_size=4, verbose=0)
    assert capsys.readouterr().out == ""
    m.fit(X, y, epochs=2, batch_size=4, verbose=2, validation_data=(X, y))
    lines = capsys.readouterr().out.strip().splitlines()
    line = (r"epoch 2/2 - \d+\.\d+s - loss \d\.\d{4} - accuracy \d+\.\d\d% - val_loss \d\.\d{4} - "
            r"val_accuracy \d+\.\d\d% - lr \d\.\de-\d\d")
    assert len(lines) == 2 and re.fullmatch(line, lines[1]), lines
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):  # each metric once
        assert len(re.findall(rf"(?<![a-z_]){metric} ", lines[1])) == 1, (metric, lines[1])
    # verbose=1 without a terminal (captured output): the same one line per epoch, no bar
    m.fit(X, y, epochs=1, batch_size=4, verbose=1)
    cap = capsys.readouterr()
    assert cap.out.startswith("epoch 1/1 - ") and "\r" not in cap.out and cap.err == ""
    assert len(cap.out.strip().splitlines()) == 1


def test_verbose_progress_plain_fallback_without_tqdm(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("tqdm hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    monkeypatch.setattr(nf.training, "_interactive", lambda: True)  # as on a terminal
    X, y = nf.datasets.xor()
    m = Sequential([Dense(2, 4, activation="relu"), Dense(4, 2)], seed=0)
    m.fit(X, y, epochs=1, batch_size=4, verbose=1)
    cap = capsys.readouterr()
    assert "epoch 1/1 [" in cap.out and "img/s" in cap.out and "8/8" in cap.out and cap.err == ""
    summary = cap.out.rsplit("\r\033[K", 1)[1]  # the bar's line is cleared, then the summary
    assert summary.startswith("epoch 1/1 - ") and summary.count("loss ") == 1


def test_fit_rejects_bad_input_before_training():
    X, y = nf.datasets.xor()
    m = Sequential([Dense(2, 4, activation="relu"), Dense(4, 2)], seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    before = [p.copy() for p in m.parameters()]
    cases = [
        ((X, y[:7]), ValueError, r"fit: X and y must have the same number of samples, got 8 and 7"),
        (
            (X[:, :1], y),
            ValueError,
            r"fit: X must have samples of shape \(2,\) for this network, got \(1,\)",
        ),
        ((X, y + 1), ValueError, r"fit: labels must be in 0..1 for 2 outputs, got labels in 1..2"),
        ((X, -y), ValueError, r"labels must be in 0..1"),
        ((np.where(X == 1, np.nan, X), y), ValueError, "fit: X contains NaN or infinity"),
        ((X, y * 0.5), ValueError, "fit: y must hold integer class labels"),
        (
            (X, np.ones((8, 3))),
            ValueError,
            r"fit: y must be integer class labels of shape \(n_samples,\)",
        ),
        ((np.array(["a"] * 8), y), TypeError, "fit: X must be an array of numbers"),
        ((X[0], y), ValueError, "fit: X must have a leading sample axis"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            m.fit(*args, verbose=0)
    with pytest.raises(ValueError, match="loss must be one of"):
        m.fit(X, y, loss="hinge", verbose=0)
    with pytest.raises(ValueError, match=r"fit: y must have shape \(n_samples, 2\) for loss 'mse'"):
        m.fit(X, y, loss="mse", verbose=0)
    with pytest.raises(ValueError, match="fit: y contains NaN"):
        m.fit(X, np.full((8, 2), np.inf), loss="mse", verbose=0)
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2"):
        m.fit(X, y, verbose=3)
    with pytest.raises(TypeError, match="optimizer must be an nnfast.optim optimizer"):
        m.fit(X, y, optimizer="adam", verbose=0)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): X must have samples of shape"):
        m.fit(X, y, validation_data=(X[:, :1], y), verbose=0)
    for p, q in zip(before, m.parameters()):
        np.testing.assert_array_equal(p, q)
    fresh = Sequential([Flatten(), Dense(10, 2)])
    with pytest.raises(
        ValueError,
        match=r"Dense\(in_features=10, out_features=2, activation=None\) expects inputs of 10 features, got samples of shape \(64,\)",
    ):
        fresh.fit(np.zeros((3, 1, 8, 8)), [0, 1, 0], verbose=0)
    with pytest.raises(ValueError, match="add a Flatten layer"):
        Sequential([Dense(64, 2)]).fit(np.zeros((3, 8, 8)), [0, 1, 0], verbose=0)
    with pytest.raises(
        ValueError, match="cross_entropy' needs a network ending in softmax or in linear logits"
    ):
        Sequential([Dense(2, 2, activation="relu")]).fit(X, y, verbose=0)


def test_layer_arguments_validated():
    with pytest.raises(ValueError, match="Dense: out_features must be >= 1, got 0"):
        Dense(3, 0)
    with pytest.raises(TypeError, match="Dense: in_features must be an int, got float"):
        Dense(3.0, 2)
    with pytest.raises(ValueError, match="Dense: activation must be one of"):
        Dense(3, 2, activation="gelu")
    with pytest.raises(TypeError, match="Sequential: layer 1 must be an nnfast.nn layer, got str"):
        Sequential([Dense(3, 2), "relu"])
    with pytest.raises(ValueError, match="Sequential: dtype must be float32 or float64"):
        Sequential([Dense(3, 2)], dtype="float16")
    assert "Dense(in_features=3, out_features=2, activation='relu')" in repr(
        Sequential([Dense(3, 2, "relu")])
    )


def tutorial_cnn(seed=0, dtype="float32", c1=8, c2=16, side=28, classes=10):
    from nnfast.nn import Conv2D, MaxPool2D

    return Sequential(
        [
            Conv2D(1, c1, 3, padding=1), ReLU(), MaxPool2D(2),
            Conv2D(c1, c2, 3, padding=1), ReLU(), MaxPool2D(2),
            Flatten(), Dense(c2 * (side // 4) ** 2, classes, activation="softmax"),
        ],
        seed=seed,
        dtype=dtype,
    )  # fmt: skip


@pytest.mark.skipif(not HAS_CONV, reason="conv2d/max_pool2d kernels not merged yet")
def test_cnn_step_matches_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    model = tutorial_cnn(seed=2, dtype="float64", c1=3, c2=4, side=12, classes=5)
    x = rng.standard_normal((6, 1, 12, 12))
    y = rng.integers(0, 5, 6)
    _, grads = loss_and_grads(model, model._as_input(x, "t"), y, "cross_entropy")
    c1, c2, d = model.layers[0], model.layers[3], model.layers[7]
    t = {k: torch.tensor(v, requires_grad=True) for k, v in
         dict(w1=c1.W, b1=c1.b, w2=c2.W, b2=c2.b, wd=d.W, bd=d.b).items()}  # fmt: skip
    h = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), t["w1"], t["b1"], padding=1))
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.relu(torch.nn.functional.conv2d(h, t["w2"], t["b2"], padding=1))
    h = torch.nn.functional.max_pool2d(h, 2).flatten(1)
    loss = torch.nn.functional.cross_entropy(h @ t["wd"] + t["bd"], torch.from_numpy(y))
    loss.backward()
    for g, k in zip(grads, ["w1", "b1", "w2", "b2", "wd", "bd"]):
        np.testing.assert_allclose(g, t[k].grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not HAS_CONV, reason="conv2d/max_pool2d kernels not merged yet")
def test_small_cnn_learns_digits():
    xtr, ytr, xte, yte = split_digits()
    model = tutorial_cnn(seed=0, side=8)
    model.fit(xtr, ytr, epochs=15, batch_size=32, optimizer=nf.Adam(3e-3), verbose=0)
    assert model.evaluate(xte, yte)["accuracy"] >= 0.95


@pytest.mark.skipif(not HAS_CONV, reason="conv2d/max_pool2d kernels not merged yet")
@pytest.mark.skipif(not MNIST.exists(), reason="MNIST files not present")
def test_cnn_on_real_mnist_subset():
    x, y = nf.datasets.load_mnist(MNIST, "train5k")
    xt, yt = nf.datasets.load_mnist(MNIST, "t10k")
    sub = np.random.default_rng(0).permutation(len(x))[:2000]  # train5k is sorted by class
    model = tutorial_cnn(seed=0)
    hist = model.fit(x[sub], y[sub], epochs=2, batch_size=64, optimizer=nf.Adam(3e-3), verbose=0)
    assert hist["accuracy"][-1] > 0.8
    assert model.evaluate(xt[:2000], yt[:2000])["accuracy"] > 0.85


def test_progress_bar_uses_tqdm_when_installed(monkeypatch, capsys):
    import sys
    import types

    calls = {}

    class FakeTqdm:
        def __init__(self, total, desc, unit, leave):
            calls.update(total=total, desc=desc, unit=unit, n=0)

        def update(self, n):
            calls["n"] += n

        def set_postfix(self, post, refresh):
            calls["post"] = post

        def close(self):
            calls["closed"] = True

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    monkeypatch.setattr(nf.training, "_interactive", lambda: True)  # as on a terminal
    X, y = nf.datasets.xor()
    Sequential([Dense(2, 2)], seed=0).fit(X, y[:, 0], epochs=1, batch_size=3, verbose=1)
    assert calls["total"] == 8 and calls["n"] == 8 and calls["closed"]
    assert set(calls["post"]) == {"loss", "img/s", "acc"} and calls["desc"] == "epoch 1/1"
    # With tqdm, only the epoch summary is printed (the bar draws itself).
    out = capsys.readouterr().out
    assert out.startswith("epoch 1/1 - ") and out.count("loss ") == 1 and "\r" not in out


@pytest.mark.parametrize("name", ["fused-softmax-ce", "logits-ce", "unfused-activations"])
def test_cross_entropy_trains_on_logits_with_the_same_gradients(name, rng):
    # fit's step takes the softmax_cross_entropy kernel on the logits; the probability-space
    # gradients (checked by finite differences above) must be what it applies.
    make, loss, n_out = NETS[name]
    model = Sequential(make(), seed=4, dtype="float64")
    x = model._as_input(rng.standard_normal((9, 4)), "t")
    y = rng.integers(0, n_out, 9)
    value, grads = loss_and_grads(model, x, y, loss)
    before = [p.copy() for p in model.parameters()]
    lval, out = model._train_step(x, y, get_loss(loss), True, None, nf.SGD(lr=1.0))
    assert lval == pytest.approx(value, rel=1e-12)
    for p0, p1, g in zip(before, model.parameters(), grads):
        np.testing.assert_allclose(p0 - p1, g, rtol=1e-9, atol=1e-14)


@pytest.mark.skipif(not HAS_CONV, reason="conv2d/max_pool2d kernels not merged yet")
@pytest.mark.parametrize("c,h,w,classes", [(1, 28, 28, 10), (1, 8, 8, 10), (2, 9, 11, 3)])
def test_tutorial_cnn_layers_fit_the_input_size(c, h, w, classes):
    from nnfast.nn import tutorial_cnn

    layers = tutorial_cnn(c, h, w, classes, activation="softmax")
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Conv2D", "ReLU", "MaxPool2D"] * 2 + ["Flatten", "Dense"]
    x = np.random.default_rng(0).random((3, c, h, w), dtype=np.float32)
    p = Sequential(layers, seed=0).predict_proba(x)
    assert p.shape == (3, classes)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "args,exc,msg",
    [
        (
            (1, 3, 28),
            ValueError,
            "tutorial_cnn: height must be >= 4 (two 2x2 poolings leave at least one pixel), got 3",
        ),
        ((1, 28, 2), ValueError, "tutorial_cnn: width must be >= 4"),
        ((1, 28.0, 28), TypeError, "tutorial_cnn: height must be an int, got float"),
        ((0, 28, 28), ValueError, "Conv2D: in_channels must be >= 1, got 0"),
        ((1, 28, 28, 0), ValueError, "Dense: out_features must be >= 1, got 0"),
    ],
)
def test_tutorial_cnn_bad_arguments(args, exc, msg):
    from nnfast.nn import tutorial_cnn

    with pytest.raises(exc) as info:
        tutorial_cnn(*args)
    assert str(info.value).startswith(msg)
