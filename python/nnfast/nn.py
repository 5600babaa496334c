"""Networks: layers and a :class:`Sequential` model that trains with mini-batches on the kernels.

A small, readable framework in the tutorial's spirit::

    import nnfast as nf
    from nnfast.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    model = Sequential([
        Conv2D(1, 8, 3, padding=1), ReLU(), MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * 7 * 7, 10, activation="softmax"),
    ], seed=0)
    history = model.fit(X, y, epochs=10, batch_size=64, optimizer=nf.Adam(1e-3))

How it runs
-----------
* **Fusion.** When the model is built (on the first ``fit``/``predict``), a ``Dense`` followed by
  an activation layer becomes one ``dense`` kernel call with that activation in its epilogue, and
  a ``Conv2D`` followed by ``ReLU`` one ``conv2d(..., activation="relu")``. The last layer's
  softmax/sigmoid fuses with the cross-entropy losses (gradient ``(p - target) / n`` w.r.t. the
  logits).
* **Buffers.** Every layer keeps its forward outputs, its gradients (input and parameter
  gradients, written by the backward kernels' ``out=``) and its small workspaces (ReLU masks) per
  batch size and reuses them, and the batch and its targets are gathered into reused buffers, so a
  steady-state training step allocates no array but the loss gradient. A batch size seen once
  (the last, partial batch of an epoch) gets its own set. The arrays a layer returns or exposes
  (``forward``'s output, ``gradients()``) are therefore overwritten by the next batch of that
  size. Python work per layer and batch is a few calls.
* **Initialisation** (seeded by ``Sequential(seed=...)``, ``numpy.random.Generator``): weights
  of a layer followed by ReLU are He-normal (std ``sqrt(2 / fan_in)``), all others
  Glorot-uniform (limit ``sqrt(6 / (fan_in + fan_out))``); biases start at zero. ``fan_in`` is
  ``in_features`` or ``in_channels * kh * kw``. The same seed gives the same weights, the same
  shuffling and therefore the same trained weights.
* **dtype.** float32 by default; ``Sequential(..., dtype="float64")`` for float64 end to end.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import functional as F
from .losses import Loss, get_loss
from .optim import Adam, Optimizer

__all__ = [
    "tutorial_cnn",
    "Conv2D",
    "Dense",
    "Flatten",
    "History",
    "Layer",
    "MaxPool2D",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
]

_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
# Buffers a layer (or the batch gatherer) keeps before starting afresh: a layer uses at most about
# six per batch size, so a training run's two sizes and a few prediction sizes fit.
_MAX_BUFFERS = 64


def _pair(v: Any, name: str, cls: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in t
    ):
        raise TypeError(f"{cls}: {name} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _positive_int(v: Any, name: str, cls: str, minimum: int = 1, why: str = "") -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{cls}: {name} must be an int, got {type(v).__name__}")
    if v < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{cls}: {name} must be >= {minimum}{reason}, got {v}")
    return int(v)


def _check_activation(activation: Any, cls: str) -> str:
    a = "linear" if activation is None else activation
    if a not in _ACTIVATIONS:
        raise ValueError(
            f"{cls}: activation must be one of {_ACTIVATIONS} or None, got {activation!r}"
        )
    return a


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    return F.softmax(z, axis=-1)


class Layer:
    """Base class. Subclasses implement ``build``, ``forward`` and ``backward``.

    ``build(input_shape, dtype, rng, act)`` receives the per-sample input shape and returns the
    output shape; ``act`` is the activation fused into this layer (see :class:`Sequential`).
    ``forward(x)`` returns the output (a buffer reused for the next batch of the same size);
    ``backward(grad, act)`` stores parameter gradients and returns the input gradient (or None
    when ``need_grad_x`` is False), both also reused buffers.
    """

    activation = "linear"
    # NOTE: tests switch this off to run the same code on freshly allocated arrays (every
    # out= None), the path the reused buffers must reproduce bit for bit.
    _reuse = True

    def __init__(self) -> None:
        self._act = "linear"
        self._buffers: dict[tuple, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], dtype: np.dtype, rng: Any, act: str) -> tuple:
        self.input_shape = tuple(input_shape)
        self._act = act
        self._buffers = {}
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """The layer's buffer ``name`` of this shape (batch size included) and dtype, allocated
        on first use and kept; None when reuse is off (the kernel then allocates)."""
        if not self._reuse:
            return None
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None or buf.dtype != dtype:
            if len(self._buffers) >= _MAX_BUFFERS:
                # NOTE: a cache, not an arena: calls on many different batch sizes (predict on
                # arrays of every length) start it afresh instead of growing it without bound.
                self._buffers.clear()
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def _buffer(self, n: int, dtype: np.dtype) -> np.ndarray | None:
        """The forward output buffer for a batch of ``n``."""
        return self._scratch("y", (n, *self.output_shape), dtype)

    def _grad_x(self, x: np.ndarray) -> np.ndarray | None:
        """The input-gradient buffer for the batch ``x``."""
        return self._scratch("grad_x", x.shape, x.dtype)

    def _relu_backward(self, grad: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``grad * (y > 0)``, the mask and the product in reused buffers."""
        # NOTE: the mask in the float dtype (relu_derivative: exactly 1.0 or 0.0, NaN giving 0 as
        # y > 0 does) keeps the product bit-identical to grad * (y > 0) without NumPy's 32 kB
        # casting buffer for a bool operand.
        mask = F.relu_derivative(y, out=self._scratch("relu_mask", y.shape, y.dtype))
        return np.multiply(grad, mask, out=self._scratch("relu_grad", grad.shape, grad.dtype))

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray, act: str, need_grad_x: bool = True) -> Any:
        raise NotImplementedError

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (empty for layers without parameters)."""
        return {}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last backward pass, by the names of :meth:`parameters`."""
        return {}

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _glorot_or_he(rng: Any, shape: tuple, fan_in: int, fan_out: int, act: str, dtype) -> np.ndarray:
    if act == "relu":
        w = rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))
    else:
        limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        w = rng.uniform(-limit, limit, shape)
    return np.ascontiguousarray(w, dtype=dtype)


class Dense(Layer):
    """Fully connected layer ``act(x @ W + b)``; ``W`` is ``(in_features, out_features)``.

    Parameters
    ----------
    in_features, out_features : int
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"} or None
        Fused into the matrix product (as is a following activation layer).
    """

    def __init__(self, in_features: int, out_features: int, activation: str | None = None) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Dense")
        self.out_features = _positive_int(out_features, "out_features", "Dense")
        self.activation = _check_activation(activation, "Dense")
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self._grads: dict[str, np.ndarray] = {}

    def config(self) -> dict[str, Any]:
        act = None if self.activation == "linear" else self.activation
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": act,
        }

    def _output_shape(self, input_shape):
        if input_shape != (self.in_features,):
            raise ValueError(
                f"{self!r} expects inputs of {self.in_features} features, got samples of shape "
                f"{input_shape}"
                + (" (add a Flatten layer before it)" if len(input_shape) > 1 else "")
            )
        return (self.out_features,)

    def build(self, input_shape, dtype, rng, act):
        shape = super().build(input_shape, dtype, rng, act)
        if self.W is None or self.W.dtype != dtype:
            if self.W is None:
                self.W = _glorot_or_he(
                    rng,
                    (self.in_features, self.out_features),
                    self.in_features,
                    self.out_features,
                    act,
                    dtype,
                )
                self.b = np.zeros(self.out_features, dtype=dtype)
            else:
                self.W = self.W.astype(dtype)
                self.b = self.b.astype(dtype)
        return shape

    def parameters(self):
        return {} if self.W is None else {"W": self.W, "b": self.b}

    def gradients(self):
        return self._grads

    def forward(self, x, act=None):
        self._x = x
        y = F.dense(x, self.W, self.b, act or self._act, self._buffer(x.shape[0], x.dtype))
        self._y = y
        return y

    def backward(self, grad, act, need_grad_x=True):
        x = self._x
        out = (
            self._grad_x(x),
            self._scratch("grad_W", self.W.shape, x.dtype),
            self._scratch("grad_b", self.b.shape, x.dtype),
        )
        gx, gw, gb = F.dense_backward(x, self.W, self._y, grad, act, out=out)
        self._grads = {"W": gw, "b": gb}
        return gx


class Conv2D(Layer):
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
        self.activation = _check_activation(activation, "Conv2D")
        if self.activation not in ("linear", "relu"):
            raise ValueError(f"Conv2D: activation must be 'relu' or None, got {activation!r}")
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self._grads: dict[str, np.ndarray] = {}
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

    def build(self, input_shape, dtype, rng, act):
        shape = super().build(input_shape, dtype, rng, act)
        kh, kw = self.kernel_size
        if self.W is None:
            fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
            self.W = _glorot_or_he(
                rng, (self.out_channels, self.in_channels, kh, kw), fan_in, fan_out, act, dtype
            )
            self.b = np.zeros(self.out_channels, dtype=dtype)
        elif self.W.dtype != dtype:
            self.W, self.b = self.W.astype(dtype), self.b.astype(dtype)
        return shape

    def parameters(self):
        return {} if self.W is None else {"W": self.W, "b": self.b}

    def gradients(self):
        return self._grads

    def forward(self, x):
        self._x = x
        out = self._buffer(x.shape[0], x.dtype)
        y = F.conv2d(x, self.W, self.b, self.stride, self._pad, out=out, activation=self._act)
        self._y = y
        return y

    def backward(self, grad, act, need_grad_x=True):
        if act == "relu" and not self._relu_applied_by_pool:
            grad = self._relu_backward(grad, self._y)
        x = self._x
        out = (
            self._grad_x(x) if need_grad_x else None,
            self._scratch("grad_W", self.W.shape, x.dtype),
            self._scratch("grad_b", self.b.shape, x.dtype),
        )
        gx, gw, gb = F.conv2d_backward(
            x, self.W, grad, self.stride, self._pad, need_grad_x=need_grad_x, out=out
        )
        self._grads = {"W": gw, "b": gb}
        return gx


class MaxPool2D(Layer):
    """Max pooling over ``pool_size`` windows (floor mode, no padding) on NCHW batches."""

    def __init__(self, pool_size: Any = 2, stride: Any = None) -> None:
        super().__init__()
        self.pool_size = _pair(pool_size, "pool_size", "MaxPool2D")
        self.stride = self.pool_size if stride is None else _pair(stride, "stride", "MaxPool2D")
        if min(*self.pool_size, *self.stride) < 1:
            raise ValueError("MaxPool2D: pool_size and stride must be >= 1")
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

    _relu_mask = False

    def forward(self, x):
        self._xshape = x.shape
        shape = (x.shape[0], *self.output_shape)
        out = (self._scratch("y", shape, x.dtype), self._scratch("indices", shape, np.int64))
        y, self._idx = F.max_pool2d(x, self.pool_size, self.stride, return_indices=True, out=out)
        self._y = y
        return y

    def backward(self, grad, act, need_grad_x=True):
        if not need_grad_x:
            return None
        if self._relu_mask:
            # NOTE: after a fused Conv2D+ReLU, only the max positions receive gradient and the
            # input there equals the pooled value, so ReLU's derivative can be applied to the
            # (4x smaller) pooled gradient before the scatter: same result, a quarter the work.
            grad = self._relu_backward(grad, self._y)
        # The indices come from this layer's own forward: the kernel's range check suffices
        # (passing pool_size/stride would add a per-element window check).
        out = self._scratch("grad_x", self._xshape, grad.dtype)
        return F.max_pool2d_backward(grad, self._idx, self._xshape, out=out)


class Flatten(Layer):
    """Flattens each sample to a vector (a view, no copy)."""

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def forward(self, x):
        self._xshape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad, act, need_grad_x=True):
        return grad.reshape(self._xshape)


class _Activation(Layer):
    """An element-wise activation layer; fused into a preceding Dense/Conv2D when possible."""

    activation = "linear"

    def forward(self, x):
        y = self._apply(x)
        self._y = y
        return y

    def _apply(self, x):
        raise NotImplementedError


class ReLU(_Activation):
    """``max(0, x)``."""

    activation = "relu"

    def _apply(self, x):
        return F.relu(x, out=self._buffer(x.shape[0], x.dtype))

    def backward(self, grad, act, need_grad_x=True):
        return self._relu_backward(grad, self._y)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``."""

    activation = "sigmoid"

    def _apply(self, x):
        return F.sigmoid(x, out=self._buffer(x.shape[0], x.dtype))

    def backward(self, grad, act, need_grad_x=True):
        if act == "linear":  # fused with the loss: grad is already w.r.t. the input
            return grad
        y = self._y
        # grad * y * (1 - y), in that order, into reused buffers
        gy = np.multiply(grad, y, out=self._grad_x(grad))
        return np.multiply(gy, np.subtract(1, y, out=self._scratch("t", y.shape, y.dtype)), out=gy)


class Tanh(_Activation):
    """``tanh(x)``."""

    activation = "tanh"

    def _apply(self, x):
        return F.tanh(x, out=self._buffer(x.shape[0], x.dtype))

    def backward(self, grad, act, need_grad_x=True):
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

    def _apply(self, x):
        return F.softmax(x, axis=-1, out=self._buffer(x.shape[0], x.dtype))

    def backward(self, grad, act, need_grad_x=True):
        if act == "linear":  # fused with the loss
            return grad
        y = self._y
        # y * (grad - sum(grad * y, axis=1)) into reused buffers
        t = np.multiply(grad, y, out=self._scratch("t", y.shape, y.dtype))
        s = np.sum(t, axis=1, keepdims=True, out=self._scratch("s", (y.shape[0], 1), y.dtype))
        return np.multiply(y, np.subtract(grad, s, out=t), out=self._grad_x(grad))


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


class _Progress:
    """A progress bar: tqdm when installed, else a plain carriage-return line on stdout."""

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

    def close(self, suffix: str = "") -> None:
        if self.bar is not None:
            self.bar.close()
            if suffix:
                print(suffix)
        else:
            sys.stdout.write(suffix + "\n")
            sys.stdout.flush()


def tutorial_cnn(
    in_channels: int = 1,
    height: int = 28,
    width: int = 28,
    classes: int = 10,
    activation: str | None = None,
) -> list[Layer]:
    """The tutorial's CNN pipeline as layers: Image > [Conv+ReLU] > [Pool] > [Conv+ReLU] > [Pool] >
    [Flatten] > [Dense], with 8 and 16 channels of 3x3 kernels (padding 1) and 2x2 pooling.

    ``activation`` goes on the last ``Dense`` (``None`` gives logits, which the cross-entropy
    loss takes directly). Pass the result to :class:`Sequential`.
    """
    why = "two 2x2 poolings leave at least one pixel"
    height = _positive_int(height, "height", "tutorial_cnn", 4, why)
    width = _positive_int(width, "width", "tutorial_cnn", 4, why)
    flat = 16 * (height // 2 // 2) * (width // 2 // 2)
    return [
        Conv2D(in_channels, 8, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(flat, classes, activation=activation),
    ]


class Sequential:
    """A stack of layers trained with mini-batch gradient descent.

    Parameters
    ----------
    layers : sequence of Layer
    seed : int, optional
        Seeds weight initialisation and shuffling (``numpy.random.default_rng``); the same seed
        gives identical weights after identical training.
    dtype : {"float32", "float64"}
        Parameter and computation dtype (inputs are converted to it).
    """

    def __init__(
        self, layers: Sequence[Layer], seed: int | None = None, dtype: Any = "float32"
    ) -> None:
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: layer {i} must be an nnfast.nn layer, got {type(layer).__name__}"
                )
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        self.layers = layers
        self.seed = seed
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"Sequential: dtype must be float32 or float64, got {self.dtype}")
        self.input_shape: tuple[int, ...] | None = None
        self.loss: str | None = None
        self._shuffle_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self._xbuf: dict[tuple[str, int], np.ndarray] = {}

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], seed={self.seed}, dtype={self.dtype.name!r})"

    # ---------------------------------------------------------------------------- building
    def build(self, input_shape: Sequence[int]) -> None:
        """Creates the weights for samples of ``input_shape`` and plans the kernel calls."""
        shape = tuple(int(s) for s in input_shape)
        rng = np.random.default_rng(self.seed)
        # Plan: an activation layer right after a Dense (any activation) or a Conv2D (ReLU)
        # whose own activation is linear is fused into it and skipped.
        self._ops: list[Layer] = []
        self._fused_into: set[int] = set()
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            act = layer.activation if isinstance(layer, (Dense, Conv2D)) else "linear"
            nxt = self.layers[i + 1] if i + 1 < len(self.layers) else None
            if (
                isinstance(nxt, _Activation)
                and act == "linear"
                and (
                    (isinstance(layer, Dense) and isinstance(nxt, (ReLU, Sigmoid, Tanh, Softmax)))
                    or (isinstance(layer, Conv2D) and isinstance(nxt, ReLU))
                )
            ):
                act = nxt.activation
                self._fused_into.add(i + 1)
                nxt.build(
                    shape if not isinstance(layer, (Dense, Conv2D)) else layer._output_shape(shape),
                    self.dtype,
                    rng,
                    "linear",
                )
            shape = layer.build(shape, self.dtype, rng, act)
            self._ops.append(layer)
            i += 2 if (i + 1) in self._fused_into else 1
        for k, op in enumerate(self._ops):
            if isinstance(op, MaxPool2D):
                prev = self._ops[k - 1] if k > 0 else None
                op._relu_mask = isinstance(prev, Conv2D) and prev._act == "relu"
                if op._relu_mask:
                    prev._relu_applied_by_pool = True
            elif isinstance(op, Conv2D):
                op._relu_applied_by_pool = False
        self._param_ops = [op for op in self._ops if op.parameters()]
        self._params = [p for op in self._param_ops for p in op.parameters().values()]
        self.input_shape = tuple(int(s) for s in input_shape)
        self.output_shape = shape
        self._xbuf = {}

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def _final_activation(self) -> str:
        last = self._ops[-1]
        return last._act if isinstance(last, (Dense, Conv2D)) else last.activation

    def parameters(self) -> list[np.ndarray]:
        """Every trainable array, layer by layer (``W`` then ``b``)."""
        return [p for layer in self.layers for p in layer.parameters().values()]

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
    def _forward(self, x: np.ndarray, logits: bool = False) -> np.ndarray:
        """The network's output; with ``logits``, stops before a final softmax (a fused Dense
        softmax runs linear, a final Softmax layer is skipped)."""
        ops = self._ops
        for layer in ops[:-1]:
            x = layer.forward(x)
        last = ops[-1]
        if logits and isinstance(last, Dense) and last._act == "softmax":
            return last.forward(x, "linear")
        if logits and isinstance(last, Softmax):
            return x
        return last.forward(x)

    def _backward(self, grad: np.ndarray, fused_loss: bool, logits: bool = False) -> None:
        ops = self._ops
        if logits and isinstance(ops[-1], Softmax):
            # grad is w.r.t. the skipped Softmax layer's input: the layer before it applies its
            # own activation's derivative as usual.
            ops = ops[:-1]
            fused_loss = False
        last = len(ops) - 1
        for k in range(last, -1, -1):
            layer = ops[k]
            act = layer._act if isinstance(layer, (Dense, Conv2D)) else layer.activation
            if k == last and fused_loss:
                act = "linear"
            grad = layer.backward(grad, act, need_grad_x=k > 0)

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
            return _softmax_rows(out)
        if transform == "sigmoid":
            return F.sigmoid(out)
        return out

    def _batch(self, X: np.ndarray, idx: np.ndarray, name: str = "x") -> np.ndarray:
        """The rows ``idx`` of ``X`` gathered into the reused buffer ``name`` for this size."""
        n = idx.shape[0]
        buf = self._xbuf.get((name, n))
        if buf is None or buf.dtype != X.dtype or buf.shape[1:] != X.shape[1:]:
            if len(self._xbuf) >= _MAX_BUFFERS:
                self._xbuf.clear()
            buf = np.empty((n, *X.shape[1:]), dtype=X.dtype)
            self._xbuf[(name, n)] = buf
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
        out = self._forward(xb, logits)
        if not logits:
            out = self._transform(out, transform)
        # The loss gradient lives in a buffer of the last layer, reused like its others.
        buf = self.layers[-1]._scratch("loss_grad", out.shape, out.dtype)
        if logits:
            lval, grad = loss_fn.value_and_grad_logits(out, yb, buf)
        else:
            lval, grad = loss_fn.value_and_grad(out, yb, fused, buf)
        self._backward(grad, fused, logits)
        optimizer.step(zip(self._params, [g for op in self._param_ops for g in op._grads.values()]))
        return lval, out

    def _train_step_fn(self, X: Any, y: Any, loss: Any, optimizer: Optimizer) -> Any:
        """A callable running one training step on the fixed batch (X, y) (for benchmarks)."""
        loss_fn = get_loss(loss)
        x = self._as_input(X, "train_step")
        t = self._targets(y, x.shape[0], loss_fn, "train_step")
        fused, transform = self._loss_mode(loss_fn)
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
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = self._shuffle_rng.permutation(n) if shuffle else np.arange(n)
            bar = _Progress(n, f"Epoch {epoch + 1}/{epochs}") if verbose == 1 else None
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
                r = self._evaluate(val[0], val[1], loss_fn)
                vl, va = r["loss"], r["accuracy"]
            history._add(
                epoch, seconds, loss=ep_loss, accuracy=ep_acc, val_loss=vl, val_accuracy=va
            )
            if verbose:
                line = f" - loss {ep_loss:.4f}"
                if ep_acc is not None:
                    line += f" - accuracy {ep_acc:.4f}"
                if vl is not None:
                    line += f" - val_loss {vl:.4f}"
                    if va is not None:
                        line += f" - val_accuracy {va:.4f}"
                line += f" - {seconds:.2f}s ({n / max(seconds, 1e-9):.0f} img/s)"
                if bar is not None:
                    bar.close(line)
                else:
                    print(f"Epoch {epoch + 1}/{epochs}{line}")
        return history

    def _outputs(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        outs = []
        for start in range(0, x.shape[0], batch_size):
            outs.append(self._forward(x[start : start + batch_size]).copy())
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
        return self._evaluate(x, t, loss_fn)

    def save(self, path: Any) -> None:
        """Writes the architecture (JSON) and weights to one ``.npz`` file (see nnfast.load)."""
        from .serialization import save

        save(self, path)
