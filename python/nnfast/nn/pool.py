"""Pooling layers: :class:`MaxPool2D`, :class:`AvgPool2D` and :class:`GlobalAvgPool2D` (NCHW)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .module import Module, _pair

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]


class _Pool2D(Module):
    """Window geometry shared by the pooling layers (floor mode, no padding, NCHW)."""

    def __init__(self, pool_size: Any = 2, stride: Any = None) -> None:
        super().__init__()
        self.pool_size = _pair(pool_size, "pool_size", type(self).__name__)
        self.stride = self.pool_size if stride is None else _pair(stride, "stride", type(self).__name__)
        if min(*self.pool_size, *self.stride) < 1:
            raise ValueError(f"{type(self).__name__}: pool_size and stride must be >= 1")
        self._stride_arg = stride

    def config(self):
        return {
            "pool_size": list(self.pool_size),
            "stride": None if self._stride_arg is None else list(self.stride),
        }

    def _output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self!r} expects (channels, height, width) samples, got {input_shape}"
            )
        c, h, w = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.stride
        if h < ph or w < pw:
            raise ValueError(f"{self!r}: pool {self.pool_size} larger than the input {input_shape}")
        return (c, (h - ph) // sh + 1, (w - pw) // sw + 1)


class MaxPool2D(_Pool2D):
    """Max pooling over ``pool_size`` windows (floor mode, no padding) on NCHW batches."""

    _relu_mask = False

    def _after(self, prev):
        # NOTE: after a fused Conv2D+ReLU, only the max positions receive gradient and the
        # input there equals the pooled value, so ReLU's derivative can be applied to the
        # (4x smaller) pooled gradient before the scatter: same result, a quarter the work.
        leaf = prev._last_leaf()
        self._relu_mask = leaf._act == "relu" and hasattr(leaf, "_relu_applied_by_pool")
        if self._relu_mask:
            leaf._relu_applied_by_pool = True

    def _plan(self):
        super()._plan()
        self._relu_mask = False

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        self._xshape = x.shape
        shape = (x.shape[0], *self.output_shape)
        out = (self._scratch("y", shape, x.dtype), self._scratch("indices", shape, np.int64))
        y, self._idx = F.max_pool2d(x, self.pool_size, self.stride, return_indices=True, out=out)
        self._y = y
        return y

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if not need_grad_x:
            return None
        if self._relu_mask:
            grad = self._relu_backward(grad, self._y)
        # The indices come from this layer's own forward: the kernel's range check suffices
        # (passing pool_size/stride would add a per-element window check).
        out = self._scratch("grad_x", self._xshape, grad.dtype)
        return F.max_pool2d_backward(grad, self._idx, self._xshape, out=out)


class AvgPool2D(_Pool2D):
    """Average pooling over ``pool_size`` windows (floor mode, no padding; torch's
    ``nn.AvgPool2d(pool_size, stride)``) on NCHW batches."""

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        self._xshape = x.shape
        out = self._buffer(x.shape[0], x.dtype)
        return F.avg_pool2d(x, self.pool_size, self.stride, out=out)

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if not need_grad_x:
            return None
        out = self._scratch("grad_x", self._xshape, grad.dtype)
        return F.avg_pool2d_backward(grad, self._xshape, self.pool_size, self.stride, out=out)


class GlobalAvgPool2D(Module):
    """Mean of each channel's plane: ``(N, C, H, W) -> (N, C)`` (torch's ``x.mean((2, 3))``)."""

    def _output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"GlobalAvgPool2D() expects (channels, height, width) samples, got {input_shape}"
            )
        return (input_shape[0],)

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        self._xshape = x.shape
        return F.global_avg_pool2d(x, out=self._buffer(x.shape[0], x.dtype))

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if not need_grad_x:
            return None
        out = self._scratch("grad_x", self._xshape, grad.dtype)
        return F.global_avg_pool2d_backward(grad, self._xshape, out=out)
