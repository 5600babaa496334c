"""Type stubs for nnfast._core, the native extension.

The functions here are strict: inputs must be C-contiguous float32/float64 ``numpy.ndarray``s
(no conversion); the public wrappers in :mod:`nnfast.functional` convert first. Every kernel
releases the GIL while it runs.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str
_compiler: str
_build_type: str
_isa_compiled: tuple[str, ...]

FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def relu(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """max(0, z) element-wise.

    Parameters
    ----------
    z : ndarray, any shape, float32 or float64, C-contiguous
    out : ndarray, optional
        Same shape and dtype as ``z``, C-contiguous, writeable; may be ``z`` (in place).

    Returns
    -------
    ndarray
        Same shape and dtype as ``z``; NaN propagates.
    """

def sigmoid(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """1 / (1 + exp(-z)) element-wise (same conventions as :func:`relu`)."""

def tanh(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """tanh(z) element-wise (same conventions as :func:`relu`)."""

def relu_derivative(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """1.0 where z > 0 else 0.0 (same conventions as :func:`relu`)."""

def sigmoid_derivative(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """s (1 - s), s = sigmoid(z) (same conventions as :func:`relu`)."""

def tanh_derivative(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """1 - tanh(z)**2 (same conventions as :func:`relu`)."""

def softmax(z: FloatArray, axis: int = -1, out: FloatArray | None = None) -> FloatArray:
    """exp(z) / sum(exp(z)) along ``axis`` (any axis of a >= 1-D array).

    Parameters
    ----------
    z : ndarray, >= 1-D, float32 or float64, C-contiguous
    axis : int
        In ``[-z.ndim, z.ndim)``.
    out : ndarray, optional
        Same shape and dtype as ``z``, C-contiguous, writeable; may be ``z`` (in place).
    """

# ---- losses (issue 3)

def mse_loss(pred: FloatArray, target: FloatArray) -> float:
    """mean((pred - target)**2), summed in double (NaN when empty)."""

def mse_loss_grad(
    pred: FloatArray, target: FloatArray, out: FloatArray | None = None
) -> FloatArray:
    """2 (pred - target) / pred.size; ``out`` may be ``pred`` or ``target``."""

def binary_cross_entropy(prob: FloatArray, target: FloatArray) -> float:
    """-mean(t log p + (1 - t) log(1 - p)), log terms clamped at -100 (PyTorch)."""

def binary_cross_entropy_grad(
    prob: FloatArray, target: FloatArray, out: FloatArray | None = None
) -> FloatArray:
    """(p - t) / max(p (1 - p), 1e-12) / p.size (PyTorch's gradient)."""

def softmax_cross_entropy(
    logits: FloatArray,
    labels: npt.NDArray[np.int64] | FloatArray,
    out: FloatArray | None = None,
) -> tuple[float, FloatArray]:
    """Fused softmax + cross-entropy over rows of ``logits`` (N, K).

    ``labels``: int64 class indices (N,) in [0, K), or one-hot rows (N, K) of the logits' dtype.
    Returns ``(mean loss, (softmax(logits) - onehot) / N)``; ``out`` (not overlapping an input)
    receives the gradient.
    """

# ---- dense / GEMM

def matmul(
    a: FloatArray,
    b: FloatArray,
    out: FloatArray | None = None,
    trans_a: bool = False,
    trans_b: bool = False,
) -> FloatArray:
    """op(a) @ op(b) by nnfast's packed SIMD GEMM.

    Parameters
    ----------
    a : ndarray, 2-D, float32 or float64, C-contiguous
        ``(m, k)``, or ``(k, m)`` read transposed when ``trans_a``.
    b : ndarray, 2-D, dtype of ``a``, C-contiguous
        ``(k, n)``, or ``(n, k)`` read transposed when ``trans_b``.
    out : ndarray, optional
        ``(m, n)``, dtype of ``a``, C-contiguous, writeable, not overlapping ``a`` or ``b``.
    trans_a, trans_b : bool
        Read the operand transposed in place (no copy).

    Returns
    -------
    ndarray
        ``(m, n)``; bit-identical for any thread count.
    """

def dense(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None = None,
    activation: str = "linear",
    out: FloatArray | None = None,
) -> FloatArray:
    """act(x @ w + b), bias and activation fused into the GEMM's store.

    Parameters
    ----------
    x : ndarray, ``(batch, in_features)``, float32 or float64, C-contiguous
    w : ndarray, ``(in_features, out_features)``, dtype of ``x``
    b : ndarray, ``(out_features,)``, dtype of ``x``, optional
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"}
    out : ndarray, optional
        ``(batch, out_features)``, dtype of ``x``, C-contiguous, writeable, no overlap.

    Returns
    -------
    ndarray
        ``(batch, out_features)``.
    """

OutTriple = tuple[FloatArray | None, FloatArray | None, FloatArray | None]

def dense_backward(
    x: FloatArray,
    w: FloatArray,
    a: FloatArray,
    grad_a: FloatArray,
    activation: str = "linear",
    out: OutTriple | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients of ``a = act(x @ w + b)`` given ``grad_a = dL/da``.

    Parameters
    ----------
    x : ndarray, ``(batch, in_features)``
    w : ndarray, ``(in_features, out_features)``
    a : ndarray, ``(batch, out_features)``, the forward output
    grad_a : ndarray, ``(batch, out_features)``
    activation : {"linear", "relu", "sigmoid", "tanh", "softmax"}
    out : tuple (grad_x, grad_w, grad_b), optional
        Each entry an array of that result's shape and ``x``'s dtype (C-contiguous, writeable,
        not overlapping an input or another entry) or None; supplied entries are returned.

    Returns
    -------
    tuple of ndarray
        ``(grad_x (batch, in), grad_w (in, out), grad_b (out,))``, all of ``x``'s dtype.
    """



# ---- convolution and pooling (issue 5)

IntOrPair = int | tuple[int, int]

def conv2d(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    out: FloatArray | None = None,
    activation: str | None = "linear",
    algorithm: str = "auto",
) -> FloatArray:
    """act(conv(x, w) + b): x (N, C, H, W) with w (O, C, kh, kw), or x (H, W) with w (kh, kw).

    With a float64 ``x``, ``w`` may also be an integer or bool array (converted to float64 here).

    ``algorithm`` is "auto" (by shape), "direct" (stride_w 1 only, else im2col) or "im2col".
    """

def conv2d_backward(
    x: FloatArray,
    w: FloatArray,
    grad_y: FloatArray,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    need_grad_x: bool = True,
    out: OutTriple | None = None,
    activation: str | None = "linear",
    y: FloatArray | None = None,
) -> tuple[FloatArray | None, FloatArray, FloatArray]:
    """(grad_x or None, grad_w, grad_b) of act(conv2d) given dL/dy (act' from ``y``, the
    forward's output); ``out`` as for :func:`dense_backward` (``out[0]`` must be None when
    ``need_grad_x`` is False)."""


def _conv2d_kernels(
    x: FloatArray, w: FloatArray, stride: IntOrPair = 1, padding: IntOrPair | str = 0
) -> str:
    """The kernels the automatic choice runs for this shape and dtype on the active ISA
    (forward, grad_x, grad_w), as text for benchmark notes."""

def max_pool2d(
    x: FloatArray,
    pool_size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    return_indices: bool = False,
    out: FloatArray | tuple[FloatArray | None, npt.NDArray[np.int64] | None] | None = None,
) -> FloatArray | tuple[FloatArray, npt.NDArray[np.int64]]:
    """Max over windows (floor mode); with return_indices also the flat argmax per plane.

    ``out``: the result array, or with ``return_indices`` a tuple ``(y, indices)`` whose entries
    may be None."""

def max_pool2d_backward(
    grad_y: FloatArray,
    indices: npt.NDArray[np.int64],
    input_shape: tuple[int, ...],
    pool_size: IntOrPair | None = None,
    stride: IntOrPair | None = None,
    out: FloatArray | None = None,
) -> FloatArray:
    """grad_y scattered (added) into zeros of input_shape at validated indices."""

def avg_pool2d(
    x: FloatArray,
    pool_size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    out: FloatArray | None = None,
) -> FloatArray:
    """Mean over pool_size windows (floor mode, no padding)."""

def avg_pool2d_backward(
    grad_y: FloatArray,
    input_shape: tuple[int, ...],
    pool_size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    out: FloatArray | None = None,
) -> FloatArray:
    """grad_x: each window's grad_y / (ph * pw) added over the window."""

def global_avg_pool2d(x: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """(N, C, H, W) -> (N, C): the mean of each plane."""

def global_avg_pool2d_backward(
    grad_y: FloatArray, input_shape: tuple[int, int, int, int], out: FloatArray | None = None
) -> FloatArray:
    """grad_x of input_shape (N, C, H, W): grad_y / (H * W) over each plane."""

# ---- dropout (issue 17)

def dropout(x: FloatArray, p: float, seed: int, out: FloatArray | None = None) -> FloatArray:
    """Inverted dropout: x * keep / (1 - p), keep from Philox4x32-10 over (seed, element index)."""

def dropout_backward(
    grad_y: FloatArray, p: float, seed: int, out: FloatArray | None = None
) -> FloatArray:
    """grad_y * keep / (1 - p): dropout's mask recomputed from (seed, element index)."""

def dropout_mask(
    shape: tuple[int, ...] | list[int], p: float, seed: int, dtype: npt.DTypeLike
) -> FloatArray:
    """The scaled keep mask keep / (1 - p) of dropout for a shape."""

# ---- GELU, LeakyReLU, batch norm (issue 17)

def gelu(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """z * Phi(z), Phi the standard normal CDF (GELU, exact erf form)."""

def gelu_backward(grad_y: FloatArray, z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """grad_y * gelu'(z), gelu'(z) = Phi(z) + z phi(z)."""

def leaky_relu(
    z: FloatArray, negative_slope: float = 0.01, out: FloatArray | None = None
) -> FloatArray:
    """z where z > 0, negative_slope * z elsewhere."""

def leaky_relu_backward(
    grad_y: FloatArray, z: FloatArray, negative_slope: float = 0.01, out: FloatArray | None = None
) -> FloatArray:
    """grad_y where z > 0, negative_slope * grad_y elsewhere."""

def batch_norm_train(
    x: FloatArray,
    gamma: FloatArray,
    beta: FloatArray,
    running_mean: FloatArray,
    running_var: FloatArray,
    momentum: float = 0.1,
    eps: float = 1e-5,
    activation: str = "linear",
    out: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Training batch norm over axis 1: (y, mean, invstd); running statistics updated in place."""

def batch_norm_eval(
    x: FloatArray,
    gamma: FloatArray,
    beta: FloatArray,
    running_mean: FloatArray,
    running_var: FloatArray,
    eps: float = 1e-5,
    activation: str = "linear",
    out: FloatArray | None = None,
) -> FloatArray:
    """Inference batch norm over axis 1 from the running statistics."""

def batch_norm_backward(
    grad_y: FloatArray,
    x: FloatArray,
    gamma: FloatArray,
    mean: FloatArray,
    invstd: FloatArray,
    y: FloatArray | None = None,
    activation: str = "linear",
    training: bool = True,
    out: tuple[FloatArray | None, FloatArray | None, FloatArray | None] | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Batch norm backward: (grad_x, grad_gamma, grad_beta)."""

# ---- optimizers (issue 6)

def sgd_step(
    param: FloatArray,
    grad: FloatArray,
    velocity: FloatArray | None,
    lr: float,
    momentum: float = 0.0,
) -> None:
    """In place: velocity = momentum * velocity + grad; param -= lr * velocity (or grad)."""

def adam_step(
    param: FloatArray,
    grad: FloatArray,
    m: FloatArray,
    v: FloatArray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
) -> None:
    """In place Adam update (torch.optim.Adam's formula) at 1-based step ``step``."""

def _tutorial_train(
    X: FloatArray,
    y: FloatArray,
    W1: FloatArray,
    b1: FloatArray,
    W2: FloatArray,
    b2: FloatArray,
    epochs: int,
    learning_rate: float,
    loss: FloatArray,
    z1: FloatArray,
    a1: FloatArray,
    z2: FloatArray,
    a2: FloatArray,
    first_a2: FloatArray | None = None,
) -> None:
    """The tutorial's SimpleNeuralNetwork.train loop fused (ReLU hidden, sigmoid output, MSE)."""

# ---- runtime

def set_num_threads(n: int) -> None:
    """Sets the number of kernel threads (1..4096, the calling thread included)."""

def get_num_threads() -> int:
    """Number of kernel threads."""


def _isa() -> str:
    """The SIMD path in use: "baseline", "avx2" or "avx512"."""

def _isa_available() -> list[str]:
    """Paths this CPU and build can run, weakest first."""


def _fma_peak(dtype: npt.DTypeLike, iters: int, threads: int = 1) -> float:
    """GFLOP/s of register-only FMA chains on the active ISA, run on ``threads`` pool threads.

    A measurement of the machine's limit for the benchmark table, not a kernel.
    """

# ---- _testing: hooks for nnfast's own tests (not API): set_isa(name), new_array(shape, dtype),
# gemm(a, b, c, ...), set_gemm_shared_pack_min(madds), conv2d_algorithm(x, w, stride, padding).
_testing: Any
