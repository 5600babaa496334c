"""Optimizers that update parameters in place through native kernels.

``SGD(lr, momentum)`` and ``Adam(lr, beta1, beta2, eps)`` follow ``torch.optim.SGD`` (momentum
without dampening: ``v = momentum v + g``, ``p -= lr v``) and ``torch.optim.Adam`` (bias-corrected
moments, ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``). Each call of
:meth:`Optimizer.step` updates every ``(param, grad)`` pair with one kernel call; the state
(velocity, moments) is allocated once per parameter, on first use, in the parameter's dtype, and
kept by the parameter's name: ``step`` takes ``(name, param, grad)`` triples (what ``fit`` passes,
with the names of :meth:`nnfast.nn.Module.named_parameters`) or ``(param, grad)`` pairs (named by
their position). :meth:`Optimizer.state_dict` / :meth:`Optimizer.load_state_dict` save and restore
it (hyper-parameters, step count and every state array).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

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
    """Base class: keeps per-parameter state by parameter name."""

    _slots: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._state: dict[str, tuple[np.ndarray, ...]] = {}
        self._loaded: set[str] = set()

    def step(self, params: Iterable[Any]) -> None:
        """Updates each ``param`` in place from its ``grad`` (same shape and dtype); items are
        ``(name, param, grad)`` or ``(param, grad)``."""
        raise NotImplementedError

    @staticmethod
    def _named(params: Iterable[Any]) -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
        for i, item in enumerate(params):
            if len(item) == 3:
                yield item
            else:
                yield str(i), item[0], item[1]

    def _slots_for(self, name: str, p: np.ndarray) -> tuple[np.ndarray, ...]:
        st = self._state.get(name)
        if st is None or st[0].shape != p.shape or st[0].dtype != p.dtype:
            if st is not None and name in self._loaded:
                raise ValueError(
                    f"{type(self).__name__}: loaded state for parameter {name!r} has shape "
                    f"{st[0].shape} dtype {st[0].dtype}, the parameter is {p.shape} {p.dtype}"
                )
            st = tuple(np.zeros_like(p) for _ in self._slots)
            self._state[name] = st
        return st

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and a copy of every state array, by parameter name."""
        return {
            "type": type(self).__name__,
            "config": self.config(),
            "t": getattr(self, "t", 0),
            "state": {n: {k: a.copy() for k, a in zip(self._slots, st)}
                      for n, st in self._state.items()},
        }

    def load_state_dict(self, sd: Any) -> None:
        """Restores :meth:`state_dict`'s output; a ``ValueError`` naming the entry on anything
        malformed, and nothing changed."""
        cls = type(self).__name__
        if not isinstance(sd, dict) or sd.get("type") != cls:
            got = sd.get("type") if isinstance(sd, dict) else type(sd).__name__
            raise ValueError(f"{cls}.load_state_dict: expected the state of a {cls}, got {got!r}")
        state = sd.get("state")
        if not isinstance(state, dict):
            raise ValueError(f"{cls}.load_state_dict: 'state' must be a dict of parameter states")
        new = {}
        for name, slots in state.items():
            if not isinstance(slots, dict) or set(slots) != set(self._slots):
                raise ValueError(
                    f"{cls}.load_state_dict: state of {name!r} must hold {list(self._slots)}, "
                    f"got {sorted(slots) if isinstance(slots, dict) else type(slots).__name__}"
                )
            arrs = tuple(slots[k] for k in self._slots)
            if not all(isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64)
                       and a.shape == arrs[0].shape for a in arrs):
                raise ValueError(
                    f"{cls}.load_state_dict: state of {name!r} must be float arrays of one shape"
                )
            new[name] = tuple(a.copy() for a in arrs)
        t = sd.get("t", 0)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"{cls}.load_state_dict: 't' must be an int >= 0, got {t!r}")
        config = sd.get("config", {})
        probe = type(self)(**config)  # validates the hyper-parameters
        self.__dict__.update({k: v for k, v in vars(probe).items() if k not in ("_state", "_loaded")})
        self._state, self._loaded = new, set(new)
        if hasattr(self, "t"):
            self.t = int(t)

    def reset(self) -> None:
        """Forgets all state (velocities, moments, step count)."""
        self._state.clear()
        self._loaded.clear()

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

    _slots = ("velocity",)

    def step(self, params: Iterable[Any]) -> None:
        lr, mom = self.lr, self.momentum
        for name, p, g in self._named(params):
            v = self._slots_for(name, p)[0] if mom != 0.0 else None
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

    _slots = ("m", "v")

    def step(self, params: Iterable[Any]) -> None:
        self.t += 1
        for name, p, g in self._named(params):
            st = self._slots_for(name, p)
            _core.adam_step(p, g, st[0], st[1], self.lr, self.beta1, self.beta2, self.eps, self.t)
