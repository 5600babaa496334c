# ruff: noqa: NPY002  (the tutorial's global-RNG draws are the contract here)
"""SEED: the tutorial's own NumPy code (tutorial.md), verbatim apart from plotting.

The one copy of it in the project: tests/test_tutorial.py runs it beside :mod:`nnfast.tutorial`
as the reference (same seed, same printout, same numbers) and ``nnfast bench`` times it as the
"seed" baseline (XOR training, ``convolve2d``). Not public API; do not "improve" it: its loops
and its rounding are what nnfast is compared against.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def relu(z):
    return np.maximum(0, z)


class Neuron:
    def __init__(self, n_inputs):
        self.weights = np.random.randn(n_inputs) * 0.1
        self.bias = 0.0

    def forward(self, x, activation="sigmoid"):
        z = np.dot(self.weights, x) + self.bias
        if activation == "sigmoid":
            a = 1 / (1 + np.exp(-z))
        elif activation == "relu":
            a = np.maximum(0, z)
        elif activation == "tanh":
            a = np.tanh(z)
        else:
            a = z
        return z, a


class SimpleNeuralNetwork:
    def __init__(self, input_size, hidden_size, output_size):
        self.W1 = np.random.randn(input_size, hidden_size) * 0.1
        self.b1 = np.zeros(hidden_size)
        self.W2 = np.random.randn(hidden_size, output_size) * 0.1
        self.b2 = np.zeros(output_size)
        self.loss_history = []

    def forward(self, X):
        self.z1 = np.dot(X, self.W1) + self.b1
        self.a1 = relu(self.z1)
        self.z2 = np.dot(self.a1, self.W2) + self.b2
        self.a2 = sigmoid(self.z2)
        return self.a2

    def backward(self, X, y, output, learning_rate):
        m = X.shape[0]
        dz2 = output - y
        dW2 = (1 / m) * np.dot(self.a1.T, dz2)
        db2 = (1 / m) * np.sum(dz2, axis=0)
        da1 = np.dot(dz2, self.W2.T)
        dz1 = da1 * (self.z1 > 0)
        dW1 = (1 / m) * np.dot(X.T, dz1)
        db1 = (1 / m) * np.sum(dz1, axis=0)
        self.W2 -= learning_rate * dW2
        self.b2 -= learning_rate * db2
        self.W1 -= learning_rate * dW1
        self.b1 -= learning_rate * db1

    def train(self, X, y, epochs, learning_rate, verbose=True):
        for epoch in range(epochs):
            output = self.forward(X)
            loss = np.mean((output - y) ** 2)
            self.loss_history.append(loss)
            self.backward(X, y, output, learning_rate)
            if verbose and epoch % 100 == 0:
                accuracy = np.mean((output > 0.5) == y) * 100
                print(f"Epoch {epoch:4d}: Loss = {loss:.6f}, Accuracy = {accuracy:.1f}%")
        if verbose:
            final_accuracy = np.mean((output > 0.5) == y) * 100
            print("\n✓ Training complete!")
            print(f"  Final loss: {loss:.6f}")
            print(f"  Final accuracy: {final_accuracy:.1f}%")

    def predict(self, X):
        output = self.forward(X)
        return (output > 0.5).astype(int)


def convolve2d(image, kernel):
    img_h, img_w = image.shape
    ker_h, ker_w = kernel.shape
    out_h = img_h - ker_h + 1
    out_w = img_w - ker_w + 1
    feature_map = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = image[i : i + ker_h, j : j + ker_w]
            feature_map[i, j] = np.sum(patch * kernel)
    return feature_map


def max_pool2d(feature_map, pool_size=2):
    h, w = feature_map.shape
    out_h = h // pool_size
    out_w = w // pool_size
    pooled = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            patch = feature_map[
                i * pool_size : (i + 1) * pool_size, j * pool_size : (j + 1) * pool_size
            ]
            pooled[i, j] = np.max(patch)
    return pooled


def loss_function(weights, X, y):
    predictions = sigmoid(np.dot(X, weights))
    return np.mean((predictions - y) ** 2)


def gradient_descent(X, y, learning_rate=0.1, n_iterations=100):
    n_features = X.shape[1]
    weights = np.random.randn(n_features) * 0.1
    loss_history = []
    weight_history = [weights.copy()]
    for iteration in range(n_iterations):
        z = np.dot(X, weights)
        predictions = sigmoid(z)
        loss = np.mean((predictions - y) ** 2)
        loss_history.append(loss)
        error = predictions - y
        gradient = (2 / len(y)) * np.dot(X.T, error * predictions * (1 - predictions))
        weights = weights - learning_rate * gradient
        weight_history.append(weights.copy())
        if iteration % 20 == 0:
            print(
                f"  Iteration {iteration:3d}: Loss = {loss:.6f}, "
                f"Weights = [{weights[0]:.3f}, {weights[1]:.3f}]"
            )
    return weights, loss_history, weight_history


def brute_force_search(X, y, n_attempts):
    best_loss = float("inf")
    best_weights = None
    losses = []
    for i in range(n_attempts):
        w = np.random.randn(2) * 2
        loss = loss_function(w, X, y)
        losses.append(loss)
        if loss < best_loss:
            best_loss = loss
            best_weights = w
            print(
                f"  Step {i + 1:5d}: New best! Loss = {loss:.6f}, "
                f"Weights = [{w[0]:.3f}, {w[1]:.3f}]"
            )
    return best_weights, best_loss, losses
