"""Networks: Modules (layers and containers) that train with mini-batches on the kernels.

A small, readable framework in the tutorial's spirit::

    import nnfast as nf
    from nnfast.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    model = Sequential([
        Conv2D(1, 8, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * 7 * 7, 10, activation="softmax"),
    ], seed=0)
    history = model.fit(X, y, epochs=10, batch_size=64, optimizer=nf.Adam(1e-3))

Layout: :mod:`.module` (the :class:`Module` base: parameters, buffers, ``state_dict``,
train/eval, children), :mod:`.containers` (:class:`Sequential`, :class:`Residual` and the
fusion planner), layers by family (:mod:`.dense`, :mod:`.conv`, :mod:`.pool`, :mod:`.norm`,
:mod:`.dropout`, :mod:`.activations`), :mod:`.io` (save/load) and
:mod:`nnfast.training` (``fit``/``evaluate``/``predict``, :class:`History`).

How it runs
-----------
* **Fusion.** When the model is built (on the first ``fit``/``predict``), a ``Dense`` followed by
  an activation layer becomes one ``dense`` kernel call with that activation in its epilogue, a
  ``Conv2D`` or BatchNorm followed by ``ReLU`` one kernel with the ReLU in its store, and a
  ``MaxPool2D`` after a fused ReLU applies the ReLU's derivative to its 4x smaller gradient. The
  last layer's softmax/sigmoid fuses with the cross-entropy losses.
* **Buffers.** Every layer keeps its forward outputs, gradients and workspaces per batch size and
  reuses them, so a steady-state training step allocates almost nothing. The arrays a layer
  returns or exposes (``forward``'s output, ``gradients()``) are therefore overwritten by the next
  batch of that size.
* **Initialisation** (seeded by the model's ``seed``): weights of a layer followed by ReLU are
  He-normal (std ``sqrt(2 / fan_in)``), all others Glorot-uniform; biases start at zero. The same
  seed gives the same weights, the same shuffling and therefore the same trained weights.
* **dtype.** float32 by default; ``Sequential(..., dtype="float64")`` for float64 end to end.
"""

from __future__ import annotations

from ..training import History
from .activations import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .containers import Residual, Sequential
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .models import tutorial_cnn
from .module import _MAX_BUFFERS, Module
from .norm import BatchNorm1D, BatchNorm2D
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D

# The base class's name before the Module core (kept so existing code keeps working).
Layer = Module

__all__ = [
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GELU",
    "GlobalAvgPool2D",
    "History",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "Module",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "tutorial_cnn",
    "_MAX_BUFFERS",
]
