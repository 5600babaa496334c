"""Optimizers that update parameters in place through native kernels.

``SGD(lr, momentum)`` and ``Adam(lr, beta1, beta2, eps)`` follow ``torch.optim.SGD`` (momentum
without dampening: ``v = momentum v + g``, ``p -= lr v``) and ``torch.optim.Adam`` (bias-corrected
moments, ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``). Each call of
:meth:`Optimizer.step` updates every ``(param, grad)`` pair with one kernel call; the state
(velocity, moments) is allocated once per parameter, on first use, in the parameter's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from . import _core

__all__ = ["SGD", "Adam", "Optimizer"]


def _check_float(value: float, name: str, cls: str, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{cls}: {name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < lo:
        raise ValueError(f"{cls}: {name} must be a finite number >= {lo}, got {value!r}")
    return v


class Optimizer:
    """Base class: keeps per-parameter state keyed by the parameter array's identity."""

    def __init__(self) -> None:
        self._state: dict[int, tuple[np.ndarray, ...]] = {}

    def step(self, params: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Updates each ``param`` in place from its ``grad`` (same shape and dtype)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forgets all state (velocities, moments, step count)."""
        self._state.clear()

    def config(self) -> dict[str, float]:
        """Hyper-parameters, as saved by :meth:`nnfast.nn.Sequential.save`."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (heavy-ball) momentum.

    Parameters
    ----------
    lr : float
        Learning rate, >= 0.
    momentum : float
        Momentum factor in [0, 1); 0 disables the velocity buffer.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0) -> None:
        super().__init__()
        self.lr = _check_float(lr, "lr", "SGD")
        self.momentum = _check_float(momentum, "momentum", "SGD")
        if self.momentum >= 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum})"

    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "momentum": self.momentum}

    def step(self, params: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        lr, mom = self.lr, self.momentum
        for p, g in params:
            v = None
            if mom != 0.0:
                st = self._state.get(id(p))
                if st is None or st[0].shape != p.shape or st[0].dtype != p.dtype:
                    st = (np.zeros_like(p),)
                    self._state[id(p)] = st
                v = st[0]
            _core.sgd_step(p, g, v, lr, mom)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's bias correction.

    Parameters
    ----------
    lr : float
        Step size, >= 0.
    beta1, beta2 : float
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float
        Added to the denominator, > 0.
    """

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.lr = _check_float(lr, "lr", "Adam")
        self.beta1 = _check_float(beta1, "beta1", "Adam")
        self.beta2 = _check_float(beta2, "beta2", "Adam")
        self.eps = _check_float(eps, "eps", "Adam")
        for name, b in (("beta1", self.beta1), ("beta2", self.beta2)):
            if b >= 1.0:
                raise ValueError(f"Adam: {name} must be in [0, 1), got {b!r}")
        self.t = 0

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"

    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def reset(self) -> None:
        super().reset()
        self.t = 0

    def step(self, params: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        self.t += 1
        for p, g in params:
            st = self._state.get(id(p))
            if st is None or st[0].shape != p.shape or st[0].dtype != p.dtype:
                st = (np.zeros_like(p), np.zeros_like(p))
                self._state[id(p)] = st
            _core.adam_step(p, g, st[0], st[1], self.lr, self.beta1, self.beta2, self.eps, self.t)
