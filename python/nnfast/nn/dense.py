"""Fully connected layers: :class:`Dense` and the :class:`Flatten` that feeds it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .activations import GEMM_ACTIVATIONS, check_activation
from .module import Module, _glorot_or_he, _positive_int

__all__ = ["Dense", "Flatten"]


class Dense(Module):
    """Fully connected layer ``act(x @ W + b)``; ``W`` is ``(in_features, out_features)``.

    Parameters
    ----------
    in_features, out_features : int
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"} or None
        Fused into the matrix product (as is a following activation layer of these kinds).
    """

    _absorbs = GEMM_ACTIVATIONS
    _loss_fwd_linear = False
    _loss_bwd_linear = False

    def __init__(self, in_features: int, out_features: int, activation: str | None = None) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Dense")
        self.out_features = _positive_int(out_features, "out_features", "Dense")
        self.activation = check_activation(activation, "Dense", GEMM_ACTIVATIONS)
        self._act = self.activation
        self.register_parameter("W", None)
        self.register_parameter("b", None)

    def config(self) -> dict[str, Any]:
        act = None if self.activation == "linear" else self.activation
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": act}

    def _output_shape(self, input_shape):
        if input_shape != (self.in_features,):
            raise ValueError(
                f"{self!r} expects inputs of {self.in_features} features, got samples of shape "
                f"{input_shape}"
                + (" (add a Flatten layer before it)" if len(input_shape) > 1 else "")
            )
        return (self.out_features,)

    def _make_parameters(self, dtype, rng):
        if self.W is None:
            self.W = _glorot_or_he(rng, (self.in_features, self.out_features), self.in_features,
                                   self.out_features, self._act, dtype)
            self.b = np.zeros(self.out_features, dtype=dtype)
        elif self.W.dtype != dtype:
            self.W, self.b = self.W.astype(dtype), self.b.astype(dtype)

    def _final_activation(self) -> str:
        return self._act

    def _tail(self):
        return self

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._x = x
        act = "linear" if self._loss_fwd_linear else self._act
        y = F.dense(x, self.W, self.b, act, self._buffer(x.shape[0], x.dtype))
        self._y = y
        self._ran = True
        return y

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        x = self._x
        act = "linear" if self._loss_bwd_linear else self._act
        out = (
            self._grad_x(x),
            self._scratch("grad_W", self.W.shape, x.dtype),
            self._scratch("grad_b", self.b.shape, x.dtype),
        )
        gx, gw, gb = F.dense_backward(x, self.W, self._y, grad, act, out=out)
        self.grads = {"W": gw, "b": gb}
        return gx


class Flatten(Module):
    """Flattens each sample to a vector (a view, no copy)."""

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._xshape = x.shape
        self._ran = True
        return x.reshape(x.shape[0], -1)

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        return grad.reshape(self._xshape)
