"""Losses by name for :meth:`nnfast.nn.Sequential.fit`: ``"mse"``, ``"binary_cross_entropy"``,
``"cross_entropy"``.

Each loss gives its value and the gradient the network's last layer needs. When the last layer's
activation is the loss's natural partner (softmax for ``"cross_entropy"``, sigmoid for
``"binary_cross_entropy"``), the gradient is taken with respect to the pre-activation directly
(``(p - target) / n``), which is both cheaper and stable; the last layer then back-propagates it
with a linear activation.

Conventions (DESIGN §2): ``mse`` and ``binary_cross_entropy`` average over every element, with
log terms clamped at -100 as PyTorch does; ``cross_entropy`` takes integer class labels
``(n,)`` and averages over the n rows. Values and gradients come from the loss kernels
(``mse_loss``, ``binary_cross_entropy``, ``softmax_cross_entropy`` on logits); the
probability-space cross-entropy after a fused softmax is a few vectorised NumPy operations on
the ``(batch, classes)`` output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F

__all__ = ["LOSSES", "Loss", "get_loss"]


class Loss:
    """A loss by name; ``partner`` is the output activation it fuses with (or None)."""

    name = ""
    partner: str | None = None

    def check_targets(self, y: Any, n_out: int, dtype: np.dtype, fn: str) -> np.ndarray:
        """Validated targets for a network with ``n_out`` outputs."""
        raise NotImplementedError

    def value_and_grad(
        self, out: np.ndarray, y: np.ndarray, fused: bool, grad_out: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """(loss, gradient): w.r.t. the pre-activation when ``fused``, else w.r.t. ``out``. The
        gradient goes into ``grad_out`` (``out``'s shape and dtype) when given and the loss can
        write it there; it is returned either way."""
        raise NotImplementedError

    def value(self, out: np.ndarray, y: np.ndarray) -> float:
        return self.value_and_grad(out, y, self.partner is not None)[0]

    def correct(self, out: np.ndarray, y: np.ndarray) -> int | None:
        """Number of correct predictions in the batch, or None when accuracy is undefined."""
        return None


def _float_targets(y: Any, n_out: int, dtype: np.dtype, fn: str, name: str) -> np.ndarray:
    t = np.asarray(y)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: y must be numeric for loss '{name}', got dtype {t.dtype}")
    t = t.astype(dtype, copy=False)
    if t.ndim == 1 and n_out == 1:
        t = t.reshape(-1, 1)
    if t.ndim != 2 or t.shape[1] != n_out:
        raise ValueError(
            f"{fn}: y must have shape (n_samples, {n_out}) for loss '{name}' with {n_out} "
            f"outputs, got {np.shape(y)}"
        )
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{fn}: y contains NaN or infinity")
    return np.ascontiguousarray(t)


class MSE(Loss):
    name = "mse"

    def check_targets(self, y: Any, n_out: int, dtype: np.dtype, fn: str) -> np.ndarray:
        return _float_targets(y, n_out, dtype, fn, self.name)

    def value_and_grad(self, out, y, fused, grad_out=None):
        return F.mse_loss(out, y), F.mse_loss_grad(out, y, out=grad_out)

    def correct(self, out, y):
        if out.shape[1] == 1:
            return int(np.count_nonzero((out > 0.5) == (y > 0.5)))
        return int(np.count_nonzero(out.argmax(axis=1) == y.argmax(axis=1)))


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"
    partner = "sigmoid"

    def check_targets(self, y: Any, n_out: int, dtype: np.dtype, fn: str) -> np.ndarray:
        t = _float_targets(y, n_out, dtype, fn, self.name)
        if np.any((t < 0) | (t > 1)):
            raise ValueError(f"{fn}: y must be in [0, 1] for loss '{self.name}'")
        return t

    def value_and_grad(self, out, y, fused, grad_out=None):
        loss = F.binary_cross_entropy(out, y)
        if not fused:
            return loss, F.binary_cross_entropy_grad(out, y, out=grad_out)
        # d/dz of BCE(sigmoid(z)) is (p - t) / n: no division by p (1 - p).
        grad = np.subtract(out, y, out=grad_out)
        grad *= grad.dtype.type(1.0 / out.size)
        return loss, grad

    def correct(self, out, y):
        return int(np.count_nonzero((out > 0.5) == (y > 0.5)))


class CrossEntropy(Loss):
    name = "cross_entropy"
    partner = "softmax"

    def check_targets(self, y: Any, n_out: int, dtype: np.dtype, fn: str) -> np.ndarray:
        t = np.asarray(y)
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim != 1:
            raise ValueError(
                f"{fn}: y must be integer class labels of shape (n_samples,) for loss "
                f"'cross_entropy', got shape {np.shape(y)}"
            )
        if t.dtype.kind == "f":
            if not np.all(np.isfinite(t)) or np.any(t != np.round(t)):
                raise ValueError(f"{fn}: y must hold integer class labels, got non-integers")
        elif t.dtype.kind not in "biu":
            raise TypeError(f"{fn}: y must hold integer class labels, got dtype {t.dtype}")
        if t.size and (t.min() < 0 or t.max() >= n_out):
            raise ValueError(
                f"{fn}: labels must be in 0..{n_out - 1} for {n_out} outputs, got labels in "
                f"{int(t.min())}..{int(t.max())}"
            )
        return np.ascontiguousarray(t, dtype=np.int64)

    def value_and_grad(self, out, y, fused, grad_out=None):
        # NOTE: cross-entropy on probabilities (not after a softmax, which trains on the logits by
        # value_and_grad_logits) is rare; it allocates its gradient and ignores grad_out.
        n = out.shape[0]
        rows = np.arange(n)
        p_true = out[rows, y]
        tiny = np.finfo(out.dtype).tiny
        loss = -float(np.log(np.maximum(p_true, tiny)).sum()) / max(n, 1)
        if fused:
            grad = out.copy()
            grad[rows, y] -= 1
            grad *= grad.dtype.type(1.0 / n)
        else:
            grad = np.zeros_like(out)
            grad[rows, y] = -1.0 / (np.maximum(p_true, tiny) * n)
        return loss, grad

    def value_and_grad_logits(
        self, logits: np.ndarray, y: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """(loss, gradient w.r.t. the logits) by the fused softmax cross-entropy kernel; the
        gradient goes into ``out`` when given."""
        return F.softmax_cross_entropy(logits, y, out=out)

    def correct(self, out, y):
        # argmax of probabilities or of logits: the same class.
        return int(np.count_nonzero(out.argmax(axis=1) == y))


LOSSES: dict[str, type[Loss]] = {
    "mse": MSE,
    "binary_cross_entropy": BinaryCrossEntropy,
    "cross_entropy": CrossEntropy,
}


def get_loss(name: Any) -> Loss:
    """The loss called ``name`` (one of ``LOSSES``)."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()
