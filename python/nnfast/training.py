"""The training loop of every Module: ``fit``, ``evaluate``, ``predict``, ``predict_proba``,
``save``, with :class:`History` and the progress display.

:class:`Trainable` is the mixin :class:`nnfast.nn.Module` inherits these methods from; it works
on any Module whose input shape is known (built, or given by the data): the Module's
``forward``, ``_backward``, ``named_parameters`` and ``grads`` are all it uses. ``fit`` trains
in training mode and ``predict``/``evaluate`` run in eval mode; each restores the mode it found.

Loss fusion: when the network's final op ends in softmax (or sigmoid) and the loss is its
partner cross-entropy, the step trains on the logits through one fused kernel; a network
whose final activation is unknown (a user's Module) is taken to output logits.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from . import functional as F
from .losses import Loss, get_loss
from .optim import Adam, Optimizer

__all__ = ["History", "Trainable"]

_MAX_BATCH_BUFFERS = 64


def _positive_int(v: Any, name: str, fn: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an int, got {type(v).__name__}")
    if v < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got {v}")
    return int(v)


class History:
    """Per-epoch metrics of :meth:`Sequential.fit`: ``history["loss"]``, ``["accuracy"]`` and,
    with validation data, ``["val_loss"]``, ``["val_accuracy"]``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []

    def _add(self, epoch: int, seconds: float, **metrics: float | None) -> None:
        self.epoch.append(epoch)
        self.seconds.append(seconds)
        for k, v in metrics.items():
            if v is not None:
                self.history.setdefault(k, []).append(v)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _interactive() -> bool:
    """Whether stdout is a terminal (a progress bar then; one summary line per epoch otherwise)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _epoch_line(epoch: int, epochs: int, seconds: float, loss: float, acc: float | None,
                val_loss: float | None, val_acc: float | None, lr: float | None) -> str:
    """``epoch 3/10 - 1.2s - loss 0.1234 - accuracy 96.10% - val_loss ... - lr 1.0e-03``: each
    metric once."""
    secs = f"{seconds:.1f}s" if seconds >= 1 else f"{seconds:.2f}s"
    line = f"epoch {epoch}/{epochs} - {secs} - loss {loss:.4f}"
    if acc is not None:
        line += f" - accuracy {acc:.2%}"
    if val_loss is not None:
        line += f" - val_loss {val_loss:.4f}"
        if val_acc is not None:
            line += f" - val_accuracy {val_acc:.2%}"
    if lr is not None:
        line += f" - lr {lr:.1e}"
    return line


class _Progress:
    """A progress bar on a terminal: tqdm when installed (images/s and ETA), else a plain
    carriage-return line on stdout, cleared before the epoch's summary line."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.t0 = self._last = time.perf_counter()
        try:
            from tqdm.auto import tqdm  # type: ignore[import-not-found]
        except ImportError:
            tqdm = None
        self.bar = tqdm(total=total, desc=desc, unit="img", leave=True) if tqdm else None

    def update(self, n: int, loss: float, acc: float | None, force: bool = False) -> None:
        self.n += n
        now = time.perf_counter()
        rate = self.n / max(now - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.update(n)
            post = {"loss": f"{loss:.4f}", "img/s": f"{rate:.0f}"}
            if acc is not None:
                post["acc"] = f"{acc:.2%}"
            self.bar.set_postfix(post, refresh=False)
            return
        if not force and now - self._last < 0.2:
            return
        self._last = now
        width = 24
        done = int(width * self.n / max(self.total, 1))
        bar = "=" * done + (">" if done < width else "") + "." * (width - done - 1)
        acc_s = "" if acc is None else f" - accuracy {acc:.2%}"
        sys.stdout.write(
            f"\r{self.desc} [{bar[:width]}] {self.n}/{self.total} - loss {loss:.4f}{acc_s} - "
            f"{rate:.0f} img/s"
        )
        sys.stdout.flush()

    def close(self, summary: str) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stdout.write("\r\033[K")  # clear the bar's line
        print(summary, flush=True)


class _Mode:
    """Sets a Module's training mode for a block and restores each submodule's mode after."""

    def __init__(self, model: Any, training: bool) -> None:
        self.model, self.mode = model, training

    def __enter__(self) -> None:
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.mode)

    def __exit__(self, *exc: Any) -> None:
        for m, t in self.saved:
            m.__dict__["training"] = t


class Trainable:
    """fit / evaluate / predict / predict_proba / save for a Module (see the module docstring)."""

    loss: str | None = None

    # ---------------------------------------------------------------------------- input checks
    def _as_input(self, X: Any, fn: str) -> np.ndarray:
        if isinstance(X, (str, bytes)) or (
            isinstance(X, np.ndarray) and X.dtype.kind not in "biuf"
        ):
            raise TypeError(
                f"{fn}: X must be an array of numbers, got {getattr(X, 'dtype', type(X).__name__)}"
            )
        x = np.asarray(X)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{fn}: X must be an array of numbers, got dtype {x.dtype}")
        if x.ndim < 2:
            raise ValueError(f"{fn}: X must have a leading sample axis, got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if not self.built:
            self.build(x.shape[1:])
        elif x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{fn}: X must have samples of shape {self.input_shape} for this network, got "
                f"{x.shape[1:]}"
            )
        # NOTE: min and max are NaN if any element is, and +-inf if one is: finite bounds mean
        # finite data, without np.isfinite's bool copy of the whole data set.
        if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
            raise ValueError(f"{fn}: X contains NaN or infinity")
        return x

    def _targets(self, y: Any, n: int, loss: Loss, fn: str) -> np.ndarray:
        if len(np.shape(y)) == 0 or np.shape(y)[0] != n:
            raise ValueError(
                f"{fn}: X and y must have the same number of samples, got {n} and "
                f"{np.shape(y)[0] if np.ndim(y) else 'a scalar'}"
            )
        n_out = int(np.prod(self.output_shape))
        return loss.check_targets(y, n_out, self.dtype, fn)

    # ---------------------------------------------------------------------------- passes
    def _set_loss_fusion(self, fwd_linear: bool, bwd_linear: bool) -> None:
        """Tells the op producing the output to stop before its softmax/sigmoid (``fwd_linear``,
        the loss takes the logits) or to pass the loss gradient through it (``bwd_linear``, the
        gradient is already w.r.t. its input)."""
        tail = self._tail()
        if tail is not None:
            tail.__dict__["_loss_fwd_linear"] = fwd_linear
            tail.__dict__["_loss_bwd_linear"] = bwd_linear

    def _loss_mode(self, loss: Loss) -> tuple[bool, str | None]:
        """(fused, transform): whether the loss gradient is w.r.t. the last pre-activation, and
        the output transform applied to linear outputs ("softmax"/"sigmoid") before the loss."""
        final = self._final_activation()
        if loss.partner is None:
            return False, None
        if final == loss.partner:
            return True, None
        if final == "linear":
            return True, loss.partner
        if loss.name == "cross_entropy":
            raise ValueError(
                "fit: loss 'cross_entropy' needs a network ending in softmax or in linear logits, "
                f"got a final {final} activation"
            )
        return False, None

    @staticmethod
    def _transform(out: np.ndarray, transform: str | None) -> np.ndarray:
        if transform == "softmax":
            return F.softmax(out, axis=-1)
        if transform == "sigmoid":
            return F.sigmoid(out)
        return out

    def _batch(self, X: np.ndarray, idx: np.ndarray, name: str = "x") -> np.ndarray:
        """The rows ``idx`` of ``X`` gathered into the reused buffer ``name`` for this size."""
        n = idx.shape[0]
        xbuf = self.__dict__.setdefault("_xbuf", {})
        buf = xbuf.get((name, n))
        if buf is None or buf.dtype != X.dtype or buf.shape[1:] != X.shape[1:]:
            if len(xbuf) >= _MAX_BATCH_BUFFERS:
                xbuf.clear()
            buf = np.empty((n, *X.shape[1:]), dtype=X.dtype)
            xbuf[(name, n)] = buf
        # NOTE: mode="clip" (idx is a permutation slice, always in range): the default "raise"
        # gathers into a temporary the size of the batch and then copies it into out.
        return np.take(X, idx, axis=0, out=buf, mode="clip")

    def _train_step(
        self,
        xb: np.ndarray,
        yb: np.ndarray,
        loss_fn: Loss,
        fused: bool,
        transform: str | None,
        optimizer: Optimizer,
    ) -> tuple[float, np.ndarray]:
        """Forward, loss, backward and update on one batch; returns (loss, outputs)."""
        # NOTE: cross-entropy after a softmax (fused or a final Softmax layer) or on linear
        # logits trains on the logits: one fused, stable softmax_cross_entropy kernel call.
        logits = fused and loss_fn.partner == "softmax"
        self._set_loss_fusion(logits, fused)
        try:
            out = self.forward(xb)
        except BaseException:
            self._set_loss_fusion(False, False)
            raise
        if not logits:
            out = self._transform(out, transform)
        # The loss gradient lives in a buffer of the last layer, reused like its others.
        buf = self._scratch("loss_grad", out.shape, out.dtype)
        if logits:
            lval, grad = loss_fn.value_and_grad_logits(out, yb, buf)
        else:
            lval, grad = loss_fn.value_and_grad(out, yb, fused, buf)
        try:
            self._backward(grad, False)
        finally:
            self._set_loss_fusion(False, False)
        optimizer.step([(n, m._params[k], m.grads[k]) for n, m, k in self._named("_params")])
        return lval, out

    def _train_step_fn(self, X: Any, y: Any, loss: Any, optimizer: Optimizer) -> Any:
        """A callable running one training step on the fixed batch (X, y) (for benchmarks)."""
        loss_fn = get_loss(loss)
        x = self._as_input(X, "train_step")
        t = self._targets(y, x.shape[0], loss_fn, "train_step")
        fused, transform = self._loss_mode(loss_fn)
        self.train()
        return lambda: self._train_step(x, t, loss_fn, fused, transform, optimizer)

    # ---------------------------------------------------------------------------- public API
    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        loss: Any = "cross_entropy",
        optimizer: Optimizer | None = None,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        verbose: int = 1,
    ) -> History:
        """Trains the network; returns the :class:`History` of this call.

        Parameters
        ----------
        X : array_like, shape (n, *input_shape)
            For a first Dense layer ``(n, in_features)``; for a first Conv2D ``(n, C, H, W)``.
        y : array_like
            ``(n,)`` integer labels for ``"cross_entropy"``; ``(n, outputs)`` (or ``(n,)`` for one
            output) targets for ``"mse"`` and ``"binary_cross_entropy"``.
        epochs, batch_size : int
        loss : {"cross_entropy", "mse", "binary_cross_entropy"}
        optimizer : nnfast.optim.SGD or Adam, optional
            Defaults to ``Adam()`` (lr 1e-3). Its state carries over between ``fit`` calls.
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch (``val_loss``, ``val_accuracy``).
        shuffle : bool
            Shuffle the samples every epoch (seeded by the model's seed).
        verbose : {0, 1, 2}
            0 silent, 1 a progress bar per epoch, 2 one line per epoch.

        Raises
        ------
        ValueError
            Before any training, for an X/y length mismatch, samples of the wrong shape for the
            first layer, labels out of range, or NaN/infinity in X or y.
        """
        fn = "fit"
        epochs = _positive_int(epochs, "epochs", fn) if epochs != 0 else 0
        batch_size = _positive_int(batch_size, "batch_size", fn)
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
        loss_fn = get_loss(loss)
        x = self._as_input(X, fn)
        t = self._targets(y, x.shape[0], loss_fn, fn)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a pair (X_val, y_val)")
            xv = self._as_input(validation_data[0], "fit (validation_data)")
            val = (
                xv,
                self._targets(validation_data[1], xv.shape[0], loss_fn, "fit (validation_data)"),
            )
        fused, transform = self._loss_mode(loss_fn)
        if optimizer is None:
            optimizer = getattr(self, "optimizer", None) or Adam()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"fit: optimizer must be an nnfast.optim optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.loss = loss_fn.name
        n = x.shape[0]
        history = History()
        with _Mode(self, True):
            self._fit_epochs(x, t, val, epochs, batch_size, loss_fn, fused, transform, optimizer,
                             shuffle, verbose, history)
        return history

    def _shuffle_generator(self) -> Any:
        rng = self.__dict__.get("_shuffle_rng")
        if rng is None:
            rng = np.random.default_rng(None if self.seed is None else [self.seed, 1])
            self.__dict__["_shuffle_rng"] = rng
        return rng

    def _fit_epochs(self, x, t, val, epochs, batch_size, loss_fn, fused, transform, optimizer,
                    shuffle, verbose, history) -> None:
        n = x.shape[0]
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = self._shuffle_generator().permutation(n) if shuffle else np.arange(n)
            bar = (_Progress(n, f"epoch {epoch + 1}/{epochs}")
                   if verbose == 1 and _interactive() else None)  # fmt: skip
            total_loss, total_correct, has_acc = 0.0, 0, True
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb = self._batch(x, idx)
                yb = self._batch(t, idx, "y")
                lval, out = self._train_step(xb, yb, loss_fn, fused, transform, optimizer)
                m = idx.shape[0]
                total_loss += lval * m
                c = loss_fn.correct(out, yb)
                if c is None:
                    has_acc = False
                else:
                    total_correct += c
                if bar is not None:
                    seen = start + m
                    bar.update(
                        m,
                        total_loss / seen,
                        total_correct / seen if has_acc else None,
                        force=seen == n,
                    )
            seconds = time.perf_counter() - t0
            ep_loss = total_loss / max(n, 1)
            ep_acc = total_correct / max(n, 1) if has_acc else None
            vl = va = None
            if val is not None:
                with _Mode(self, False):
                    r = self._evaluate(val[0], val[1], loss_fn)
                vl, va = r["loss"], r["accuracy"]
            history._add(
                epoch, seconds, loss=ep_loss, accuracy=ep_acc, val_loss=vl, val_accuracy=va
            )
            if verbose:
                lr = getattr(optimizer, "lr", None)
                lr = float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None
                line = _epoch_line(epoch + 1, epochs, seconds, ep_loss, ep_acc, vl, va, lr)
                if bar is not None:
                    bar.close(line)
                else:
                    print(line, flush=True)

    def _outputs(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outs = []
        for start in range(0, x.shape[0], batch_size):
            outs.append(self.forward(x[start : start + batch_size]).copy())
        if not outs:
            return np.empty((0, *self.output_shape), dtype=self.dtype)
        return np.concatenate(outs)

    def _evaluate(self, x: np.ndarray, t: np.ndarray, loss_fn: Loss) -> dict[str, Any]:
        fused, transform = self._loss_mode(loss_fn)
        out = self._transform(self._outputs(x), transform)
        if out.shape[0] == 0:
            return {"loss": float("nan"), "accuracy": None}
        value = loss_fn.value_and_grad(out.copy(), t, fused)[0]
        c = loss_fn.correct(out, t)
        return {"loss": value, "accuracy": None if c is None else c / out.shape[0]}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Network outputs as probabilities ``(n, outputs)``: the final softmax/sigmoid's output,
        or softmax (several outputs) / sigmoid (one output) applied to linear outputs."""
        x = self._as_input(X, "predict_proba")
        with _Mode(self, False):
            out = self._outputs(x)
        if self._final_activation() == "linear":
            out = self._transform(out, "softmax" if out.shape[1] > 1 else "sigmoid")
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class predictions ``(n,)`` int64: argmax of the outputs, or ``output > 0.5`` for a
        single output."""
        p = self.predict_proba(X)
        if p.shape[1] == 1:
            return (p[:, 0] > 0.5).astype(np.int64)
        return p.argmax(axis=1).astype(np.int64)

    def evaluate(self, X: Any, y: Any, loss: Any = None) -> dict[str, Any]:
        """``{"loss": ..., "accuracy": ...}`` on (X, y), with the loss of the last ``fit`` (or
        ``loss``; default ``"cross_entropy"``). Accuracy is None where undefined."""
        loss_fn = get_loss(loss or self.loss or "cross_entropy")
        x = self._as_input(X, "evaluate")
        t = self._targets(y, x.shape[0], loss_fn, "evaluate")
        with _Mode(self, False):
            return self._evaluate(x, t, loss_fn)
