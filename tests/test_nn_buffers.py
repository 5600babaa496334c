"""The training step reuses its arrays: no large allocation per batch, and the same bits.

nnfast.nn layers keep their activations, gradients and masks per batch size and pass them to the
kernels' out=. ``Layer._reuse = False`` runs the very same code with every out= None (each kernel
allocating its results, as before the buffers existed): the reference the buffers must reproduce.
"""

from __future__ import annotations

import tracemalloc

import nnfast as nf
import numpy as np
import pytest
from nnfast import nn


def _cnn(dtype="float32", hw=28, c1=8, c2=16):
    q = hw // 4
    return nn.Sequential(
        [
            nn.Conv2D(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
            nn.Flatten(), nn.Dense(c2 * q * q, 10, activation="softmax"),
        ],
        seed=3,
        dtype=dtype,
    )  # fmt: skip


def _mixed(dtype="float32"):
    # every layer kind un-fused at least once: Conv2D + Sigmoid / Tanh, a ReLU after an activated
    # Dense, a final Softmax layer (trained with mse, so not fused with the loss)
    return nn.Sequential(
        [
            nn.Conv2D(1, 3, 3), nn.Sigmoid(), nn.Conv2D(3, 4, 3, stride=2, padding=1), nn.Tanh(),
            nn.MaxPool2D(2, stride=1), nn.Flatten(), nn.Dense(36, 12, activation="tanh"),
            nn.ReLU(), nn.Dense(12, 5), nn.Softmax(),
        ],
        seed=5,
        dtype=dtype,
    )  # fmt: skip


def _images(n, hw, rng):
    return rng.random((n, 1, hw, hw), dtype=np.float32)


def _peak_rise_per_step(step, steps=4):
    """Largest rise of traced memory (NumPy's buffers included) during any of ``steps`` calls."""
    tracemalloc.start()
    try:
        worst = 0
        for _ in range(steps):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            step()
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
        return worst
    finally:
        tracemalloc.stop()


def _cnn_step(rng, with_model=False):
    x = _images(64, 28, rng)
    y = rng.integers(0, 10, 64)
    model = _cnn()
    opt = nf.SGD(0.01, momentum=0.9)
    model.fit(x, y, epochs=1, batch_size=64, optimizer=opt, shuffle=False, verbose=0)
    step = model._train_step_fn(x, y, "cross_entropy", opt)
    step()  # warm-up: every buffer allocated
    return (model, step) if with_model else step


# A step still allocates small Python objects (tuples, floats, the label view); no array (the
# loss gradient, 64 x 10, is a reused buffer too: see test_loss_gradient_is_a_reused_buffer).
STEP_LIMIT = 16 * 1024


def test_steady_state_training_step_allocates_no_large_array(rng):
    step = _cnn_step(rng)
    assert _peak_rise_per_step(step) < STEP_LIMIT


def test_the_allocation_measure_sees_the_allocating_path(rng, monkeypatch):
    # Control for the test above: the same step with every out= None rises by the gradients and
    # activations (the first pooling's indices alone are 64*8*14*14*8 bytes = 800 kB).
    monkeypatch.setattr(nn.Layer, "_reuse", False)
    step = _cnn_step(rng)
    assert _peak_rise_per_step(step, steps=2) > 800_000


def test_fit_epoch_allocates_no_large_array_after_the_first(rng):
    # 10 full batches and a partial one: the partial batch's buffers are made in the first epoch.
    n = 64 * 10 + 17
    x, y = _images(n, 28, rng), rng.integers(0, 10, n)
    model = _cnn()
    kw = dict(batch_size=64, optimizer=nf.SGD(0.01), verbose=0)
    model.fit(x, y, epochs=1, **kw)
    # per epoch: the shuffled order (n int64) and the History; per step as above
    assert _peak_rise_per_step(lambda: model.fit(x, y, epochs=1, **kw), steps=2) < (
        STEP_LIMIT + 8 * n
    )


def _train(make, dtype, loss, opt, x, y, val, epochs=2):
    model = make(dtype)
    hist = model.fit(
        x, y, epochs=epochs, batch_size=16, loss=loss, optimizer=opt, validation_data=val, verbose=0
    )
    return model, hist


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "net, loss, opt",
    [
        (_cnn, "cross_entropy", lambda: nf.SGD(0.05, momentum=0.9)),
        (_cnn, "cross_entropy", lambda: nf.Adam(2e-3)),
        (_mixed, "mse", lambda: nf.Adam(1e-2)),
    ],
    ids=["cnn-sgd", "cnn-adam", "mixed-mse"],
)
def test_reused_buffers_train_bit_identically_to_allocating_calls(
    net, loss, opt, dtype, rng, monkeypatch
):
    hw = 12 if net is _cnn else 9
    make = (lambda d: _cnn(d, hw=hw, c1=4, c2=6)) if net is _cnn else net
    n = 16 * 3 + 5  # a partial last batch
    x = _images(n, hw, rng)
    labels = rng.integers(0, 5, n)
    y = labels if loss == "cross_entropy" else np.eye(5)[labels]
    val = (_images(7, hw, rng), y[:7])
    reused, h1 = _train(make, dtype, loss, opt(), x, y, val)
    monkeypatch.setattr(nn.Layer, "_reuse", False)
    fresh, h2 = _train(make, dtype, loss, opt(), x, y, val)
    p1, p2 = reused.parameters(), fresh.parameters()
    assert len(p1) == len(p2) > 0
    for a, b in zip(p1, p2):
        assert a.dtype == np.dtype(dtype) and a.tobytes() == b.tobytes()
    assert h1.history == h2.history
    # and training moved the weights (so equality is not trivially of the initial weights)
    init = make(dtype)
    init.build(x.shape[1:])
    assert any(a.tobytes() != b.tobytes() for a, b in zip(p1, init.parameters()))


def test_layer_gradients_and_outputs_are_reused_buffers(rng):
    model, step = _cnn_step(rng, with_model=True)
    layers = [layer for layer in model.layers if layer.parameters()]

    def ids():
        grads = [id(a) for layer in layers for a in layer.gradients()]
        return grads + [id(layer._y) for layer in model._ops if hasattr(layer, "_y")]

    before = ids()
    step()
    assert ids() == before


def test_buffers_are_bounded_over_many_batch_sizes(rng):
    model = _cnn(hw=12, c1=2, c2=2)
    x = _images(300, 12, rng)
    want = model.predict_proba(x)
    for n in range(1, 120):  # 119 different sizes
        np.testing.assert_allclose(model.predict_proba(x[:n]), want[:n], rtol=1e-5, atol=1e-7)
    assert all(len(layer._cache) <= nn._MAX_BUFFERS for layer in model.layers)
    assert len(model._xbuf) <= nn._MAX_BUFFERS


def test_loss_gradient_is_a_reused_buffer(rng, monkeypatch):
    # The fused softmax cross-entropy writes its gradient into the same array every step.
    model, step = _cnn_step(rng, with_model=True)
    seen = []
    real = nf.functional.softmax_cross_entropy

    def spy(logits, labels, out=None):
        loss, grad = real(logits, labels, out=out)
        seen.append((out is grad, id(grad)))
        return loss, grad

    monkeypatch.setattr(nf.functional, "softmax_cross_entropy", spy)
    step()
    step()
    assert len(seen) == 2
    assert all(passed for passed, _ in seen)
    assert seen[0][1] == seen[1][1]
