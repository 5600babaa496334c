"""Kernel functions on NumPy arrays: ``nnfast.relu(z)`` and friends.

Each function converts its inputs by the policy of :mod:`nnfast._convert`, calls the native kernel
(which releases the GIL) and returns a NumPy-owned array of the input's float dtype, or writes
into ``out=`` when given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._convert import as_float_array, as_float_arrays, reject_masked

# NOTE: each section below extends __all__ itself, so families add functions without touching a
# shared list; nnfast/__init__.py re-exports everything listed here.
__all__: list[str] = []


# NOTE: the bindings check everything before touching data, so calling them first and falling
# back to the conversion policy on TypeError/ValueError is safe; it keeps a tiny layer's call
# (the tutorial's 8x2x4 batch) as cheap as np.dot. Errors the conversion cannot fix are raised
# again, unchained, by the second call.
_CONVERTIBLE = (TypeError, ValueError)


def _scalar_if_0d(y: np.ndarray, out: Any) -> Any:
    # Like a NumPy ufunc, a 0-d input gives a NumPy scalar unless the caller passed out=.
    return y[()] if out is None and y.ndim == 0 else y


# ----------------------------------------------------------------------------- activations
__all__ += [
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "tanh",
    "tanh_derivative",
]


def _elementwise(name: str, z: Any, out: np.ndarray | None) -> Any:
    kernel = getattr(_core, name)
    if type(z) is np.ndarray:
        try:
            return _scalar_if_0d(kernel(z, out), out)
        except _CONVERTIBLE:
            pass
    return _scalar_if_0d(kernel(as_float_array(z, name, "z"), out), out)


_ELEMENTWISE_DOC = """{summary}

    Parameters
    ----------
    z : array_like, any shape
        Pre-activations; float32 or float64 (others are converted, see ``nnfast._convert``).
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``z``'s shape and dtype; may be ``z`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z`` (a NumPy scalar for a 0-d input). {notes}
    """


def relu(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("relu", z, out)


def sigmoid(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("sigmoid", z, out)


def tanh(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("tanh", z, out)


def relu_derivative(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("relu_derivative", z, out)


def sigmoid_derivative(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("sigmoid_derivative", z, out)


def tanh_derivative(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("tanh_derivative", z, out)


relu.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Rectified linear unit, ``max(0, z)`` element-wise.",
    notes="NaN propagates; ``relu(-0.0)`` is a zero.",
)
sigmoid.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Logistic sigmoid ``1 / (1 + exp(-z))`` element-wise.",
    notes="Stable for any input (no overflow at -1e4); NaN propagates; +-inf give 1 and 0.",
)
tanh.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Hyperbolic tangent element-wise.",
    notes="Full relative accuracy near 0 (tanh(1e-8) = 1e-8); NaN propagates.",
)
relu_derivative.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Derivative of relu at ``z``: 1.0 where ``z > 0``, else 0.0 (the tutorial's).",
    notes="NaN gives 0, as ``(z > 0).astype(float)`` does.",
)
sigmoid_derivative.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Derivative of sigmoid at ``z``: ``s * (1 - s)`` with ``s = sigmoid(z)``.",
    notes="Computed as e / (1 + e)**2, e = exp(-|z|): accurate in the tails too.",
)
tanh_derivative.__doc__ = _ELEMENTWISE_DOC.format(
    summary="Derivative of tanh at ``z``: ``1 - tanh(z)**2``.",
    notes="Computed as 4e / (1 + e)**2, e = exp(-2|z|): no cancellation for large |z|.",
)


def softmax(z: Any, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """Softmax ``exp(z) / sum(exp(z))`` along ``axis``, shifted by the max for stability.

    Parameters
    ----------
    z : array_like, at least 1-D
        Scores; float32 or float64 (others are converted, see ``nnfast._convert``).
    axis : int, default -1
        The axis that sums to 1; any axis (negative counts from the end).
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``z``'s shape and dtype; may be ``z`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z``. A slice holding NaN (or +inf) becomes NaN, as in NumPy.
    """
    if type(z) is np.ndarray:
        try:
            return _core.softmax(z, axis, out)
        except _CONVERTIBLE:
            pass
    return _core.softmax(as_float_array(z, "softmax", "z"), axis, out)


# ----------------------------------------------------------------------------- GELU, LeakyReLU
__all__ += ["gelu", "gelu_backward", "leaky_relu", "leaky_relu_backward"]


def gelu(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    return _elementwise("gelu", z, out)


gelu.__doc__ = _ELEMENTWISE_DOC.format(
    summary="GELU ``z * Phi(z)``, ``Phi`` the standard normal CDF (torch's exact erf form).",
    notes="float32: within 8 ulps of a float64 erfc over every input (measured in "
    "benchmarks/activations_accuracy.py), accurate in the negative tail where ``1 + erf`` is not; "
    "float64: the C library's erfc. ``gelu(-inf)`` is -0, the limit (torch gives NaN).",
)


def _backward_pair(name: str, grad_y: Any, z: Any, *args: Any, out: Any) -> np.ndarray:
    kernel = getattr(_core, name)
    if type(grad_y) is np.ndarray and type(z) is np.ndarray:
        try:
            return kernel(grad_y, z, *args, out)
        except _CONVERTIBLE:
            pass
    g, z2 = as_float_arrays(name, grad_y=grad_y, z=z)
    return kernel(g, z2, *args, out)


def gelu_backward(grad_y: Any, z: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`gelu`: ``grad_y * (Phi(z) + z * phi(z))``, ``phi`` the normal density.

    Parameters
    ----------
    grad_y : array_like
        dL/dy, the shape of ``z``.
    z : array_like
        The forward call's input.
    out : numpy.ndarray, optional
        C-contiguous, writeable, ``z``'s shape and dtype; may be ``grad_y`` or ``z`` itself.
    """
    return _backward_pair("gelu_backward", grad_y, z, out=out)


def leaky_relu(z: Any, negative_slope: float = 0.01, out: np.ndarray | None = None) -> np.ndarray:
    """Leaky ReLU: ``z`` where ``z > 0``, ``negative_slope * z`` elsewhere (torch's).

    Parameters
    ----------
    z : array_like, any shape
    negative_slope : float, default 0.01
        Any finite number (within float32's range for float32 ``z``).
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``z``'s shape and dtype; may be ``z`` itself.

    Returns
    -------
    numpy.ndarray
        ``z``'s shape and dtype. NaN propagates.
    """
    if type(z) is np.ndarray:
        try:
            return _core.leaky_relu(z, negative_slope, out)
        except _CONVERTIBLE:
            pass
    return _core.leaky_relu(as_float_array(z, "leaky_relu", "z"), negative_slope, out)


def leaky_relu_backward(
    grad_y: Any, z: Any, negative_slope: float = 0.01, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`leaky_relu`: ``grad_y`` where ``z > 0``, ``negative_slope * grad_y``
    elsewhere (torch's convention at 0)."""
    return _backward_pair("leaky_relu_backward", grad_y, z, negative_slope, out=out)


# ----------------------------------------------------------------------------- losses
__all__ += [
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "mse_loss",
    "mse_loss_grad",
    "softmax_cross_entropy",
]


def _pair(fn: str, a: Any, a_name: str, b: Any, b_name: str) -> list[np.ndarray]:
    return as_float_arrays(fn, **{a_name: a, b_name: b})


def mse_loss(pred: Any, target: Any) -> float:
    """Mean squared error ``mean((pred - target)**2)`` over every element (the tutorial's).

    Parameters
    ----------
    pred, target : array_like, same shape
        float32/float64 (mixed dtypes promote to float64).

    Returns
    -------
    float
        Summed in double precision in fixed blocks (identical for any thread count); NaN for
        empty inputs.
    """
    if type(pred) is np.ndarray and type(target) is np.ndarray:
        try:
            return _core.mse_loss(pred, target)
        except _CONVERTIBLE:
            pass
    return _core.mse_loss(*_pair("mse_loss", pred, "pred", target, "target"))


def mse_loss_grad(pred: Any, target: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`mse_loss` with respect to ``pred``: ``2 (pred - target) / pred.size``.

    Parameters
    ----------
    pred, target : array_like, same shape
    out : numpy.ndarray, optional
        C-contiguous, writeable, ``pred``'s shape and dtype; may be ``pred`` or ``target``.

    Returns
    -------
    numpy.ndarray
        ``pred``'s shape and (promoted) dtype.
    """
    if type(pred) is np.ndarray and type(target) is np.ndarray:
        try:
            return _core.mse_loss_grad(pred, target, out)
        except _CONVERTIBLE:
            pass
    return _core.mse_loss_grad(*_pair("mse_loss_grad", pred, "pred", target, "target"), out)


def binary_cross_entropy(prob: Any, target: Any) -> float:
    """Binary cross-entropy ``-mean(t log p + (1 - t) log(1 - p))`` over every element.

    Each log term is clamped at -100 as PyTorch does, so ``p`` of exactly 0 or 1 gives a
    finite loss. ``p`` outside [0, 1] gives NaN (PyTorch raises instead).

    Parameters
    ----------
    prob : array_like
        Probabilities in [0, 1] (e.g. a sigmoid output).
    target : array_like, same shape
        Targets, usually 0/1.

    Returns
    -------
    float
        Computed in double precision (``log1p`` for ``log(1 - p)``), summed in fixed blocks.
    """
    if type(prob) is np.ndarray and type(target) is np.ndarray:
        try:
            return _core.binary_cross_entropy(prob, target)
        except _CONVERTIBLE:
            pass
    return _core.binary_cross_entropy(
        *_pair("binary_cross_entropy", prob, "prob", target, "target")
    )


def binary_cross_entropy_grad(prob: Any, target: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`binary_cross_entropy` with respect to ``prob``.

    ``(p - t) / max(p (1 - p), 1e-12) / p.size``, PyTorch's formula (the clamp keeps it finite
    at ``p`` of 0 or 1).

    Parameters
    ----------
    prob, target : array_like, same shape
    out : numpy.ndarray, optional
        C-contiguous, writeable, ``prob``'s shape and dtype; may be ``prob`` or ``target``.
    """
    if type(prob) is np.ndarray and type(target) is np.ndarray:
        try:
            return _core.binary_cross_entropy_grad(prob, target, out)
        except _CONVERTIBLE:
            pass
    p, t = _pair("binary_cross_entropy_grad", prob, "prob", target, "target")
    return _core.binary_cross_entropy_grad(p, t, out)


_INT64 = np.dtype(np.int64)


def _labels(labels: Any, logits: np.ndarray) -> np.ndarray:
    fn = "softmax_cross_entropy"
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"{fn}: labels must be an array of integers, got {type(labels).__name__}")
    reject_masked(labels, fn, "labels")
    y = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    kind = y.dtype.kind
    if kind in "biu":
        if y.ndim == 2:  # integer one-hot rows
            return np.require(y, logits.dtype, ["C", "A"])
        if kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
            bad = int(y.max())
            raise ValueError(
                f"{fn}: labels must be class indices in [0, {logits.shape[1]}) "
                f"(K = logits.shape[1]), got {bad} at index {int(np.argmax(y))}"
            )
        return np.require(y, _INT64, ["C", "A"])  # (aligned, too)
    if kind == "f":
        if y.ndim != 2:
            raise ValueError(
                f"{fn}: float labels must be one-hot rows of shape (N, K) = {logits.shape}, "
                f"got shape {y.shape}; pass class indices as an integer array"
            )
        return np.require(y, logits.dtype, ["C", "A"])
    if kind == "O" and not isinstance(labels, np.ndarray):
        # A Python list holding an int beyond int64 becomes an object array: out of range.
        for i, v in enumerate(y.reshape(-1).tolist()):
            if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v < logits.shape[1]:
                raise ValueError(
                    f"{fn}: labels must be class indices in [0, {logits.shape[1]}) "
                    f"(K = logits.shape[1]), got {v} at index {i}"
                )
    raise TypeError(
        f"{fn}: labels must be integer class indices (N,) or one-hot rows (N, K), "
        f"got dtype {y.dtype}"
    )


def softmax_cross_entropy(
    logits: Any, labels: Any, out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Softmax followed by cross-entropy, fused and stable; returns the loss and its gradient.

    Parameters
    ----------
    logits : array_like, shape (N, K)
        Unnormalised scores, float32 or float64.
    labels : array_like
        Integer class indices, shape (N,), each in [0, K); or one-hot (or probability) rows of
        shape (N, K).
    out : numpy.ndarray, optional
        Receives the gradient: C-contiguous, writeable, ``logits``' shape and dtype, overlapping
        neither input (not in place: the kernel writes a row before it has read all of it).

    Returns
    -------
    loss : float
        Mean over the N rows of ``-log softmax(logits)[label]`` (``logsumexp`` form, never
        overflows), summed in double; NaN when N is 0.
    grad_logits : numpy.ndarray, shape (N, K)
        ``(softmax(logits) - onehot) / N``, the logits' dtype.
    """
    fn = "softmax_cross_entropy"
    if type(logits) is np.ndarray and type(labels) is np.ndarray:
        try:
            return _core.softmax_cross_entropy(logits, labels, out)
        except _CONVERTIBLE:
            pass
    z = as_float_array(logits, fn, "logits")
    if z.ndim != 2:
        raise ValueError(f"{fn}: logits must have 2 dims (N, K), got shape {z.shape}")
    return _core.softmax_cross_entropy(z, _labels(labels, z), out)


# ----------------------------------------------------------------------------- dense / GEMM
__all__ += ["dense", "dense_backward", "matmul"]


def _fortran_2d(a: Any) -> bool:
    # A Fortran-ordered 2-D array is the transpose of a C-ordered one: the GEMM reads it
    # transposed in place instead of copying it.
    return (
        isinstance(a, np.ndarray)
        and a.ndim == 2
        and a.dtype.kind == "f"
        and a.dtype.itemsize in (4, 8)
        and a.dtype.isnative
        and a.flags.f_contiguous
        and not a.flags.c_contiguous
    )


def matmul(a: Any, b: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Matrix product ``a @ b`` of 2-D float arrays, by nnfast's own packed SIMD GEMM.

    Parameters
    ----------
    a : array_like, shape (m, k)
    b : array_like, shape (k, n)
        float32 or float64 (mixed dtypes promote to float64). Fortran-ordered arrays are read
        transposed in place (no copy); other non-contiguous inputs are copied once.
    out : numpy.ndarray, optional
        C-contiguous, writeable ``(m, n)`` array of the result dtype, not overlapping ``a``/``b``.

    Returns
    -------
    numpy.ndarray
        ``(m, n)``, the inputs' (promoted) dtype. Bit-identical for any thread count.
    """
    if type(a) is np.ndarray and type(b) is np.ndarray:
        try:
            return _core.matmul(a, b, out)
        except _CONVERTIBLE:
            pass
    ta, tb = _fortran_2d(a), _fortran_2d(b)
    a2, b2 = as_float_arrays("matmul", a=a.T if ta else a, b=b.T if tb else b)
    return _core.matmul(a2, b2, out, ta, tb)


def dense(
    x: Any, w: Any, b: Any = None, activation: str | None = "linear", out: np.ndarray | None = None
) -> np.ndarray:
    """Fully connected layer ``act(x @ w + b)``, bias and activation fused into the GEMM.

    Parameters
    ----------
    x : array_like, shape (batch, in_features) or (in_features,)
        Inputs (a 1-D ``x`` is one sample and gives a 1-D result).
    w : array_like, shape (in_features, out_features)
        Weights, in the tutorial's / Keras layout.
    b : array_like, shape (out_features,), optional
        Bias.
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"} or None
        ``None`` means ``"linear"``; softmax is taken along each row.
    out : numpy.ndarray, optional
        C-contiguous ``(batch, out_features)`` array of the result dtype.

    Returns
    -------
    numpy.ndarray
        ``(batch, out_features)`` (or ``(out_features,)``), dtype float32 or float64.
    """
    if activation is None:
        activation = "linear"
    if type(x) is np.ndarray and type(w) is np.ndarray:
        try:
            return _core.dense(x, w, b, activation, out)
        except _CONVERTIBLE:
            pass
    if b is None:
        x2, w2 = as_float_arrays("dense", x=x, w=w)
        b2 = None
    else:
        x2, w2, b2 = as_float_arrays("dense", x=x, w=w, b=b)
    if x2.ndim == 1:
        if isinstance(out, np.ndarray) and out.ndim == 1 and w2.ndim == 2:
            if out.shape != (w2.shape[1],):
                # NOTE: checked here so the message shows the caller's shapes, not (1, n).
                raise ValueError(
                    f"dense: out must have shape ({w2.shape[1]},), got ({out.shape[0]},)"
                )
        out2 = out[np.newaxis] if isinstance(out, np.ndarray) and out.ndim == 1 else out
        y = _core.dense(x2[np.newaxis], w2, b2, activation, out2)
        return y[0] if out is None else out
    return _core.dense(x2, w2, b2, activation, out)


def dense_backward(
    x: Any,
    w: Any,
    a: Any,
    grad_a: Any,
    activation: str | None = "linear",
    out: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a dense layer ``a = act(x @ w + b)`` given ``grad_a = dL/da``.

    The activation's derivative is computed from ``a`` (no need to keep ``z``) and fused into
    one pass that also reduces ``grad_b``; then ``grad_w = x.T @ dz`` and ``grad_x = dz @ w.T``
    run on the GEMM's transposed paths (no transpose is materialised).

    Parameters
    ----------
    x : array_like, shape (batch, in_features)
    w : array_like, shape (in_features, out_features)
    a : array_like, shape (batch, out_features)
        The layer's output from :func:`dense`.
    grad_a : array_like, shape (batch, out_features)
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"} or None
    out : tuple (grad_x, grad_w, grad_b), optional
        Arrays to write the results into, NumPy's convention for several outputs: a tuple of
        three entries, each a C-contiguous, writeable array of that result's shape and dtype
        (not overlapping an input or another entry) or None (allocated). The supplied arrays are
        the ones returned.

    Returns
    -------
    grad_x : numpy.ndarray, shape (batch, in_features)
    grad_w : numpy.ndarray, shape (in_features, out_features)
    grad_b : numpy.ndarray, shape (out_features,)
    """
    if activation is None:
        activation = "linear"
    if type(x) is np.ndarray:
        try:
            return _core.dense_backward(x, w, a, grad_a, activation, out)
        except _CONVERTIBLE:
            pass
    x2, w2, a2, g2 = as_float_arrays("dense_backward", x=x, w=w, a=a, grad_a=grad_a)
    return _core.dense_backward(x2, w2, a2, g2, activation, out)


# ----------------------------------------------------------------------------- convolution
__all__ += ["conv2d", "conv2d_backward"]


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    out: np.ndarray | None = None,
    activation: str | None = "linear",
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in the tutorial and PyTorch), bias + activation fused.

    ``y[n, o, i, j] = act(b[o] + sum_{c, di, dj} w[o, c, di, dj] * x[n, c, i*sh + di - ph,
    j*sw + dj - pw])`` with ``x`` read as zero outside the image.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W), or (H, W) for the tutorial's single image
        float32 or float64; integer images (and kernels) become float64 (see ``nnfast._convert``).
    w : array_like, shape (O, C, kh, kw), or (kh, kw) with a 2-D ``x``
    b : array_like, shape (O,) (``()`` or ``(1,)`` with a 2-D ``x``), optional
    stride : int or (int, int)
        Step of the window, >= 1.
    padding : int, (int, int), "valid" or "same"
        Zeros added on each side; ``"same"`` (stride 1 only) keeps ``H, W`` and, as PyTorch, puts
        the extra row/column of an even kernel at the bottom/right.
    out : numpy.ndarray, optional
        C-contiguous, writeable output of the result's shape and dtype, not overlapping an input.
    activation : {"linear", "relu", "sigmoid", "tanh"} or None
        Applied as the result is stored (``None`` is ``"linear"``).

    Returns
    -------
    numpy.ndarray
        ``(N, O, Ho, Wo)`` (or ``(Ho, Wo)``) with ``Ho = (H + 2 ph - kh) // sh + 1``, the inputs'
        (promoted) dtype. Bit-identical for any thread count.
    """
    if type(x) is np.ndarray and type(w) is np.ndarray:
        # NOTE: the tutorial's case (float64 image, integer kernel) needs no Python-side
        # conversion: the binding converts an integer kernel given with a float64 x itself,
        # exactly as the policy would (float64).
        try:
            return _core.conv2d(x, w, b, stride, padding, out, activation)
        except _CONVERTIBLE:
            pass
    if b is None:
        x2, w2 = as_float_arrays("conv2d", x=x, w=w)
        b2 = None
    else:
        x2, w2, b2 = as_float_arrays("conv2d", x=x, w=w, b=b)
    return _core.conv2d(x2, w2, b2, stride, padding, out, activation)


def conv2d_backward(
    x: Any,
    w: Any,
    grad_y: Any,
    stride: Any = 1,
    padding: Any = 0,
    need_grad_x: bool = True,
    out: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] | None = None,
    activation: str | None = "linear",
    y: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``y = act(conv2d(x, w, b, stride, padding))`` given ``grad_y = dL/dy``.

    ``grad_w = sum_n grad_z[n] @ im2col(x[n]).T`` and ``grad_x = col2im(w.T @ grad_z[n])``,
    ``grad_b`` the sum of ``grad_z`` over ``(N, Ho, Wo)``, with ``grad_z = act'(z) * grad_y``
    taken from ``y`` (the forward's output) for an ``activation`` fused into the forward, as
    :func:`dense_backward` does: ``grad_y * (y > 0)`` for ReLU, ``y (1 - y)`` for sigmoid,
    ``1 - y**2`` for tanh.

    Parameters
    ----------
    x, w, stride, padding
        As given to :func:`conv2d`.
    grad_y : array_like, the shape of ``conv2d``'s output
    need_grad_x : bool
        ``False`` skips ``grad_x`` (a network's first layer) and returns ``None`` in its place.
    activation : {"linear", "relu", "sigmoid", "tanh"} or None
        The activation :func:`conv2d` applied (``nnfast._core.CONV_ACTIVATIONS``); ``y`` is then
        required.
    y : numpy.ndarray, optional
        The forward's output, same shape as ``grad_y``.
    out : tuple (grad_x, grad_w, grad_b), optional
        As for :func:`dense_backward`: three entries, each a C-contiguous, writeable array of
        that result's shape and dtype, or None (allocated); ``grad_x`` must be None when
        ``need_grad_x`` is False.

    Returns
    -------
    grad_x : numpy.ndarray or None, shape of ``x``
    grad_w : numpy.ndarray, shape of ``w``
    grad_b : numpy.ndarray, shape (O,) (``()`` for a 2-D ``x``)
    """
    if type(x) is np.ndarray and type(w) is np.ndarray and type(grad_y) is np.ndarray:
        try:
            return _core.conv2d_backward(x, w, grad_y, stride, padding, need_grad_x, out,
                                         activation, y)
        except _CONVERTIBLE:
            pass
    x2, w2, g2 = as_float_arrays("conv2d_backward", x=x, w=w, grad_y=grad_y)
    return _core.conv2d_backward(x2, w2, g2, stride, padding, need_grad_x, out, activation, y)


# ----------------------------------------------------------------------------- pooling
__all__ += [
    "avg_pool2d",
    "avg_pool2d_backward",
    "flatten",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]


def max_pool2d(
    x: Any,
    pool_size: Any = 2,
    stride: Any = None,
    return_indices: bool = False,
    out: Any = None,
) -> Any:
    """Max over each pooling window (floor mode, no padding), NCHW or a single (H, W) plane.

    Windows are scanned row-major; an element replaces the running max when it is greater or
    NaN, so a window holding NaN gives NaN (index of its last NaN) and ties keep the first
    maximum, as PyTorch's CPU kernel does.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (H, W)
    pool_size : int or (int, int)
        Window size, >= 1 and no larger than ``(H, W)``.
    stride : int or (int, int), optional
        Defaults to ``pool_size``.
    return_indices : bool
        Also return the flat index (``row * W + col``) of each max within its ``(H, W)`` plane.
    out : numpy.ndarray, or tuple (y, indices) with ``return_indices``, optional
        Arrays to write the results into (C-contiguous, writeable, the result's shape; ``y`` of
        ``x``'s dtype, ``indices`` int64; none overlapping ``x`` or each other). With
        ``return_indices`` it is a tuple of two entries, each an array or None (allocated), as
        NumPy's ufuncs with two results take it.

    Returns
    -------
    y : numpy.ndarray, shape (N, C, Ho, Wo) or (Ho, Wo), ``Ho = (H - ph) // sh + 1``
    indices : numpy.ndarray of int64, same shape (only with ``return_indices=True``)
    """
    x2 = as_float_array(x, "max_pool2d", "x")
    return _core.max_pool2d(x2, pool_size, stride, return_indices, out)


def max_pool2d_backward(
    grad_y: Any,
    indices: Any,
    input_shape: Any,
    pool_size: Any = None,
    stride: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: ``grad_y`` added into zeros of ``input_shape`` at indices.

    Every index is validated before use: one outside its ``(H, W)`` plane raises ``ValueError``
    (nothing is ever written out of bounds). When ``pool_size`` (and ``stride``) are given, each
    index must also lie inside its own pooling window.

    Parameters
    ----------
    grad_y : array_like, shape (N, C, Ho, Wo) or (Ho, Wo)
    indices : array_like of integers, the shape of ``grad_y``
        From ``max_pool2d(..., return_indices=True)``.
    input_shape : tuple of 2 or 4 ints
        The shape of the pooled input.
    pool_size, stride : int or (int, int), optional
        The forward call's window and stride, to check each index against its window.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``input_shape`` and ``grad_y``'s dtype, not overlapping
        ``grad_y`` or ``indices``. Nothing is written to it when an index is invalid.

    Returns
    -------
    numpy.ndarray
        ``input_shape``, dtype of ``grad_y``; overlapping windows add up.
    """
    if not (
        type(indices) is np.ndarray
        and indices.dtype == np.int64
        and indices.flags.c_contiguous
        and indices.flags.aligned
    ):
        reject_masked(indices, "max_pool2d_backward", "indices")
        if isinstance(indices, np.ndarray) and indices.dtype.kind not in "iu":
            raise TypeError(
                f"max_pool2d_backward: indices must be an integer array, got dtype {indices.dtype}"
            )
        arr = np.asarray(indices)
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"max_pool2d_backward: indices must be an integer array, got dtype {arr.dtype}"
            )
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError("max_pool2d_backward: indices has a value beyond int64")
        indices = np.require(arr, np.int64, ["C", "A"])  # (np.ascontiguousarray keeps misalignment)
    g = as_float_array(grad_y, "max_pool2d_backward", "grad_y")
    return _core.max_pool2d_backward(g, indices, input_shape, pool_size, stride, out)


def avg_pool2d(
    x: Any, pool_size: Any = 2, stride: Any = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Mean over each pooling window (floor mode, no padding), NCHW or a single (H, W) plane.

    PyTorch's ``F.avg_pool2d`` without padding: ``y[..., i, j]`` is the mean of the ``ph x pw``
    window at ``(i * sh, j * sw)``. Each window is summed row by row (each row left to right, the
    row sums top to bottom) and divided by ``ph * pw``, on every SIMD path: the same bits for any
    ISA and thread count.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (H, W)
    pool_size : int or (int, int)
        Window size, >= 1 and no larger than ``(H, W)``.
    stride : int or (int, int), optional
        Defaults to ``pool_size``.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of the result's shape and ``x``'s dtype, not overlapping
        ``x``.

    Returns
    -------
    numpy.ndarray
        ``(N, C, Ho, Wo)`` or ``(Ho, Wo)`` with ``Ho = (H - ph) // sh + 1``, ``x``'s dtype.
    """
    if type(x) is np.ndarray:
        try:
            return _core.avg_pool2d(x, pool_size, stride, out)
        except _CONVERTIBLE:
            pass
    return _core.avg_pool2d(as_float_array(x, "avg_pool2d", "x"), pool_size, stride, out)


def avg_pool2d_backward(
    grad_y: Any,
    input_shape: Any,
    pool_size: Any = 2,
    stride: Any = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window's ``grad_y / (ph * pw)`` added over it.

    Where windows overlap (stride < pool_size) the shares are added in output order (row by
    row), each plane by one thread, so the result is the same bits for any thread count.

    Parameters
    ----------
    grad_y : array_like, shape (N, C, Ho, Wo) or (Ho, Wo)
        dL/dy of the forward call's output.
    input_shape : tuple of 2 or 4 ints
        The shape of the pooled input.
    pool_size, stride : int or (int, int)
        The forward call's window and stride (stride defaults to ``pool_size``); ``grad_y``'s
        plane must be the pooled size of ``input_shape``.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``input_shape`` and ``grad_y``'s dtype, not overlapping
        ``grad_y``.

    Returns
    -------
    numpy.ndarray
        ``input_shape``, dtype of ``grad_y`` (zero where no window reaches).
    """
    fn = "avg_pool2d_backward"
    if type(grad_y) is np.ndarray:
        try:
            return _core.avg_pool2d_backward(grad_y, input_shape, pool_size, stride, out)
        except _CONVERTIBLE:
            pass
    g = as_float_array(grad_y, fn, "grad_y")
    return _core.avg_pool2d_backward(g, input_shape, pool_size, stride, out)


def global_avg_pool2d(x: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Mean of each ``(H, W)`` plane: ``(N, C, H, W) -> (N, C)``, torch's ``x.mean((2, 3))``.

    Each plane is summed in double precision (float32 inputs too) in a fixed order, so the result
    is the same bits for any thread count; an empty plane gives NaN, as NumPy's mean does.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    out : numpy.ndarray, optional
        C-contiguous, writeable ``(N, C)`` array of ``x``'s dtype, not overlapping ``x``.

    Returns
    -------
    numpy.ndarray
        ``(N, C)``, ``x``'s dtype.
    """
    if type(x) is np.ndarray:
        try:
            return _core.global_avg_pool2d(x, out)
        except _CONVERTIBLE:
            pass
    return _core.global_avg_pool2d(as_float_array(x, "global_avg_pool2d", "x"), out)


def global_avg_pool2d_backward(
    grad_y: Any, input_shape: Any, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`global_avg_pool2d`: ``grad_y[n, c] / (H * W)`` over each plane.

    Parameters
    ----------
    grad_y : array_like, shape (N, C)
    input_shape : tuple of 4 ints (N, C, H, W)
        The shape of the pooled input; its ``(N, C)`` must be ``grad_y``'s shape.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``input_shape`` and ``grad_y``'s dtype, not overlapping
        ``grad_y``.

    Returns
    -------
    numpy.ndarray
        ``input_shape``, dtype of ``grad_y``.
    """
    fn = "global_avg_pool2d_backward"
    if type(grad_y) is np.ndarray:
        try:
            return _core.global_avg_pool2d_backward(grad_y, input_shape, out)
        except _CONVERTIBLE:
            pass
    g = as_float_array(grad_y, fn, "grad_y")
    return _core.global_avg_pool2d_backward(g, input_shape, out)


def flatten(x: Any, start_axis: int = 0) -> np.ndarray:
    """The axes from ``start_axis`` on merged into one, as a view (never a copy).

    ``flatten(x)`` is the tutorial's 1-D feature vector; ``flatten(x, 1)`` keeps the batch axis.

    Parameters
    ----------
    x : array_like
        An ndarray is viewed; it must be laid out so that a view exists (e.g. C-contiguous),
        otherwise ``ValueError`` (call ``np.ascontiguousarray`` first). Other inputs are converted.
    start_axis : int
        In ``[-x.ndim, x.ndim]`` (``x.ndim`` appends an axis of length 1; negative counts from
        the end).

    Returns
    -------
    numpy.ndarray
        A view of ``x`` with shape ``x.shape[:start_axis] + (prod(x.shape[start_axis:]),)``.
    """
    if isinstance(start_axis, (bool, np.bool_)) or not isinstance(start_axis, (int, np.integer)):
        raise TypeError(f"flatten: start_axis must be an int, got {type(start_axis).__name__}")
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"flatten: x must be an array, got {type(x).__name__}")
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    nd = a.ndim
    if not -nd <= start_axis <= nd:
        raise ValueError(
            f"flatten: start_axis must be in [{-nd}, {nd}] for a {nd}-d x, got {start_axis}"
        )
    axis = int(start_axis) + nd if start_axis < 0 else int(start_axis)
    shape = a.shape[:axis] + (int(np.prod(a.shape[axis:], dtype=np.int64)),)
    v = a.view()
    try:
        v.shape = shape  # NOTE: raises instead of copying when no view exists
    except AttributeError:
        raise ValueError(
            f"flatten: x of shape {a.shape} and strides {a.strides} cannot be flattened from axis "
            f"{start_axis} without a copy; pass np.ascontiguousarray(x)"
        ) from None
    return v


# ----------------------------------------------------------------------------- batch norm
__all__ += ["batch_norm_backward", "batch_norm_eval", "batch_norm_train"]

_BN_NOTES = """x is ``(N, C)`` or ``(N, C, H, W)`` (any ``(N, C, ...)``), normalised per channel (axis 1);
    ``gamma``, ``beta`` and the statistics are ``(C,)`` arrays of ``x``'s dtype. Each channel is
    reduced in double precision by one thread in a fixed order: the same bits for any thread
    count."""


def batch_norm_train(
    x: Any,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    momentum: float = 0.1,
    eps: float = 1e-5,
    activation: str = "linear",
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode batch normalization (torch's ``F.batch_norm(..., training=True)``).

    ``y = (x - mean) * gamma / sqrt(var + eps) + beta`` with the batch's mean and biased
    variance, then ReLU when ``activation="relu"``. ``running_mean`` and ``running_var`` are
    updated in place: ``(1 - momentum) * running + momentum * stat``, the variance unbiased.

    {notes}

    Returns
    -------
    (y, mean, invstd) : y like x; mean and ``invstd = 1 / sqrt(var + eps)`` ``(C,)``, for
    :func:`batch_norm_backward`.

    Raises
    ------
    ValueError
        One value per channel (``N * H * W == 1``), as torch, or mismatched shapes.
    """
    if type(x) is not np.ndarray:
        x = as_float_array(x, "batch_norm_train", "x")
    return _core.batch_norm_train(x, gamma, beta, running_mean, running_var, momentum, eps,
                                  activation, out)


def batch_norm_eval(
    x: Any,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float = 1e-5,
    activation: str = "linear",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Inference-mode batch normalization from the running statistics (then ReLU if asked).

    {notes} ``out`` may be ``x`` itself.
    """
    if type(x) is not np.ndarray:
        x = as_float_array(x, "batch_norm_eval", "x")
    return _core.batch_norm_eval(x, gamma, beta, running_mean, running_var, eps, activation, out)


def batch_norm_backward(
    grad_y: Any,
    x: np.ndarray,
    gamma: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    y: np.ndarray | None = None,
    activation: str = "linear",
    training: bool = True,
    out: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_gamma, grad_beta)`` of :func:`batch_norm_train` (``training``)
    or :func:`batch_norm_eval`.

    With ``activation="relu"``, ``y`` (the forward's output) masks ``grad_y`` first. ``mean`` and
    ``invstd`` are what the training forward returned, or the running mean and
    ``1 / sqrt(running_var + eps)`` in inference. ``out`` is None or a tuple of three arrays (or
    None entries).
    """
    if type(grad_y) is not np.ndarray:
        grad_y = as_float_array(grad_y, "batch_norm_backward", "grad_y")
    return _core.batch_norm_backward(grad_y, x, gamma, mean, invstd, y, activation, training, out)


for _f in (batch_norm_train, batch_norm_eval):
    _f.__doc__ = _f.__doc__.replace("{notes}", _BN_NOTES)

# ----------------------------------------------------------------------------- dropout
__all__ += ["dropout", "dropout_backward", "dropout_mask"]

_DROPOUT_RULE = """The mask depends only on ``(seed, p, element index)`` (flat C order), never on the
    thread count, the SIMD path or the dtype: element ``i`` is kept when word ``(i >> 4) & 3`` of
    Philox4x32-10 at counter ``16 * (i >> 6) + (i & 15)``, key ``seed`` (low and high 32 bits), is
    ``>= floor(p * 2**32)`` (``nnfast.reference.dropout_keep`` is the same rule in NumPy)."""


def dropout(x: Any, p: float, seed: int, out: np.ndarray | None = None) -> np.ndarray:
    """Inverted dropout: ``x * keep / (1 - p)``, each element kept with probability ``1 - p``.

    {rule} Kept elements are multiplied by ``1 / (1 - p)`` (rounded once to ``x``'s dtype), dropped
    ones by 0, so a dropped NaN or inf gives NaN (as torch's ``x * mask``). ``p = 0`` copies ``x``.

    Parameters
    ----------
    x : array_like, any shape
    p : float
        Drop probability in [0, 1) (``ValueError`` otherwise, NaN included).
    seed : int
        In [0, 2**64); a training loop passes a fresh one per step.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``x``'s shape and dtype; may be ``x`` itself.

    Returns
    -------
    numpy.ndarray
        ``x``'s shape and dtype (a NumPy scalar for a 0-d input).
    """
    if type(x) is np.ndarray:
        try:
            return _scalar_if_0d(_core.dropout(x, p, seed, out), out)
        except _CONVERTIBLE:
            pass
    return _scalar_if_0d(_core.dropout(as_float_array(x, "dropout", "x"), p, seed, out), out)


def dropout_backward(
    grad_y: Any, p: float, seed: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of :func:`dropout`: ``grad_y * keep / (1 - p)`` with the forward's mask.

    The mask is recomputed from ``(seed, p, element index)``, not stored: pass the forward call's
    ``p`` and ``seed`` (and an array of its shape).

    Parameters
    ----------
    grad_y : array_like, the forward input's shape
    p, seed
        As given to :func:`dropout`.
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``grad_y``'s shape and dtype; may be ``grad_y`` itself.

    Returns
    -------
    numpy.ndarray
        ``grad_y``'s shape and dtype.
    """
    fn = "dropout_backward"
    if type(grad_y) is np.ndarray:
        try:
            return _scalar_if_0d(_core.dropout_backward(grad_y, p, seed, out), out)
        except _CONVERTIBLE:
            pass
    g = as_float_array(grad_y, fn, "grad_y")
    return _scalar_if_0d(_core.dropout_backward(g, p, seed, out), out)


def dropout_mask(shape: Any, p: float, seed: int, dtype: Any = np.float64) -> np.ndarray:
    """The scaled keep mask ``keep / (1 - p)`` of :func:`dropout` for an array of ``shape``.

    ``dropout(x, p, seed)`` is ``x * dropout_mask(x.shape, p, seed, x.dtype)``, bit for bit.

    Parameters
    ----------
    shape : int or tuple of ints
    p, seed
        As for :func:`dropout`.
    dtype : float32 or float64
        Default float64.

    Returns
    -------
    numpy.ndarray
        ``shape``, ``dtype``: ``1 / (1 - p)`` where kept, 0 where dropped (ones for ``p = 0``).
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    return _core.dropout_mask(shape, p, seed, dtype)


dropout.__doc__ = (dropout.__doc__ or "").replace("{rule}", _DROPOUT_RULE)


# ----------------------------------------------------------------------------- optimizers
# (issue 6: in-place parameter updates go here)
