"""Inverted dropout: :class:`Dropout`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from . import module as _m
from .module import Module

__all__ = ["Dropout"]

_GOLDEN = 0x9E3779B97F4A7C15


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training and scales the rest by
    ``1 / (1 - p)``; the identity in eval mode (torch's ``nn.Dropout``).

    The masks come from a counter-based generator (Philox4x32-10, see
    :func:`nnfast.functional.dropout`), so they are the same for any thread count. Its key for a
    training forward is derived from the model's ``seed``, this layer's position among the
    model's Dropout layers and the buffer ``steps`` (the number of training forwards so far,
    saved with the model): the same seed gives the same masks, and a model resumed from its
    state continues the same sequence. Without a seed the key starts from fresh entropy.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise TypeError(f"Dropout: p must be a number, got {type(p).__name__}")
        if not (math.isfinite(float(p)) and 0.0 <= float(p) < 1.0):
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.register_buffer("steps", np.zeros((), dtype=np.int64))
        self._base = None

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def _build_leaf(self, input_shape, dtype, rng):
        super()._build_leaf(input_shape, dtype, rng)
        ctx = _m._BUILD
        if ctx is None or ctx["seed"] is None:
            ss = np.random.SeedSequence()
        else:
            ss = np.random.SeedSequence([int(ctx["seed"]), 2, ctx["counter"]])
        if ctx is not None:
            ctx["counter"] += 1
        self._base = int(ss.generate_state(1, np.uint64)[0])

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        self._active = self.training and self.p > 0.0
        if not self._active:
            return x
        n = int(self.steps)
        self._key = (self._base + (n + 1) * _GOLDEN) % (1 << 64)
        self.steps[...] = n + 1
        return F.dropout(x, self.p, self._key, out=self._buffer(x.shape[0], x.dtype))

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if not self._active:
            return grad
        return F.dropout_backward(grad, self.p, self._key, out=self._grad_x(grad))
