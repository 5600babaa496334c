# ruff: noqa: NPY002  (the tutorial's global-RNG draws are the contract here)
"""nnfast.tutorial against the tutorial's own NumPy code, run side by side with the same seed."""

from __future__ import annotations

import contextlib
import io

import nnfast as nf
import numpy as np
import pytest
from nnfast import tutorial as T

# The tutorial's own code (tutorial.md), verbatim apart from plotting, is the reference; its one
# copy lives in nnfast._tutorial_seed (the bench times it as the seed baseline too).
from nnfast._tutorial_seed import Neuron as RefNeuron
from nnfast._tutorial_seed import SimpleNeuralNetwork as RefSimpleNeuralNetwork
from nnfast._tutorial_seed import brute_force_search as ref_brute_force
from nnfast._tutorial_seed import convolve2d as ref_convolve2d
from nnfast._tutorial_seed import gradient_descent as ref_gradient_descent
from nnfast._tutorial_seed import loss_function as ref_loss_function
from nnfast._tutorial_seed import max_pool2d as ref_max_pool2d

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [0.1, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.9]])
Y_XOR = np.array([[0], [1], [1], [0], [0], [1], [1], [0]])
X_GD = np.array([[0.5, 0.8], [0.3, 0.9], [0.7, 0.4]])
Y_GD = np.array([1, 1, 0])


def run(fn, *args, seed=42, **kwargs):
    """(result, printed text) of fn after np.random.seed(seed)."""
    np.random.seed(seed)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = fn(*args, **kwargs)
    return result, buf.getvalue()


# ----------------------------------------------------------------------------------------------


def test_exports():
    for name in ("Neuron", "SimpleNeuralNetwork", "convolve2d", "loss_function"):
        assert getattr(nf, name) is getattr(T, name)
    assert "gradient_descent" in nf.__all__ and "brute_force_search" in nf.__all__


def test_xor_training_matches_tutorial(isa):
    def train(cls):
        model = cls(input_size=2, hidden_size=4, output_size=1)
        model.train(X_XOR, Y_XOR, epochs=1000, learning_rate=0.5)
        return model

    ref, ref_out = run(train, RefSimpleNeuralNetwork)
    got, got_out = run(train, T.SimpleNeuralNetwork)
    assert got_out == ref_out
    assert got_out.count("Epoch") == 10 and "Final accuracy: 100.0%" in got_out
    assert len(got.loss_history) == 1000
    np.testing.assert_allclose(got.loss_history, ref.loss_history, rtol=1e-9, atol=1e-12)
    for name in ("W1", "b1", "W2", "b2", "z1", "a1", "z2", "a2"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got.predict(X_XOR), ref.predict(X_XOR))
    grid = np.random.default_rng(0).uniform(-0.2, 1.2, (100, 2))
    np.testing.assert_allclose(got.forward(grid), ref.forward(grid), rtol=1e-12)
    np.testing.assert_allclose(got.a1, ref.a1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("epochs", [0, 1, 99, 100, 101, 250])
@pytest.mark.parametrize("verbose", [True, False])
def test_train_chunks_and_shapes(epochs, verbose):
    rng = np.random.default_rng(epochs)
    X = rng.standard_normal((11, 3))
    y = (rng.random((11, 2)) > 0.5).astype(float)

    def train(cls):
        model = cls(3, 5, 2)
        model.train(X, y, epochs=epochs, learning_rate=0.3, verbose=verbose)
        model.train(X, y, epochs=7, learning_rate=0.1, verbose=False)
        return model

    got, got_out = run(train, T.SimpleNeuralNetwork, seed=epochs)
    if epochs == 0 and verbose:
        # The tutorial's code raises UnboundLocalError here; nnfast prints nothing.
        assert got_out == "" and len(got.loss_history) == 7
        return
    ref, ref_out = run(train, RefSimpleNeuralNetwork, seed=epochs)
    assert got_out == ref_out
    np.testing.assert_allclose(got.loss_history, ref.loss_history, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.W1, ref.W1, rtol=1e-9, atol=1e-12)


def test_forward_backward_step_by_step():
    def steps(cls):
        model = cls(2, 4, 1)
        for _ in range(5):
            out = model.forward(X_XOR)
            model.backward(X_XOR, Y_XOR, out, 0.5)
        return model

    ref, _ = run(steps, RefSimpleNeuralNetwork)
    got, _ = run(steps, T.SimpleNeuralNetwork)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-12)


def test_train_keeps_user_references_and_converts_odd_params():
    np.random.seed(1)
    model = T.SimpleNeuralNetwork(2, 4, 1)
    w1 = model.W1
    model.train(X_XOR, Y_XOR, epochs=3, learning_rate=0.5, verbose=False)
    assert model.W1 is w1  # updated in place, as the tutorial's `-=` does
    model.W2 = model.W2.tolist()  # a list assigned by a user is converted once
    model.train(X_XOR, Y_XOR, epochs=3, learning_rate=0.5, verbose=False)
    assert isinstance(model.W2, np.ndarray) and model.W2.dtype == np.float64


def test_train_bad_input():
    np.random.seed(0)
    model = T.SimpleNeuralNetwork(2, 4, 1)
    with pytest.raises(ValueError, match=r"y must have the output's shape \(8, 1\), got \(8,\)"):
        model.train(X_XOR, Y_XOR[:, 0], epochs=1, learning_rate=0.5)
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 2\), got \(8, 3\)"):
        model.train(np.ones((8, 3)), Y_XOR, epochs=1, learning_rate=0.5)
    with pytest.raises(ValueError, match="epochs"):
        model.train(X_XOR, Y_XOR, epochs=-1, learning_rate=0.5, verbose=False)
    assert model.loss_history == []


def test_laptop_neuron_reproduces_the_code_not_the_printed_block():
    neuron = T.Neuron(n_inputs=2)
    neuron.weights = np.array([-0.5, 1.2])
    neuron.bias = 0.3
    ref = RefNeuron(2)
    ref.weights, ref.bias = neuron.weights, neuron.bias
    expected_z = {(0.8, 0.9): 0.980, (0.3, 0.5): 0.750, (0.9, 0.3): 0.210}
    for (price, perf), z_code in expected_z.items():
        x = np.array([price, perf])
        z, prob = neuron.forward(x, activation="sigmoid")
        rz, rprob = ref.forward(x)
        assert f"{z:.3f}" == f"{z_code:.3f}"
        assert z == pytest.approx(rz, rel=1e-15) and prob == pytest.approx(rprob, rel=1e-15)
        assert isinstance(z, np.floating) and isinstance(prob, np.floating)
    # The tutorial prints 0.600 and -0.090 for the last two customers; its code gives these.
    assert "0.750" in T.__doc__ and "0.210" in T.__doc__
    for act in ("relu", "tanh", "linear", "anything"):
        z, a = neuron.forward(np.array([0.9, 0.3]), activation=act)
        assert a == pytest.approx(ref.forward(np.array([0.9, 0.3]), act)[1], rel=1e-15)
    assert repr(neuron) == "Neuron(weights=[-0.5  1.2], bias=0.300)"


def test_neuron_init_draws_like_tutorial():
    (got, ref), _ = run(lambda: (T.Neuron(5), RefNeuron(5)))
    np.random.seed(42)
    np.testing.assert_array_equal(got.weights, RefNeuron(5).weights)
    assert got.bias == 0.0
    zs, _a = got.forward(np.ones((3, 5)), activation="relu")
    assert zs.shape == (3,)


def test_convolution_pooling_flatten_match_tutorial():
    image = np.zeros((8, 8))
    image[:, 4:8] = 255
    vert = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])
    horiz = np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]])
    for kernel in (vert, horiz):
        got = T.convolve2d(image, kernel)
        assert got.dtype == np.float64 and got.shape == (6, 6)
        np.testing.assert_array_equal(got, ref_convolve2d(image, kernel))
    fm = np.maximum(T.convolve2d(image, vert), 0)
    np.testing.assert_array_equal(T.max_pool2d(fm, pool_size=2), ref_max_pool2d(fm, 2))
    pooled = T.max_pool2d(fm)
    np.testing.assert_array_equal(T.flatten(pooled), pooled.reshape(-1))
    rng = np.random.default_rng(3)
    for shape, kshape, p in [((28, 28), (3, 3), 2), ((7, 9), (2, 4), 3), ((5, 5), (5, 5), 1)]:
        img, ker = rng.standard_normal(shape), rng.standard_normal(kshape)
        np.testing.assert_allclose(T.convolve2d(img, ker), ref_convolve2d(img, ker), rtol=1e-12)
        np.testing.assert_array_equal(T.max_pool2d(img, p), ref_max_pool2d(img, p))
    with pytest.raises(ValueError, match="convolve2d"):
        T.convolve2d(np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="convolve2d: image and kernel must be 2-D"):
        T.convolve2d(np.ones((2, 2, 2)), np.ones((3, 3)))


def test_loss_function_and_gradient_descent_match_tutorial():
    w = np.array([0.3, -1.2])
    assert T.loss_function(w, X_GD, Y_GD) == pytest.approx(ref_loss_function(w, X_GD, Y_GD))
    for lr, n in [(0.5, 100), (0.01, 50), (2.0, 50)]:
        ref, ref_out = run(ref_gradient_descent, X_GD, Y_GD, learning_rate=lr, n_iterations=n)
        got, got_out = run(T.gradient_descent, X_GD, Y_GD, learning_rate=lr, n_iterations=n)
        assert got_out == ref_out
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-10)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-10)
        np.testing.assert_allclose(np.array(got[2]), np.array(ref[2]), rtol=1e-10)
        assert len(got[2]) == n + 1


def test_brute_force_matches_tutorial_loop():
    ref, ref_out = run(ref_brute_force, X_GD, Y_GD, 2000, seed=42)
    got, got_out = run(T.brute_force_search, X_GD, Y_GD, 2000, seed=42)
    assert got_out == ref_out and got_out.count("New best") >= 3
    np.testing.assert_array_equal(got[0], ref[0])
    assert got[1] == pytest.approx(ref[1], rel=1e-12)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-12)
    # The RNG stream continues where the tutorial's loop leaves it.
    after_ref = run(lambda: (ref_brute_force(X_GD, Y_GD, 10), np.random.rand()))[0][1]
    after_got = run(lambda: (T.brute_force_search(X_GD, Y_GD, 10), np.random.rand()))[0][1]
    assert after_got == after_ref
    assert T.brute_force_search(X_GD, Y_GD, 0, verbose=False)[0] is None


def test_bench_xor_row_runs_both_implementations():
    from nnfast import bench

    (row,) = [r for r in bench.ROWS if r.name.startswith("tutorial XOR train")]
    impls = row.setup(None)
    assert set(impls) == {"nnfast", "numpy"}
    ours, seed = impls["nnfast"](), impls["numpy"]()
    np.testing.assert_allclose(ours.loss_history, seed.loss_history, rtol=1e-9, atol=1e-12)
