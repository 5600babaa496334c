"""Convolution: :class:`Conv2D` on NCHW batches, ReLU fused into its kernel."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .module import Module, _glorot_or_he, _pair, _positive_int

__all__ = ["Conv2D"]


class Conv2D(Module):
    """2-D convolution (cross-correlation) on NCHW batches; ``W`` is ``(out, in, kh, kw)``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (kh, kw)
    stride : int or (sh, sw)
    padding : int, (ph, pw), "valid" or "same"
    activation : {"linear", "relu"} or None
        ReLU (also from a following :class:`ReLU` layer) is fused into the kernel's store.
    """

    _absorbs = ("relu",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2D")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2D")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = _pair(stride, "stride", "Conv2D")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"Conv2D: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2D: padding='same' needs stride 1")
            kh, kw = self.kernel_size
            pad = (0, 0) if padding == "valid" else ((kh - 1) // 2, (kw - 1) // 2)
            if padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
                raise ValueError("Conv2D: padding='same' needs an odd kernel size")
            self.padding: Any = padding
            self._pad = pad
        else:
            self._pad = _pair(padding, "padding", "Conv2D")
            self.padding = padding if isinstance(padding, (int, np.integer)) else list(self._pad)
        if min(*self.kernel_size, *self.stride) < 1 or min(self._pad) < 0:
            raise ValueError("Conv2D: kernel_size and stride must be >= 1 and padding >= 0")
        if activation not in (None, "linear", "relu"):
            raise ValueError(f"Conv2D: activation must be 'relu' or None, got {activation!r}")
        self.activation = "linear" if activation is None else activation
        self._act = self.activation
        self.register_parameter("W", None)
        self.register_parameter("b", None)
        self._relu_applied_by_pool = False

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, (str, int)) else list(self._pad),
            "activation": None if self.activation == "linear" else self.activation,
        }

    def _output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.in_channels:
            raise ValueError(
                f"{self!r} expects images of shape ({self.in_channels}, height, width), got "
                f"samples of shape {input_shape}"
            )
        _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self._pad
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(
                f"{self!r}: kernel {self.kernel_size} larger than the padded input {input_shape}"
            )
        return (self.out_channels, ho, wo)

    def _make_parameters(self, dtype, rng):
        kh, kw = self.kernel_size
        act = self._act if self._bn is None else self._bn._act
        if self.W is None:
            fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
            self.W = _glorot_or_he(
                rng, (self.out_channels, self.in_channels, kh, kw), fan_in, fan_out, act, dtype
            )
            self.b = np.zeros(self.out_channels, dtype=dtype)
        elif self.W.dtype != dtype:
            self.W, self.b = self.W.astype(dtype), self.b.astype(dtype)

    _bn = None

    def _plan(self):
        super()._plan()
        self._relu_applied_by_pool = False
        self.__dict__["_bn"] = None

    def _absorb(self, nxt):
        # Conv2D <- BatchNorm2D: in training the BN kernel runs on the convolution's output (and
        # takes a following ReLU); in eval the BN is folded into the convolution's weights.
        if self._bn is not None:
            return self._bn._absorb(nxt)
        if (self._act == "linear" and getattr(nxt, "_folds_into_conv", False)
                and nxt.num_features == self.out_channels):
            self.__dict__["_bn"] = nxt
            return True
        return super()._absorb(nxt)

    def _last_leaf(self):
        return self if self._bn is None else self._bn

    def _final_activation(self) -> str:
        return self._act if self._bn is None else self._bn._act

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        self._ran = True
        self._x = x
        out = self._buffer(x.shape[0], x.dtype)
        bn = self._bn
        if bn is None:
            y = F.conv2d(x, self.W, self.b, self.stride, self._pad, out=out, activation=self._act)
        else:
            if bn.output_shape is None:
                bn._lazy_build(np.empty((0, *self.output_shape), dtype=self.W.dtype))
            if bn.training:
                self._fold = None
                z = F.conv2d(x, self.W, self.b, self.stride, self._pad, out=out)
                return bn.forward(z)
            # W' = W * s, b' = (b - running_mean) * s + beta with s = gamma / sqrt(var + eps)
            invstd = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
            s = bn.gamma * invstd
            wf = (self.W * s[:, None, None, None]).astype(x.dtype)
            bf = ((self.b - bn.running_mean) * s + bn.beta).astype(x.dtype)
            self._fold = (wf, s, invstd)
            y = F.conv2d(x, wf, bf, self.stride, self._pad, out=out, activation=bn._act)
            bn.__dict__["_ran"] = True
        self._y = y
        return y

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        if self._bn is not None:
            return self._backward_bn(grad, need_grad_x)
        act = "relu" if self._act == "relu" and not self._relu_applied_by_pool else "linear"
        x = self._x
        out = (
            self._grad_x(x) if need_grad_x else None,
            self._scratch("grad_W", self.W.shape, x.dtype),
            self._scratch("grad_b", self.b.shape, x.dtype),
        )
        gx, gw, gb = F.conv2d_backward(
            x, self.W, grad, self.stride, self._pad, need_grad_x=need_grad_x, out=out,
            activation=act, y=self._y,
        )
        self.grads = {"W": gw, "b": gb}
        return gx

    def _backward_bn(self, grad, need_grad_x):
        bn, x = self._bn, self._x
        if self._fold is None:  # training: back through the BN kernel, then the convolution
            grad = bn._backward(grad, True)
            gx, gw, gb = F.conv2d_backward(
                x, self.W, grad, self.stride, self._pad, need_grad_x=need_grad_x,
                out=(self._grad_x(x) if need_grad_x else None,
                     self._scratch("grad_W", self.W.shape, x.dtype),
                     self._scratch("grad_b", self.b.shape, x.dtype)),
            )
            self.grads = {"W": gw, "b": gb}
            return gx
        # eval, folded: the chain rule through W' = W * s and b' = (b - mean) * s + beta
        wf, s, invstd = self._fold
        if bn._act == "relu" and not bn._relu_applied_by_pool:
            grad = self._relu_backward(grad, self._y)
        gx, gwf, gbf = F.conv2d_backward(x, wf, grad, self.stride, self._pad,
                                         need_grad_x=need_grad_x)
        dt = x.dtype
        self.grads = {"W": (gwf * s[:, None, None, None]).astype(dt), "b": (gbf * s).astype(dt)}
        ggamma = ((gwf * self.W).sum(axis=(1, 2, 3)) + gbf * (self.b - bn.running_mean)) * invstd
        bn.grads = {"gamma": ggamma.astype(dt), "beta": gbf.astype(dt)}
        return gx
