"""Batch normalization: :class:`BatchNorm1D` on ``(N, F)`` and :class:`BatchNorm2D` on
``(N, C, H, W)``, torch semantics, on the ``batch_norm_*`` kernels (ReLU fused when it follows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import functional as F
from .module import Module, _positive_int

__all__ = ["BatchNorm1D", "BatchNorm2D"]


class _BatchNorm(Module):
    """Normalises each channel by the batch's mean and biased variance in training (updating the
    running statistics with the unbiased variance, ``momentum`` as in torch) and by the running
    statistics in eval mode, then scales by ``gamma`` and shifts by ``beta``."""

    _absorbs = ("relu",)
    _ndim = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        cls = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", cls)
        for name, v in (("eps", eps), ("momentum", momentum)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{cls}: {name} must be a number, got {type(v).__name__}")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"{cls}: eps must be a finite number > 0, got {eps!r}")
        if not (math.isfinite(momentum) and 0 <= momentum <= 1):
            raise ValueError(f"{cls}: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        for name in ("gamma", "beta"):
            self.register_parameter(name, None)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, None)
        self._relu_applied_by_pool = False

    def config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def _output_shape(self, input_shape):
        if len(input_shape) != self._ndim or input_shape[0] != self.num_features:
            want = "(features,)" if self._ndim == 1 else "(channels, height, width)"
            raise ValueError(
                f"{self!r} expects samples of shape {want} with {self.num_features} "
                f"{'features' if self._ndim == 1 else 'channels'}, got {input_shape}"
            )
        return input_shape

    def _make_parameters(self, dtype, rng):
        c = self.num_features
        if self.gamma is None:
            self.gamma, self.beta = np.ones(c, dtype), np.zeros(c, dtype)
            self.running_mean, self.running_var = np.zeros(c, dtype), np.ones(c, dtype)
            self.num_batches_tracked = np.zeros((), np.int64)
        elif self.gamma.dtype != dtype:
            for k in ("gamma", "beta", "running_mean", "running_var"):
                setattr(self, k, getattr(self, k).astype(dtype))

    def _plan(self):
        super()._plan()
        self._relu_applied_by_pool = False

    def _final_activation(self) -> str:
        return self._act

    def forward(self, x):
        if self.output_shape is None:
            self._lazy_build(x)
        elif x.shape[1:] != self.input_shape:
            self._output_shape(tuple(x.shape[1:]))  # raises, naming the expected shape
        out = self._buffer(x.shape[0], x.dtype)
        self._x = x
        self._train = self.training
        if self.training:
            per_channel = x.size // max(self.num_features, 1)
            if per_channel <= 1:
                raise ValueError(
                    f"{self!r}: expected more than 1 value per channel when training, got input "
                    f"of shape {x.shape}"
                )
            y, self._mean, self._invstd = F.batch_norm_train(
                x, self.gamma, self.beta, self.running_mean, self.running_var,
                momentum=self.momentum, eps=self.eps, activation=self._act, out=out)
            self.num_batches_tracked[...] += 1
        else:
            y = F.batch_norm_eval(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                  eps=self.eps, activation=self._act, out=out)
            self._mean = self.running_mean
            self._invstd = 1.0 / np.sqrt(self.running_var.astype(np.float64) + self.eps)
        self._y = y
        self._ran = True
        return y

    def _backward(self, grad, need_grad_x=True):
        self._check_ran()
        act = "linear" if self._relu_applied_by_pool else self._act
        x = self._x
        mean, invstd = self._mean, self._invstd
        if not self._train:
            mean, invstd = mean.astype(x.dtype), invstd.astype(x.dtype)
        out = (self._grad_x(x), self._scratch("grad_gamma", self.gamma.shape, x.dtype),
               self._scratch("grad_beta", self.beta.shape, x.dtype))
        gx, gg, gb = F.batch_norm_backward(grad, x, self.gamma, mean, invstd, y=self._y,
                                           activation=act, training=self._train, out=out)
        self.grads = {"gamma": gg, "beta": gb}
        return gx


class BatchNorm1D(_BatchNorm):
    """Batch normalization over the batch of ``(N, num_features)`` inputs
    (torch's ``nn.BatchNorm1d``)."""

    _ndim = 1


class BatchNorm2D(_BatchNorm):
    """Batch normalization of each channel over the batch and the plane of ``(N, C, H, W)``
    inputs (torch's ``nn.BatchNorm2d``). After a :class:`Conv2D` it is fused with it: in eval
    mode folded into the convolution's weights (one convolution, ReLU included)."""

    _ndim = 3
    _folds_into_conv = True
