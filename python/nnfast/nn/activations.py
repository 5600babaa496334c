"""Element-wise activation layers: ReLU, LeakyReLU, GELU, Sigmoid, Tanh and Softmax.

A layer right after a :class:`~nnfast.nn.Dense` (any activation its GEMM epilogue applies) or
a :class:`~nnfast.nn.Conv2D` / BatchNorm (ReLU) is fused into that layer's kernel by the
container's planner and does not run on its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _core
from .. import functional as F
from .module import Module

__all__ = ["GELU", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]

# From the kernels' one list (cpp/kernels/activation_list.h): every activation, those the dense
# GEMM epilogue applies, those conv2d's store applies.
ACTIVATIONS: tuple[str, ...] = tuple(_core.ACTIVATIONS)
GEMM_ACTIVATIONS: tuple[str, ...] = tuple(_core.GEMM_ACTIVATIONS)
CONV_ACTIVATIONS: tuple[str, ...] = tuple(_core.CONV_ACTIVATIONS)


def check_activation(activation: Any, cls: str, allowed: tuple[str, ...]) -> str:
    a = "linear" if activation is None else activation
    if a not in allowed:
        raise ValueError(f"{cls}: activation must be one of {allowed} or None, got {activation!r}")
    return a


class _Activation(Module):
    """An element-wise activation layer; fused into the preceding layer when it declares so."""

    _loss_fwd_linear = False
    _loss_bwd_linear = False

    def _fusable(self) -> bool:
        return True

    def _final_activation(self) -> str:
        return self.activation

    def _tail(self):
        return self

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        if self._loss_fwd_linear:  # the loss takes this layer's input (logits)
            return x
        self._x = x
        y = self._apply(x, self._buffer(x.shape[0], x.dtype))
        self._y = y
        return y

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if self._loss_bwd_linear:  # fused with the loss: grad is already w.r.t. the input
            return grad
        return self._grad(grad)

    def _apply(self, x, out):
        raise NotImplementedError

    def _grad(self, grad):
        raise NotImplementedError


class ReLU(_Activation):
    """``max(0, x)``."""

    activation = "relu"

    def _apply(self, x, out):
        return F.relu(x, out=out)

    def _grad(self, grad):
        return self._relu_backward(grad, self._y)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    activation = "sigmoid"

    def _apply(self, x, out):
        return F.sigmoid(x, out=out)

    def _grad(self, grad):
        y = self._y
        # grad * y * (1 - y), in that order, into reused buffers
        gy = np.multiply(grad, y, out=self._grad_x(grad))
        return np.multiply(gy, np.subtract(1, y, out=self._scratch("t", y.shape, y.dtype)), out=gy)


class Tanh(_Activation):
    """``tanh(x)``."""

    activation = "tanh"

    def _apply(self, x, out):
        return F.tanh(x, out=out)

    def _grad(self, grad):
        y = self._y
        # grad * (1 - y * y) into reused buffers
        t = np.multiply(y, y, out=self._scratch("t", y.shape, y.dtype))
        return np.multiply(grad, np.subtract(1, t, out=t), out=self._grad_x(grad))


class Softmax(_Activation):
    """Softmax over the features of each sample (2-D inputs)."""

    activation = "softmax"

    def _output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Softmax() expects feature vectors, got samples of shape {input_shape}"
            )
        return input_shape

    def _apply(self, x, out):
        return F.softmax(x, axis=-1, out=out)

    def _grad(self, grad):
        y = self._y
        # y * (grad - sum(grad * y, axis=1)) into reused buffers
        t = np.multiply(grad, y, out=self._scratch("t", y.shape, y.dtype))
        s = np.sum(t, axis=1, keepdims=True, out=self._scratch("s", (y.shape[0], 1), y.dtype))
        return np.multiply(y, np.subtract(grad, s, out=t), out=self._grad_x(grad))


class LeakyReLU(_Activation):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below (torch's ``nn.LeakyReLU``)."""

    activation = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(
            negative_slope, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"LeakyReLU: negative_slope must be a number, got {type(negative_slope).__name__}"
            )
        if not math.isfinite(float(negative_slope)):
            raise ValueError(
                f"LeakyReLU: negative_slope must be a finite number, got {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)

    def config(self):
        return {"negative_slope": self.negative_slope}

    def _fusable(self) -> bool:
        return False  # NOTE: the GEMM epilogue has no slope argument; runs as its own kernel

    def _apply(self, x, out):
        return F.leaky_relu(x, self.negative_slope, out=out)

    def _grad(self, grad):
        return F.leaky_relu_backward(grad, self._x, self.negative_slope, out=self._grad_x(grad))


class GELU(_Activation):
    """``x * Phi(x)`` with the exact normal CDF (erf form), torch's default ``nn.GELU()``."""

    activation = "gelu"

    def _fusable(self) -> bool:
        return self.activation in GEMM_ACTIVATIONS

    def _apply(self, x, out):
        return F.gelu(x, out=out)

    def _grad(self, grad):
        return F.gelu_backward(grad, self._x, out=self._grad_x(grad))
