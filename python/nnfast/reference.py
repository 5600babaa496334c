"""Pure-NumPy reference implementations of every nnfast op (float64 by default).

These are the vectorised equivalents of the tutorial's loops: the "best pure NumPy" that tests
compare against and benchmarks time nnfast against. They favour clarity and numerical safety over
speed, but contain no Python loops over array elements (only over kernel offsets).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "adam_step",
    "avg_pool2d",
    "avg_pool2d_backward",
    "batch_norm_backward",
    "batch_norm_eval",
    "batch_norm_train",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "conv2d",
    "conv2d_backward",
    "conv_padding",
    "dense",
    "dense_backward",
    "dropout",
    "dropout_backward",
    "dropout_keep",
    "dropout_mask",
    "flatten",
    "gelu",
    "gelu_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
    "mse_loss",
    "mse_loss_grad",
    "philox4x32_10",
    "relu",
    "relu_derivative",
    "sgd_step",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "softmax_cross_entropy",
    "tanh",
    "tanh_derivative",
]

# ----------------------------------------------------------------------------- activations


def sigmoid(z: Any) -> np.ndarray:
    """1 / (1 + exp(-z)) as exp(min(z, 0)) / (1 + exp(-|z|)): no overflow, accurate in both tails.

    NOTE: branch-free on purpose: np.where over a random sign pattern mispredicts and was 10x
    slower than the two exps.
    """
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    return np.exp(np.minimum(z, 0)) / (1 + np.exp(-np.abs(z)))


def tanh(z: Any) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(z)


def relu(z: Any) -> np.ndarray:
    """max(0, z); NaN propagates."""
    return np.maximum(z, 0)


def softmax(z: Any, axis: int = -1) -> np.ndarray:
    """exp(z) / sum(exp(z)) along ``axis``, shifted by the max for stability."""
    z = np.asarray(z)
    if z.size == 0:  # np.max has no identity for an empty axis
        return np.exp(z)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid_derivative(z: Any) -> np.ndarray:
    """s(z) * (1 - s(z)), the derivative at z, as e / (1 + e)**2 with e = exp(-|z|).

    NOTE: the tutorial's s * (1 - s) is the same function, but from a rounded s it loses all
    relative accuracy in the tails (it gives 0 for z > 37 in float64); this form does not.
    """
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return (e / (1 + e) ** 2).astype(z.dtype if z.dtype.kind == "f" else np.float64, copy=False)


def tanh_derivative(z: Any) -> np.ndarray:
    """1 - tanh(z)**2, the derivative at z, as 4 e / (1 + e)**2 with e = exp(-2|z|).

    NOTE: same function as the tutorial's, without its cancellation for large |z|.
    """
    z = np.asarray(z)
    e = np.exp(-2 * np.abs(z))
    return (4 * e / (1 + e) ** 2).astype(z.dtype if z.dtype.kind == "f" else np.float64, copy=False)


def relu_derivative(z: Any) -> np.ndarray:
    """1 where z > 0, else 0 (the tutorial's convention at 0); NaN gives 0."""
    z = np.asarray(z)
    return (z > 0).astype(z.dtype if z.dtype.kind == "f" else np.float64)


# Every activation of the kernels' one list (nnfast._core.ACTIVATIONS; tests/test_layout.py
# checks the two agree), as a function of z (leaky_relu at its default slope).
_ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": lambda z: softmax(z, axis=-1),
    "gelu": lambda z: gelu(z),
    "leaky_relu": lambda z: leaky_relu(z),
}

# ----------------------------------------------------------------------------- dense


def matmul(a: Any, b: Any) -> np.ndarray:
    """a @ b for 2-D arrays."""
    return np.matmul(a, b)


def dense(x: Any, w: Any, b: Any = None, activation: str = "linear") -> np.ndarray:
    """act(x @ w + b); x (N, in), w (in, out), b (out,) or None."""
    z = np.matmul(x, w)
    if b is not None:
        z = z + b
    return _ACTIVATIONS[activation](z)


def _activation_grad(a: np.ndarray, grad_a: np.ndarray, activation: str) -> np.ndarray:
    """dL/dz from the layer output a and dL/da."""
    if activation == "linear":
        return grad_a
    if activation == "relu":
        return grad_a * (a > 0)
    if activation == "sigmoid":
        return grad_a * a * (1 - a)
    if activation == "tanh":
        return grad_a * (1 - a * a)
    if activation == "softmax":
        return a * (grad_a - np.sum(grad_a * a, axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {activation!r}")


def dense_backward(
    x: Any, w: Any, a: Any, grad_a: Any, activation: str = "linear"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_x, grad_w, grad_b) of a = act(x @ w + b) given dL/da."""
    dz = _activation_grad(np.asarray(a), np.asarray(grad_a), activation)
    return dz @ np.asarray(w).T, np.asarray(x).T @ dz, dz.sum(axis=0)


# ----------------------------------------------------------------------------- convolution


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_padding(padding: Any, kh: int, kw: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) for an int, a pair, "valid" or "same" (stride 1).

    "same" puts the extra row/column of an even kernel at the bottom/right, as PyTorch does.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return ((kh - 1) // 2, kh - 1 - (kh - 1) // 2), ((kw - 1) // 2, kw - 1 - (kw - 1) // 2)
        raise ValueError(f"unknown padding {padding!r}")
    ph, pw = _pair(padding)
    return (ph, ph), (pw, pw)


def _conv_windows(x: np.ndarray, kh: int, kw: int, stride: Any, padding: Any) -> np.ndarray:
    (pt, pb), (pl, pr) = conv_padding(padding, kh, kw)
    sh, sw = _pair(stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))  # (N, C, H', W', kh, kw)
    return win[:, :, ::sh, ::sw]


def conv2d(x: Any, w: Any, b: Any = None, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    """Cross-correlation: NCHW x with OIHW w → (N, O, Ho, Wo), or (H, W) ⊛ (kh, kw) → (Ho, Wo)."""
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim == 2:
        return conv2d(x[None, None], w[None, None], None, stride, padding)[0, 0]
    kh, kw = w.shape[2:]
    y = np.einsum("nchwij,ocij->nohw", _conv_windows(x, kh, kw, stride, padding), w, optimize=True)
    if b is not None:
        y = y + np.asarray(b)[None, :, None, None]
    return y


def conv2d_backward(
    x: Any, w: Any, grad_y: Any, stride: Any = 1, padding: Any = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_x, grad_w, grad_b) of conv2d given dL/dy (NCHW form)."""
    x = np.asarray(x)
    w = np.asarray(w)
    gy = np.asarray(grad_y)
    kh, kw = w.shape[2:]
    sh, sw = _pair(stride)
    (pt, pb), (pl, pr) = conv_padding(padding, kh, kw)
    win = _conv_windows(x, kh, kw, stride, padding)
    grad_w = np.einsum("nchwij,nohw->ocij", win, gy, optimize=True)
    grad_b = gy.sum(axis=(0, 2, 3))
    n, c, h, wd = x.shape
    ho, wo = gy.shape[2:]
    gxp = np.zeros((n, c, h + pt + pb, wd + pl + pr), dtype=np.result_type(gy, w))
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += np.einsum(
                "nohw,oc->nchw", gy, w[:, :, i, j], optimize=True
            )
    return gxp[:, :, pt : pt + h, pl : pl + wd], grad_w, grad_b


# ----------------------------------------------------------------------------- pooling


def max_pool2d(x: Any, pool_size: Any = 2, stride: Any = None, return_indices: bool = False) -> Any:
    """Max over pool windows (floor mode, no padding), NCHW or (H, W).

    Indices are flat positions within each (H, W) plane, int64, as PyTorch returns them; a window
    holding NaN gives NaN and the index of its last NaN (PyTorch's CPU rule), ties the first max.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        res = max_pool2d(x[None, None], pool_size, stride, return_indices)
        return (res[0][0, 0], res[1][0, 0]) if return_indices else res[0, 0]
    ph, pw = _pair(pool_size)
    sh, sw = _pair(pool_size if stride is None else stride)
    n, c, h, w = x.shape
    win = sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw]
    ho, wo = win.shape[2:4]
    flat = win.reshape(n, c, ho, wo, ph * pw)
    nan = np.isnan(flat)
    pos = np.where(
        nan.any(axis=-1), ph * pw - 1 - np.argmax(nan[..., ::-1], axis=-1), np.argmax(flat, axis=-1)
    )
    y = np.take_along_axis(flat, pos[..., None], axis=-1)[..., 0]
    if not return_indices:
        return y
    di, dj = np.divmod(pos, pw)
    rows = np.arange(ho)[:, None] * sh + di
    cols = np.arange(wo)[None, :] * sw + dj
    return y, (rows * w + cols).astype(np.int64)


def max_pool2d_backward(grad_y: Any, indices: Any, input_shape: Any) -> np.ndarray:
    """Scatter-adds grad_y into a zero array of input_shape at the pooling indices."""
    gy = np.asarray(grad_y)
    idx = np.asarray(indices)
    shape = tuple(input_shape)
    planes = int(np.prod(shape[:-2], dtype=np.int64))
    hw = shape[-2] * shape[-1]
    gx = np.zeros((planes, hw), dtype=gy.dtype)
    rows = np.repeat(np.arange(planes), idx.shape[-2] * idx.shape[-1])
    np.add.at(gx, (rows, idx.reshape(-1)), gy.reshape(-1))
    return gx.reshape(shape)


def avg_pool2d(x: Any, pool_size: Any = 2, stride: Any = None) -> np.ndarray:
    """Mean over pool windows (floor mode, no padding), NCHW or (H, W)."""
    x = np.asarray(x)
    if x.ndim == 2:
        return avg_pool2d(x[None, None], pool_size, stride)[0, 0]
    ph, pw = _pair(pool_size)
    sh, sw = _pair(pool_size if stride is None else stride)
    win = sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.sum(axis=(-2, -1)) / (ph * pw)


def avg_pool2d_backward(
    grad_y: Any, input_shape: Any, pool_size: Any = 2, stride: Any = None
) -> np.ndarray:
    """Each window's grad_y / (ph * pw) added over the window (overlapping windows summed)."""
    gy = np.asarray(grad_y)
    shape = tuple(input_shape)
    if len(shape) == 2:
        return avg_pool2d_backward(gy[None, None], (1, 1, *shape), pool_size, stride)[0, 0]
    ph, pw = _pair(pool_size)
    sh, sw = _pair(pool_size if stride is None else stride)
    ho, wo = gy.shape[2:]
    gx = np.zeros(shape, dtype=gy.dtype)
    q = gy / (ph * pw)
    for i in range(ph):
        for j in range(pw):
            gx[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += q
    return gx


def global_avg_pool2d(x: Any) -> np.ndarray:
    """(N, C, H, W) -> (N, C): the mean of each plane (NaN for an empty plane)."""
    x = np.asarray(x)
    return x.sum(axis=(2, 3)) / (x.shape[2] * x.shape[3])


def global_avg_pool2d_backward(grad_y: Any, input_shape: Any) -> np.ndarray:
    """grad_y[n, c] / (H * W) broadcast over each plane of input_shape."""
    gy = np.asarray(grad_y)
    n, c, h, w = tuple(input_shape)
    return np.broadcast_to((gy / (h * w))[:, :, None, None], (n, c, h, w)).copy()


def flatten(x: Any, start_axis: int = 0) -> np.ndarray:
    """A view with the axes from start_axis on merged into one."""
    x = np.asarray(x)
    return x.reshape(x.shape[:start_axis] + (-1,))


# ----------------------------------------------------------------------------- losses


def mse_loss(pred: Any, target: Any) -> float:
    """mean((pred - target)**2) over every element."""
    return float(np.mean((np.asarray(pred) - np.asarray(target)) ** 2))


def mse_loss_grad(pred: Any, target: Any) -> np.ndarray:
    """2 (pred - target) / pred.size."""
    pred = np.asarray(pred)
    return 2.0 * (pred - np.asarray(target)) / pred.size


def binary_cross_entropy(prob: Any, target: Any) -> float:
    """-mean(t log p + (1 - t) log(1 - p)), each log clamped at -100 as PyTorch does."""
    p = np.asarray(prob)
    t = np.asarray(target)
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(p), -100.0)
        log1mp = np.maximum(np.log1p(-p), -100.0)
    return float(-np.mean(t * logp + (1 - t) * log1mp))


def binary_cross_entropy_grad(prob: Any, target: Any) -> np.ndarray:
    """(p - t) / max(p (1 - p), 1e-12) / p.size, PyTorch's gradient.

    NOTE: PyTorch's clamp is the float32 value of 1e-12 (9.99999996e-13), for float64 too.
    """
    p = np.asarray(prob)
    t = np.asarray(target)
    return (p - t) / np.maximum(p * (1 - p), float(np.float32(1e-12))) / p.size


def softmax_cross_entropy(logits: Any, labels: Any) -> tuple[float, np.ndarray]:
    """Mean over rows of -log softmax(logits)[label], and its gradient (softmax - onehot) / N.

    labels: integer class indices (N,) or one-hot / probability rows (N, K).
    """
    z = np.asarray(logits)
    y = np.asarray(labels)
    n, k = z.shape
    if y.ndim == 1:
        onehot = np.zeros((n, k), dtype=z.dtype)
        onehot[np.arange(n), y] = 1
    else:
        onehot = y.astype(z.dtype)
    shifted = z - np.max(z, axis=1, keepdims=True)
    logsum = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    logp = shifted - logsum
    # NOTE: an empty batch's mean is NaN, as for torch's cross_entropy and nnfast's kernel.
    loss = float(-np.sum(onehot * logp) / n) if n else float("nan")
    grad = (np.exp(logp) - onehot) / max(n, 1)
    return loss, grad


# ----------------------------------------------------------------------------- dropout
# The mask rule of cpp/kernels/dropout.h, in NumPy: Philox4x32-10 (Salmon et al., SC11) over the
# element index, so a test can regenerate nnfast's masks bit for bit.

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_U32 = 0xFFFFFFFF


def philox4x32_10(counter: Any, key: Any) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 of counters ``(c0, c1, c2, c3)`` (arrays of uint32 values) under ``key``.

    ``key`` is ``(k0, k1)``, two ints below 2**32. Returns the four output words as uint32 arrays
    (Random123's ``philox4x32(ctr, key)``, word i of the result in element i).
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in np.broadcast_arrays(*counter))
    k0, k1 = int(key[0]) & _U32, int(key[1]) & _U32
    for _ in range(10):
        p0 = c0 * np.uint64(_PHILOX_M[0])  # 32 x 32 -> 64-bit products, exact in uint64
        p1 = c2 * np.uint64(_PHILOX_M[1])
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & np.uint64(_U32),
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & np.uint64(_U32),
        )
        k0 = (k0 + _PHILOX_W[0]) & _U32
        k1 = (k1 + _PHILOX_W[1]) & _U32
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def dropout_keep(n: int, p: float, seed: int) -> np.ndarray:
    """Whether each of n elements (flat C order) is kept: the rule of cpp/kernels/dropout.h.

    Element i takes word ``(i >> 4) & 3`` of Philox4x32-10 at counter ``16 * (i >> 6) + (i & 15)``
    (low and high 32 bits in counter words 0 and 1, words 2 and 3 zero) under the key
    ``(seed & 0xFFFFFFFF, seed >> 32)``, and is kept when that word is ``>= floor(p * 2**32)``.
    """
    blocks = -(-int(n) // 64)
    c = (np.arange(blocks, dtype=np.uint64)[:, None] * np.uint64(16)) + np.arange(
        16, dtype=np.uint64
    )
    seed = int(seed)
    r = philox4x32_10((c & np.uint64(_U32), c >> np.uint64(32), 0, 0), (seed & _U32, seed >> 32))
    words = np.stack(r, axis=1).reshape(-1)[: int(n)]  # (block, word, lane) -> element order
    return words >= np.uint32(np.floor(float(p) * 2.0**32))


def dropout_mask(shape: Any, p: float, seed: int, dtype: Any = np.float64) -> np.ndarray:
    """The scaled keep mask ``keep / (1 - p)`` (the scale rounded once to dtype); ones for p = 0."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
    n = int(np.prod(shape, dtype=np.int64))
    if p == 0:
        return np.ones(shape, dtype)
    scale = dtype.type(1.0 / (1.0 - float(p)))
    return np.where(dropout_keep(n, p, seed), scale, dtype.type(0)).reshape(shape)


def dropout(x: Any, p: float, seed: int) -> np.ndarray:
    """Inverted dropout ``x * dropout_mask(x.shape, p, seed)`` (a copy of x for p = 0)."""
    x = np.asarray(x)
    if p == 0:
        return x.copy()
    return x * dropout_mask(x.shape, p, seed, x.dtype)


def dropout_backward(grad_y: Any, p: float, seed: int) -> np.ndarray:
    """``grad_y * dropout_mask(grad_y.shape, p, seed)``: the forward's mask, recomputed."""
    return dropout(grad_y, p, seed)


# ----------------------------------------------------------------------------- GELU, LeakyReLU
# NOTE: math.erfc element by element (np.frompyfunc): NumPy has no erf, and 1 + erf(x / sqrt2)
# loses every digit for x below -6, where erfc keeps them.
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _float(z: Any) -> np.ndarray:
    z = np.asarray(z)
    return z if z.dtype.kind == "f" else z.astype(np.float64)


# Beyond |z| = 40, Phi is 0 or 1 and the density 0 in float64: gelu and gelu' take their limits
# there (at +-inf too, where the formulas give inf * 0), as the kernels do.
_GELU_TAIL = 40.0


def _phi_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_ERFC(-np.asarray(z, np.float64) * math.sqrt(0.5)), np.float64)


def gelu(z: Any) -> np.ndarray:
    """z * Phi(z), Phi(z) = erfc(-z / sqrt2) / 2 (the exact form), computed in float64;
    -0 below z = -40 (the limit, -inf included)."""
    z = _float(z)
    z64 = z.astype(np.float64)
    with np.errstate(invalid="ignore"):
        y = np.where(z64 < -_GELU_TAIL, -0.0, z64 * _phi_cdf(z64))
    return y.astype(z.dtype)


def gelu_backward(grad_y: Any, z: Any) -> np.ndarray:
    """grad_y * (Phi(z) + z exp(-z**2 / 2) / sqrt(2 pi)), computed in float64 (0 below z = -40,
    1 above z = 40)."""
    z = _float(z)
    z64 = z.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        d = _phi_cdf(z64) + z64 * np.exp(-0.5 * z64 * z64) / math.sqrt(2 * math.pi)
        d = np.where(z64 < -_GELU_TAIL, 0.0, np.where(z64 > _GELU_TAIL, 1.0, d))
        return (np.asarray(grad_y, np.float64) * d).astype(z.dtype)


def leaky_relu(z: Any, negative_slope: float = 0.01) -> np.ndarray:
    """z where z > 0, negative_slope * z elsewhere (NaN propagates)."""
    z = _float(z)
    return np.where(z > 0, z, z * z.dtype.type(negative_slope))


def leaky_relu_backward(grad_y: Any, z: Any, negative_slope: float = 0.01) -> np.ndarray:
    """grad_y where z > 0, negative_slope * grad_y elsewhere."""
    z = _float(z)
    g = np.asarray(grad_y, z.dtype)
    return np.where(z > 0, g, g * z.dtype.type(negative_slope))


# ----------------------------------------------------------------------------- batch norm
def _bn_view(x: np.ndarray, v: Any) -> np.ndarray:
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm_train(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    momentum: float = 0.1,
    eps: float = 1e-5,
    activation: str = "linear",
) -> tuple[np.ndarray, ...]:
    """torch's training-mode batch norm over axis 1, in float64.

    Returns ``(y, mean, invstd, new_running_mean, new_running_var)``: biased variance to normalise,
    unbiased (``* m / (m - 1)``) for the running update.
    """
    x = np.asarray(x, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.size // max(x.shape[1], 1)
    mean = x.mean(axis=axes)
    var = ((x - _bn_view(x, mean)) ** 2).mean(axis=axes)
    invstd = 1.0 / np.sqrt(var + eps)
    y = (x - _bn_view(x, mean)) * _bn_view(x, invstd * np.asarray(gamma, np.float64))
    y = y + _bn_view(x, beta)
    if activation == "relu":
        y = np.maximum(y, 0.0)
    rm = (1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mean
    rv = (1 - momentum) * np.asarray(running_var, np.float64) + momentum * var * m / (m - 1)
    return y, mean, invstd, rm, rv


def batch_norm_eval(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    eps: float = 1e-5,
    activation: str = "linear",
) -> np.ndarray:
    """Inference batch norm over axis 1 from the running statistics, in float64."""
    x = np.asarray(x, np.float64)
    invstd = 1.0 / np.sqrt(np.asarray(running_var, np.float64) + eps)
    y = (x - _bn_view(x, running_mean)) * _bn_view(x, invstd * np.asarray(gamma, np.float64))
    y = y + _bn_view(x, beta)
    return np.maximum(y, 0.0) if activation == "relu" else y


def batch_norm_backward(
    grad_y: Any,
    x: Any,
    gamma: Any,
    mean: Any,
    invstd: Any,
    y: Any = None,
    activation: str = "linear",
    training: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad_x, grad_gamma, grad_beta) of batch norm, in float64; under relu grad_y is masked by
    y > 0 first. In training mode mean and invstd are the batch's (x's dependence on them
    included), in inference the running statistics' (constants)."""
    x = np.asarray(x, np.float64)
    g = np.asarray(grad_y, np.float64)
    if activation == "relu":
        g = np.where(np.asarray(y) > 0, g, 0.0)
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.size // max(x.shape[1], 1)
    xh = (x - _bn_view(x, mean)) * _bn_view(x, invstd)
    gb = g.sum(axis=axes)
    gg = (g * xh).sum(axis=axes)
    k = _bn_view(x, np.asarray(gamma, np.float64) * np.asarray(invstd, np.float64))
    if not training or m == 0:
        return k * g, gg, gb
    return k * (g - _bn_view(x, gb) / m - xh * _bn_view(x, gg) / m), gg, gb


# ----------------------------------------------------------------------------- optimizers


def sgd_step(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's SGD: v = momentum v + g; p = p - lr v. Returns new (param, velocity)."""
    v = momentum * velocity + grad
    return param - lr * v, v


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's Adam at step t (1-based). Returns new (param, m, v)."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    mhat = m / (1 - beta1**t)
    vhat = v / (1 - beta2**t)
    return param - lr * mhat / (np.sqrt(vhat) + eps), m, v
