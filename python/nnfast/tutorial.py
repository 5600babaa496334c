# ruff: noqa: NPY002  (the tutorial's global-RNG draws are the contract here)
"""The tutorial's own classes and functions, computed by nnfast's kernels.

"From Neurons to CNNs" (``/work/shared/tutorial.md``) writes a :class:`Neuron`, a two-layer
:class:`SimpleNeuralNetwork`, ``convolve2d``, ``max_pool2d``, ``flatten``, ``loss_function``,
``gradient_descent`` and a brute-force random search in NumPy loops. This module keeps their
signatures, attribute names, printouts and return values, and runs them on the native kernels,
so the tutorial's usage code runs unchanged::

    import numpy as np
    from nnfast.tutorial import SimpleNeuralNetwork

    np.random.seed(42)
    model = SimpleNeuralNetwork(input_size=2, hidden_size=4, output_size=1)
    model.train(X_train, y_train, epochs=1000, learning_rate=0.5)

Everything is float64, and initial weights are drawn from NumPy's *global* RNG exactly as the
tutorial draws them (``np.random.randn(...) * 0.1``), so after ``np.random.seed(42)`` the classes
print and return what the tutorial's NumPy code prints and returns (the same ``train()`` lines,
the same loss history to ~1e-12, the same gradient-descent weights and histories). The tests
run the tutorial's code side by side to hold this.

Where the tutorial's printed "Expected Output" disagrees with its own code
--------------------------------------------------------------------------
The laptop-purchase neuron (Part 1) sets ``weights = [-0.5, 1.2]`` and ``bias = 0.3``. Its code
gives ``z = -0.5*0.8 + 1.2*0.9 + 0.3 = 0.980`` (72.7 %) for the high-end seeker, as printed, but
``z = -0.5*0.3 + 1.2*0.5 + 0.3 = 0.750`` (67.9 %) for the budget buyer, where the tutorial prints
0.600 (64.6 %), and ``z = -0.5*0.9 + 1.2*0.3 + 0.3 = 0.210`` (55.2 %, *will* buy) for the
expensive low-spec customer, where it prints -0.090 (47.8 %, won't buy). :class:`Neuron`
reproduces what the code computes (0.750 and 0.210), not the printed block.

Other decisions
---------------
* ``SimpleNeuralNetwork.train`` runs the whole epoch loop in one native call (``_core
  ._tutorial_train``) when ``y`` has the output's shape ``(n_samples, output_size)``, as in the
  tutorial; ``loss_history`` then receives Python floats (equal to the tutorial's
  ``np.float64`` values). Other label shapes raise a ``ValueError``: the tutorial's code would
  silently broadcast a 1-D ``y`` against the ``(n, 1)`` output into an ``(n, n)`` error matrix.
* ``train(..., epochs=0, verbose=True)`` prints nothing (the tutorial's code would raise
  ``UnboundLocalError``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core, functional
from .functional import dense, dense_backward

__all__ = [
    "Neuron",
    "SimpleNeuralNetwork",
    "brute_force_search",
    "convolve2d",
    "flatten",
    "gradient_descent",
    "loss_function",
    "max_pool2d",
]

_F64 = np.dtype(np.float64)


def _f64(x: Any) -> np.ndarray:
    """``x`` as a C-contiguous float64 array (the tutorial computes in float64 throughout)."""
    if type(x) is np.ndarray and x.dtype == _F64 and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=np.float64)


def _activate(z: np.ndarray, name: str) -> np.ndarray:
    """``name``-activation of ``z`` (any shape) by its element-wise kernel."""
    return getattr(functional, name)(z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return _activate(z, "sigmoid")


class Neuron:
    """A single artificial neuron, ``a = phi(w . x + b)`` (tutorial Part 1).

    Parameters
    ----------
    n_inputs : int
        Number of inputs; weights are drawn as ``np.random.randn(n_inputs) * 0.1`` from NumPy's
        global RNG (as the tutorial does), bias starts at 0.0.

    Attributes
    ----------
    weights : numpy.ndarray, shape (n_inputs,), float64
    bias : float
    """

    def __init__(self, n_inputs: int) -> None:
        self.weights = np.random.randn(n_inputs) * 0.1
        self.bias = 0.0

    def forward(self, x: Any, activation: str = "sigmoid") -> tuple[Any, Any]:
        """Forward pass.

        Parameters
        ----------
        x : array_like, shape (n_inputs,) or (batch, n_inputs)
            One input vector (or a batch of them, one per row).
        activation : {"sigmoid", "relu", "tanh"} or other
            Any other value means linear, as in the tutorial.

        Returns
        -------
        z : numpy.float64 or numpy.ndarray of shape (batch,)
            Weighted sum ``w . x + b``.
        a : same type as ``z``
            Activated output.
        """
        x2 = _f64(x)
        w = _f64(self.weights).reshape(-1, 1)
        b = np.full(1, self.bias, dtype=np.float64)
        z = dense(x2, w, b)
        name = activation if activation in ("sigmoid", "relu", "tanh") else None
        a = _activate(z, name) if name is not None else z
        if x2.ndim == 1:
            return z[0], a[0]
        return z[:, 0], a[:, 0]

    def __repr__(self) -> str:
        return f"Neuron(weights={self.weights}, bias={self.bias:.3f})"


class SimpleNeuralNetwork:
    """The tutorial's 2-layer network: Input -> Hidden(ReLU) -> Output(Sigmoid), MSE loss.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Layer widths. ``W1 = randn(input_size, hidden_size) * 0.1`` and
        ``W2 = randn(hidden_size, output_size) * 0.1`` are drawn from NumPy's global RNG in that
        order (as the tutorial does); biases start at zero.

    Attributes
    ----------
    W1, b1, W2, b2 : numpy.ndarray, float64
    loss_history : list of float
        Loss of every epoch trained so far.
    z1, a1, z2, a2 : numpy.ndarray
        Pre-activations and activations of the last forward pass.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        self.W1 = np.random.randn(input_size, hidden_size) * 0.1
        self.b1 = np.zeros(hidden_size)
        self.W2 = np.random.randn(hidden_size, output_size) * 0.1
        self.b2 = np.zeros(output_size)
        self.loss_history: list[float] = []

    def __repr__(self) -> str:
        i, h = np.shape(self.W1)
        o = np.shape(self.W2)[1]
        return f"SimpleNeuralNetwork(input_size={i}, hidden_size={h}, output_size={o})"

    def _params_f64(self) -> None:
        # The kernels update the parameters in place; they must be float64 C-contiguous arrays
        # (as the tutorial creates them). Anything else a user assigned is converted once here.
        for name in ("W1", "b1", "W2", "b2"):
            p = getattr(self, name)
            if not (
                type(p) is np.ndarray
                and p.dtype == _F64
                and p.flags.c_contiguous
                and p.flags.writeable
            ):
                setattr(self, name, np.array(p, dtype=np.float64, order="C"))

    def forward(self, X: Any) -> np.ndarray:
        """Forward pass; ``X`` is ``(n_samples, input_size)``, returns ``a2`` ``(n_samples,
        output_size)`` and keeps ``z1``, ``a1``, ``z2``, ``a2``."""
        X = _f64(X)
        self.z1 = dense(X, _f64(self.W1), _f64(self.b1))
        self.a1 = functional.relu(self.z1)
        self.z2 = dense(self.a1, _f64(self.W2), _f64(self.b2))
        self.a2 = _sigmoid(self.z2)
        return self.a2

    def backward(self, X: Any, y: Any, output: Any, learning_rate: float) -> None:
        """Backpropagation and one gradient-descent step, in place (the tutorial's formulas:
        ``dz2 = output - y``, ``dW2 = a1.T @ dz2 / m``, ``dz1 = dz2 @ W2.T * (z1 > 0)``, ...)."""
        self._params_f64()
        X = _f64(X)
        output = _f64(output)
        m = X.shape[0]
        dz2 = output - _f64(y)
        if dz2.shape != output.shape:
            raise ValueError(
                f"SimpleNeuralNetwork.backward: y must have the output's shape {output.shape}, "
                f"got {np.shape(y)}"
            )
        dz2 *= 1.0 / m
        # dense_backward with a linear activation gives a1.T @ dz2 and sum(dz2); the ReLU one
        # applies (a1 > 0) == (z1 > 0) to dz2 @ W2.T before the layer-1 products.
        da1, dW2, db2 = dense_backward(self.a1, self.W2, output, dz2, "linear")
        _, dW1, db1 = dense_backward(X, self.W1, self.a1, da1, "relu")
        for p, g in ((self.W2, dW2), (self.b2, db2), (self.W1, dW1), (self.b1, db1)):
            _core.sgd_step(p, g, None, learning_rate)

    def train(
        self, X: Any, y: Any, epochs: int, learning_rate: float, verbose: bool = True
    ) -> None:
        """Full-batch gradient descent on the MSE loss for ``epochs`` epochs.

        Prints ``Epoch    0: Loss = ..., Accuracy = ...%`` every 100 epochs and a summary when
        ``verbose``, exactly as the tutorial does. The epoch loop runs natively.
        """
        self._params_f64()
        X = _f64(X)
        y = _f64(y)
        if X.ndim != 2 or X.shape[1] != self.W1.shape[0]:
            raise ValueError(
                f"SimpleNeuralNetwork.train: X must have shape (n_samples, {self.W1.shape[0]}), "
                f"got {X.shape}"
            )
        n, out = X.shape[0], self.W2.shape[1]
        if y.shape != (n, out):
            raise ValueError(
                f"SimpleNeuralNetwork.train: y must have the output's shape ({n}, {out}), "
                f"got {y.shape}"
            )
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(
                f"SimpleNeuralNetwork.train: epochs must be an int >= 0, got {epochs!r}"
            )
        hidden = self.W1.shape[1]
        self.z1 = np.empty((n, hidden))
        self.a1 = np.empty((n, hidden))
        self.z2 = np.empty((n, out))
        self.a2 = np.empty((n, out))
        params = (self.W1, self.b1, self.W2, self.b2)
        buffers = (self.z1, self.a1, self.z2, self.a2)
        if not verbose:
            loss = np.empty(epochs)
            _core._tutorial_train(X, y, *params, epochs, learning_rate, loss, *buffers)
            self.loss_history.extend(loss.tolist())
            return
        first = np.empty((n, out))
        for start in range(0, epochs, 100):
            count = min(100, epochs - start)
            loss = np.empty(count)
            _core._tutorial_train(X, y, *params, count, learning_rate, loss, *buffers, first)
            self.loss_history.extend(loss.tolist())
            accuracy = np.mean((first > 0.5) == y) * 100
            print(f"Epoch {start:4d}: Loss = {loss[0]:.6f}, Accuracy = {accuracy:.1f}%")
        if epochs > 0:
            final_accuracy = np.mean((self.a2 > 0.5) == y) * 100
            print("\n✓ Training complete!")
            print(f"  Final loss: {self.loss_history[-1]:.6f}")
            print(f"  Final accuracy: {final_accuracy:.1f}%")

    def predict(self, X: Any) -> np.ndarray:
        """Class predictions ``(forward(X) > 0.5)`` as int."""
        return (self.forward(X) > 0.5).astype(int)


def convolve2d(image: Any, kernel: Any) -> np.ndarray:
    """2-D cross-correlation without padding (tutorial Part 3).

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernel : array_like, shape (kh, kw)

    Returns
    -------
    numpy.ndarray, shape (H - kh + 1, W - kw + 1), float64
    """
    image = _f64(image)
    kernel = _f64(kernel)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(
            f"convolve2d: image and kernel must be 2-D, got shapes {image.shape} and {kernel.shape}"
        )
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(
            f"convolve2d: kernel {kernel.shape} is larger than the image {image.shape}"
        )
    return functional.conv2d(image, kernel)


def max_pool2d(feature_map: Any, pool_size: int = 2) -> np.ndarray:
    """Max pooling with a ``pool_size`` window and stride (tutorial Part 3; floor mode).

    Parameters
    ----------
    feature_map : array_like, shape (H, W)
    pool_size : int

    Returns
    -------
    numpy.ndarray, shape (H // pool_size, W // pool_size), float64
    """
    fm = _f64(feature_map)
    if fm.ndim != 2:
        raise ValueError(f"max_pool2d: feature_map must be 2-D (H, W), got shape {fm.shape}")
    return functional.max_pool2d(fm, pool_size)


def flatten(feature_maps: Any) -> np.ndarray:
    """Flattens an array of any shape to 1-D (a view when possible), as the tutorial does."""
    return np.asarray(feature_maps).reshape(-1)


def _predict_linear_sigmoid(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # sigmoid(X @ w) for one weight vector (n_features,) -> (n_samples,), one fused kernel call.
    return dense(X, weights.reshape(-1, 1), None, "sigmoid")[:, 0]


def loss_function(weights: Any, X: Any, y: Any) -> np.float64:
    """Mean squared error of ``sigmoid(X @ weights)`` against ``y`` (tutorial Part 4).

    Parameters
    ----------
    weights : array_like, shape (n_features,)
    X : array_like, shape (n_samples, n_features)
    y : array_like, shape (n_samples,)
    """
    predictions = _predict_linear_sigmoid(_f64(X), _f64(weights))
    return np.mean((predictions - _f64(y)) ** 2)


def gradient_descent(
    X: Any, y: Any, learning_rate: float = 0.1, n_iterations: int = 100
) -> tuple[np.ndarray, list[Any], list[np.ndarray]]:
    """Gradient descent on :func:`loss_function` (tutorial Part 4), printing every 20 steps.

    Initial weights are ``np.random.randn(n_features) * 0.1`` from NumPy's global RNG.

    Returns
    -------
    weights : numpy.ndarray, shape (n_features,)
    loss_history : list of numpy.float64
        Loss before each update.
    weight_history : list of numpy.ndarray
        The initial weights and the weights after every update (``n_iterations + 1`` entries).
    """
    X = _f64(X)
    y = _f64(y)
    n_features = X.shape[1]
    weights = np.random.randn(n_features) * 0.1
    loss_history: list[Any] = []
    weight_history = [weights.copy()]
    scale = 2 / len(y)
    for iteration in range(n_iterations):
        w2 = weights.reshape(-1, 1)
        p = dense(X, w2, None, "sigmoid")
        error = p[:, 0] - y
        loss = np.mean(error**2)
        loss_history.append(loss)
        # dense_backward folds sigmoid's derivative p (1 - p) in: gradient = X.T @ (g * p (1-p)).
        _, gradient, _ = dense_backward(X, w2, p, (scale * error).reshape(-1, 1), "sigmoid")
        weights = weights - learning_rate * gradient[:, 0]
        weight_history.append(weights.copy())
        if iteration % 20 == 0:
            print(
                f"  Iteration {iteration:3d}: Loss = {loss:.6f}, "
                f"Weights = [{weights[0]:.3f}, {weights[1]:.3f}]"
            )
    return weights, loss_history, weight_history


def brute_force_search(
    X: Any, y: Any, n_attempts: int = 10000, scale: float = 2.0, verbose: bool = True
) -> tuple[np.ndarray | None, float, list[Any]]:
    """Random search over weight vectors (tutorial Part 4, "Method 1: Brute Force").

    Draws ``np.random.randn(n_features) * scale`` ``n_attempts`` times from NumPy's global RNG (the
    same numbers, in the same order, as the tutorial's loop; they are drawn and scored in one
    batch) and keeps the best. With ``verbose`` prints each new best as the tutorial's loop does
    (the tutorial's header and summary lines belong to its usage code, not to this function).

    Returns
    -------
    best_weights : numpy.ndarray, shape (n_features,), or None when ``n_attempts`` is 0
    best_loss : float
    losses : list of numpy.float64
        The loss of every attempt.
    """
    X = _f64(X)
    y = _f64(y)
    n_features = X.shape[1]
    if n_attempts <= 0:
        return None, float("inf"), []
    W = np.random.randn(n_attempts, n_features) * scale
    # One fused kernel call: sigmoid(W @ X.T) is (n_attempts, n_samples).
    P = dense(W, np.ascontiguousarray(X.T), None, "sigmoid")
    losses = np.mean((P - y) ** 2, axis=1)
    running = np.minimum.accumulate(losses)
    improved = np.flatnonzero(losses < np.concatenate(([np.inf], running[:-1])))
    if verbose:
        for i in improved:
            w = W[i]
            print(
                f"  Step {i + 1:5d}: New best! Loss = {losses[i]:.6f}, "
                f"Weights = [{w[0]:.3f}, {w[1]:.3f}]"
            )
    if improved.size == 0:  # every loss NaN
        return None, float("inf"), list(losses)
    best = int(improved[-1])
    best_weights, best_loss = W[best].copy(), losses[best]
    return best_weights, best_loss, list(losses)
