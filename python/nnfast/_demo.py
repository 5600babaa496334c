# ruff: noqa: NPY002  (the tutorial seeds and draws from NumPy's global RNG; that is the contract)
"""``nnfast demo``: the tutorial "From Neurons to CNNs", Parts 1-5, computed by nnfast, then the
step the tutorial only promises: a CNN trained on real handwritten digits.

Every number printed is computed here by nnfast's kernels (nothing is copied from the tutorial's
text), and every figure is drawn from those numbers by :mod:`nnfast.plot`. A part whose API is not
in this build says so plainly and is skipped instead of being imitated.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["Unavailable", "run"]


class Unavailable(RuntimeError):
    """A part of the demo needs an API this build of nnfast does not have."""


def _need(module: Any, *names: str) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        where = getattr(module, "__name__", str(module))
        raise Unavailable(f"{', '.join(f'{where}.{n}' for n in missing)} not in this build")


def _tutorial() -> Any:
    try:
        from . import tutorial
    except ImportError as exc:
        raise Unavailable(f"nnfast.tutorial not in this build ({exc})") from None
    return tutorial


class _Demo:
    def __init__(self, out: Path | None, quick: bool) -> None:
        self.out = out
        self.quick = quick
        self.figures: list[Path] = []
        self.unavailable: list[str] = []
        self.timings: list[tuple[str, float]] = []
        self.plot: Any = None
        if out is not None:
            from . import plot

            self.plot = plot
            out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------- helpers
    def figure(self, name: str, make: Callable[[Any], Any]) -> None:
        """Draws ``make(nnfast.plot)`` and saves it as ``<out>/<NN>_<name>.png``."""
        if self.plot is None:
            return
        fig = make(self.plot)
        path = self.out / f"{len(self.figures) + 1:02d}_{name}.png"  # type: ignore[operator]
        fig.savefig(path, dpi=100)
        self.figures.append(path)

    def part(self, title: str, body: Callable[[], None]) -> None:
        print()
        print("=" * 72)
        print(title)
        print("=" * 72)
        t0 = time.perf_counter()
        try:
            body()
        except Unavailable as exc:
            self.unavailable.append(f"{title}: {exc}")
            print(f"\n[unavailable] {exc}: this part is skipped, not imitated.")
        self.timings.append((title.split(":")[0], time.perf_counter() - t0))

    # ------------------------------------------------------------------------- Part 1
    def part1_neuron(self) -> None:
        tut = _tutorial()
        _need(tut, "Neuron")
        neuron = tut.Neuron(n_inputs=2)
        neuron.weights = np.array([-0.5, 1.2])  # price negative, performance positive
        neuron.bias = 0.3
        customers = [
            {"price": 0.8, "performance": 0.9, "name": "High-end seeker"},
            {"price": 0.3, "performance": 0.5, "name": "Budget buyer"},
            {"price": 0.9, "performance": 0.3, "name": "Expensive low-spec"},
        ]
        print("Laptop Purchase Prediction (one neuron, sigmoid)")
        print("-" * 60)
        for c in customers:
            x = np.array([c["price"], c["performance"]])
            z, prob = neuron.forward(x, activation="sigmoid")
            verdict = "WILL BUY" if prob > 0.5 else "WON'T BUY"
            print(f"\n{c['name']}:")
            print(f"  Inputs: Price={c['price']}, Performance={c['performance']}")
            print(f"  Weighted sum (z): {float(z):.3f}")
            print(f"  Purchase probability: {float(prob):.1%}")
            print(f"  Prediction: {verdict}")
        print(
            "\nNote: the tutorial's printed 'Expected Output' says z = 0.600 and -0.090 for the\n"
            "last two customers; its own code (and nnfast) computes 0.750 and 0.210."
        )
        self.figure(
            "neuron",
            lambda p: p.neuron(neuron.weights, neuron.bias, ["Price\n(0-1)", "Performance\n(0-1)"]),
        )

    # ------------------------------------------------------------------------- Part 2
    def part2_activations(self) -> None:
        import nnfast as nf

        for name, lo, hi in (("sigmoid", -6.0, 6.0), ("tanh", -6.0, 6.0), ("relu", -3.0, 3.0)):
            try:
                _need(nf, name, f"{name}_derivative")
            except Unavailable as exc:
                self.unavailable.append(f"Part 2 {name}: {exc}")
                print(f"\n[unavailable] {name}: {exc}")
                continue
            z = np.linspace(lo, hi, 201)
            a = getattr(nf, name)(z)
            da = getattr(nf, f"{name}_derivative")(z)
            getattr(self, f"_props_{name}")(nf, z, a, da)
            self.figure(name, lambda p, n=name, z=z, a=a, da=da: p.activation(n, z, a, da))
        try:
            _need(nf, "softmax")
        except Unavailable as exc:
            self.unavailable.append(f"Part 2 softmax: {exc}")
            print(f"\n[unavailable] softmax: {exc}")
        else:
            products = ["Laptop", "Tablet", "Phone"]
            raw_scores = np.array([2.1, 0.5, 1.3])
            probabilities = nf.softmax(raw_scores)
            print("\nSoftmax (product recommendation):")
            for prod, score, prob in zip(products, raw_scores, probabilities):
                print(f"  {prod:8s}: score={score:.2f} -> probability={prob:.1%}")
            print(f"\n  Total probability: {probabilities.sum():.3f} (must equal 1.0)")
            print(f"  Prediction: {products[int(np.argmax(probabilities))]} (highest probability)")
            self.figure(
                "softmax", lambda p: p.softmax(products, raw_scores, probabilities, "Softmax")
            )

    @staticmethod
    def _props_sigmoid(nf: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> None:
        d4 = float(nf.sigmoid_derivative(np.array([4.0]))[0])
        print("\nSigmoid properties (measured on z in [-6, 6]):")
        print(f"  Range: ({a.min():.4f} .. {a.max():.4f}) inside (0, 1): probabilities")
        print(f"  Largest gradient: {da.max():.4f} at z = {z[np.argmax(da)]:.1f}")
        print(f"  Vanishing gradient at the extremes: sigma'(4) = {d4:.4f}, {d4 / da.max():.0%} of")
        print("    the peak, so weights feeding saturated neurons barely move")
        print(f"  Not zero-centred: sigma(0) = {float(nf.sigmoid(np.array([0.0]))[0]):.1f}")

    @staticmethod
    def _props_tanh(nf: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> None:
        d4 = float(nf.tanh_derivative(np.array([4.0]))[0])
        sig_peak = float(nf.sigmoid_derivative(np.array([0.0]))[0]) if hasattr(nf, "sigmoid") else 0
        print("\nTanh properties (measured on z in [-6, 6]):")
        print(
            f"  Range: ({a.min():.4f} .. {a.max():.4f}) inside (-1, 1), tanh(0) = 0: zero-centred"
        )
        ratio = f" ({da.max() / sig_peak:.0f}x sigmoid's)" if sig_peak else ""
        print(f"  Largest gradient: {da.max():.4f}{ratio}")
        print(f"  Still vanishes: tanh'(4) = {d4:.4f}")

    @staticmethod
    def _props_relu(nf: Any, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> None:
        r = np.random.default_rng(0).standard_normal(100_000)
        sparse = float(np.mean(nf.relu(r) == 0))
        pos = da[z > 0]
        print("\nReLU properties (measured on z in [-3, 3]):")
        print(f"  Gradient for z > 0: {pos.min():.0f} everywhere, no vanishing gradient")
        print(f"  Gradient for z <= 0: {da[z <= 0].max():.0f}: dead neurons if z stays negative")
        print(f"  Sparse: {sparse:.1%} of 100,000 standard-normal inputs come out exactly 0")

    # ------------------------------------------------------------------------- Part 3
    def part3_cnn_layers(self) -> None:
        tut = _tutorial()
        _need(tut, "convolve2d", "max_pool2d", "flatten")
        import nnfast as nf

        image = np.zeros((8, 8))
        image[:, 4:8] = 255  # left dark, right bright: a vertical edge
        vertical = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=float)
        horizontal = np.array([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], dtype=float)
        v_resp = tut.convolve2d(image, vertical)
        h_resp = tut.convolve2d(image, horizontal)
        print("Convolution results (8x8 image with a vertical edge, 3x3 kernels):")
        print(f"  Vertical edge strength: {np.max(np.abs(v_resp)):.1f} (HIGH!)")
        print(f"  Horizontal edge strength: {np.max(np.abs(h_resp)):.1f} (low)")
        print(f"  Feature map shape: {v_resp.shape}")
        self.figure(
            "convolution",
            lambda p: p.convolution(
                image,
                {"Vertical edge": vertical, "Horizontal edge": horizontal},
                {"Vertical edge": v_resp, "Horizontal edge": h_resp},
            ),
        )
        relu_map = nf.relu(v_resp)
        print(f"\nReLU on the feature map: {int(np.sum(relu_map > 0))} of {relu_map.size} positive")
        self.figure("relu_feature_map", lambda p: p.relu_feature_map(v_resp, relu_map))
        pooled = tut.max_pool2d(relu_map, pool_size=2)
        print("\nPooling results:")
        print(f"  Before: {relu_map.shape} -> After: {pooled.shape}")
        print(f"  Size reduction: {100 * (1 - pooled.size / relu_map.size):.0f}%")
        print(f"  Strongest feature kept: {pooled.max():.1f}")
        self.figure("pooling", lambda p: p.pooling(relu_map, pooled, 2))
        flat = tut.flatten(pooled)
        print("\nFlattening:")
        print(f"  Input shape: {pooled.shape}")
        print(f"  Output shape: {flat.shape}")
        print(f"  Flattened values: {flat[:10]}")
        self.figure("flattening", lambda p: p.flattening(pooled, flat))

    # ------------------------------------------------------------------------- Part 4
    def part4_optimization(self) -> None:
        tut = _tutorial()
        _need(tut, "brute_force_search", "gradient_descent", "loss_function")
        np.random.seed(42)
        X = np.array([[0.5, 0.8], [0.3, 0.9], [0.7, 0.4]])
        y = np.array([1, 1, 0])
        n_attempts = 10000
        print(f"Brute force: {n_attempts} random weight pairs (seed 42)\n")
        t0 = time.perf_counter()
        best_w, best_loss, losses = tut.brute_force_search(X, y, n_attempts=n_attempts)
        t_bf = time.perf_counter() - t0
        print(f"\n  Best loss: {best_loss:.6f} after {n_attempts} attempts ({t_bf * 1e3:.1f} ms)")
        print(f"  Best weights: {best_w}")
        self.figure("brute_force", lambda p: p.brute_force(losses, best_loss))

        print("\nGradient descent: 100 steps, learning rate 0.5\n")
        t0 = time.perf_counter()
        w_gd, losses_gd, path = tut.gradient_descent(X, y, learning_rate=0.5, n_iterations=100)
        t_gd = time.perf_counter() - t0
        print(f"\n  Final loss: {losses_gd[-1]:.6f} after 100 iterations ({t_gd * 1e3:.1f} ms)")
        print(f"  Final weights: {w_gd}")
        bf100 = float(np.min(losses[:100]))
        print("\nBrute force vs gradient descent, same budget of 100 loss evaluations:")
        print(f"  brute force best {bf100:.6f}   gradient descent {losses_gd[-1]:.6f}")
        print(f"  (brute force needed {n_attempts} attempts to reach {best_loss:.6f})")
        path_arr = np.asarray(path)
        lo, hi = path_arr.min(axis=0), path_arr.max(axis=0)
        pad = np.maximum(0.5, 0.3 * (hi - lo))
        g1, g2 = np.meshgrid(
            np.linspace(lo[0] - pad[0], hi[0] + pad[0], 40),
            np.linspace(lo[1] - pad[1], hi[1] + pad[1], 40),
        )
        surface = np.array(
            [float(tut.loss_function(w, X, y)) for w in np.c_[g1.ravel(), g2.ravel()]]
        ).reshape(g1.shape)
        self.figure(
            "gradient_descent",
            lambda p: p.gradient_descent(losses, losses_gd, path_arr, (g1, g2, surface)),
        )

        print("\nLearning rates (50 steps each):")
        results = {}
        for lr in (0.01, 0.1, 0.5, 2.0):
            with contextlib.redirect_stdout(io.StringIO()):
                _, lr_losses, _ = tut.gradient_descent(X, y, learning_rate=lr, n_iterations=50)
            results[lr] = lr_losses
            drop = 1 - lr_losses[-1] / lr_losses[0]
            steady = bool(np.all(np.diff(lr_losses) <= 0))
            print(
                f"  alpha = {lr:<5}: loss {lr_losses[0]:.4f} -> {lr_losses[-1]:.4f} "
                f"(-{drop:.0%}, {'falls every step' if steady else 'goes up on some steps'})"
            )
        self.figure("learning_rates", lambda p: p.learning_rates(results))

    # ------------------------------------------------------------------------- Part 5
    def part5_training(self) -> None:
        tut = _tutorial()
        _need(tut, "SimpleNeuralNetwork")
        try:
            from .datasets import xor
        except ImportError:
            raise Unavailable("nnfast.datasets not in this build") from None
        np.random.seed(42)
        X_train, y_train = xor()
        print("Dataset: XOR (not linearly separable)")
        print("  Input      | Output")
        for x, t in zip(X_train[:4], y_train[:4]):
            print(f"  {x}  |   {t[0]}")
        model = tut.SimpleNeuralNetwork(input_size=2, hidden_size=4, output_size=1)
        print("\nTraining: 2 -> 4 (ReLU) -> 1 (sigmoid), 1000 epochs, learning rate 0.5")
        print("-" * 60)
        t0 = time.perf_counter()
        model.train(X_train, y_train, epochs=1000, learning_rate=0.5)
        dt = time.perf_counter() - t0
        print(f"  ({dt * 1e3:.1f} ms for 1000 epochs)")
        print("\nFinal predictions:")
        preds = model.forward(X_train[:4])
        for x, t, p in zip(X_train[:4], y_train[:4], preds):
            ok = "ok   " if (p[0] > 0.5) == t[0] else "WRONG"
            print(f"  {ok} Input: {x} -> Predicted: {p[0]:.3f} (True: {t[0]})")
        acc = float(np.mean(model.predict(X_train) == y_train))
        print(f"\nXOR accuracy on all {len(y_train)} points: {acc:.0%}")
        self.figure(
            "xor_training",
            lambda p: p.decision_boundary(
                model.forward, X_train, y_train, loss_history=model.loss_history
            ),
        )
        test_input = np.array([[0.2, 0.8]])
        out = model.forward(test_input)
        hidden = np.array(model.a1[0])
        print(f"\nInside the network for input {test_input[0]} (XOR says 1):")
        print(f"  hidden after ReLU: {np.round(hidden, 3)}  output: {out[0, 0]:.3f}")
        self.figure(
            "network_internals",
            lambda p: p.network_internals(test_input[0], hidden, model.W1, out[0]),
        )

    # ------------------------------------------------------------------------- Part 6
    def part6_digits(self) -> None:
        try:
            from . import nn
            from .datasets import load_digits
            from .optim import Adam
        except ImportError as exc:
            raise Unavailable(f"nnfast.nn / datasets / optim not in this build ({exc})") from None
        import nnfast as nf

        images, labels = load_digits()
        rng = np.random.default_rng(0)
        order = rng.permutation(len(labels))
        n_test, n_val = 360, 180
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        X_tr, y_tr = images[train], labels[train]
        X_val, y_val = images[val], labels[val]
        X_te, y_te = images[test], labels[test]
        print(
            f"Data: {len(labels)} handwritten digits, 8x8 grey levels, shipped with nnfast\n"
            f"      {len(train)} to train, {len(val)} to validate, {len(test)} held-out test images"
        )
        cnn = hasattr(nf, "conv2d") and hasattr(nf, "max_pool2d")
        if cnn:
            layers = nn.tutorial_cnn(1, 8, 8)
            kind = "CNN: conv 3x3 (8) > ReLU > pool > conv 3x3 (16) > ReLU > pool > dense 10"
        else:
            msg = "nnfast.conv2d/max_pool2d not in this build: the CNN is unavailable"
            self.unavailable.append(f"Part 6 CNN: {msg}")
            print(f"\n[unavailable] {msg}; training a dense network on the same digits instead.")
            layers = [nn.Flatten(), nn.Dense(64, 32), nn.ReLU(), nn.Dense(32, 10)]
            kind = "dense network: 64 > 32 (ReLU) > 10"
        model = nn.Sequential(layers, seed=0)
        epochs = 4 if self.quick else 15
        print(f"Model: {kind}\nTraining: {epochs} epochs, batch 32, Adam lr 0.01\n")
        t0 = time.perf_counter()
        history = model.fit(
            X_tr,
            y_tr,
            epochs=epochs,
            batch_size=32,
            optimizer=Adam(lr=0.01),
            validation_data=(X_val, y_val),
            verbose=1,
        )
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(X_te)
        t_pred = time.perf_counter() - t0
        acc = float(np.mean(pred == y_te))
        print(
            f"\nTest accuracy: {acc:.1%} ({int(np.sum(pred == y_te))}/{len(y_te)} held-out digits)"
        )
        # History.seconds times the batch loops only (not validation or the final printout).
        t_batches = float(sum(getattr(history, "seconds", []) or [t_train]))
        print(
            f"Speed: training {epochs * len(train) / max(t_batches, 1e-9):,.0f} images/s "
            f"({t_train:.2f} s in all, with validation), "
            f"inference {len(y_te) / max(t_pred, 1e-9):,.0f} images/s "
            f"({nf.get_num_threads()} threads, {nf.config()['isa']})"
        )
        if cnn:
            w1 = model.layers[0].W
            self.figure("learned_filters", lambda p: p.filters(w1, "Learned 3x3 filters, conv 1"))
            maps = _layer_outputs(model, X_te[:1])
            self.figure(
                "feature_maps",
                lambda p: p.feature_maps(
                    X_te[0], maps, title=f"A test digit ({y_te[0]}) layer by layer"
                ),
            )
        else:
            self.unavailable.append("Part 6 figures: learned filters and feature maps need the CNN")
        self.figure("confusion_matrix", lambda p: p.confusion_matrix(y_te, pred, 10))
        self.figure(
            "training_curves", lambda p: p.training_curves(history, "Digits: " + kind.split(":")[0])
        )
        # Mistakes first: they are the interesting ones.
        show = np.concatenate([np.flatnonzero(pred != y_te), np.flatnonzero(pred == y_te)])[:32]
        self.figure(
            "test_predictions",
            lambda p: p.predictions(X_te[show], y_te[show], pred[show], 32, "Held-out test digits"),
        )


def _layer_outputs(model: Any, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each (fused) layer's output for the batch ``x``, named like "Conv2D+ReLU", skipping Flatten
    and Dense (not images)."""
    model.predict(x)  # builds the model if needed
    ops = getattr(model, "_ops", model.layers)
    out = []
    h = np.ascontiguousarray(x, dtype=model.dtype)
    for layer in ops:
        h = layer.forward(h).copy()
        if h.ndim != 4:
            break
        act = getattr(layer, "_act", "linear")
        name = type(layer).__name__ + ("+ReLU" if act == "relu" else "")
        out.append((name, h[0]))
    return out


@contextlib.contextmanager
def _global_rng_preserved() -> Iterator[None]:
    # The tutorial seeds NumPy's global RNG; leave the caller's stream as it was.
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def run(out: Path | None, quick: bool = False) -> int:
    """Runs the demo; ``out`` is the figure folder (None: no figures). Returns the exit code."""
    import nnfast as nf

    t_start = time.perf_counter()
    cfg = nf.config()
    print(
        f"nnfast {cfg['version']} demo: the tutorial 'From Neurons to CNNs', computed by nnfast\n"
        f"SIMD path {cfg['isa']}, {cfg['num_threads']} threads"
        + (f"; figures -> {out}" if out is not None else "; no figures (--no-plots)")
    )
    demo = _Demo(out, quick)
    with _global_rng_preserved():
        demo.part("Part 1: Neurons & Synapses", demo.part1_neuron)
        demo.part("Part 2: Activation Functions", demo.part2_activations)
        demo.part("Part 3: CNN Layers", demo.part3_cnn_layers)
        demo.part("Part 4: Optimization: brute force vs gradient descent", demo.part4_optimization)
        demo.part("Part 5: Training End-to-End (XOR)", demo.part5_training)
        demo.part("Scale up: a CNN on real handwritten digits", demo.part6_digits)
    print()
    print("=" * 72)
    if demo.figures:
        print(f"{len(demo.figures)} figures written to {out}:")
        for f in demo.figures:
            print(f"  {f.name}")
    if demo.unavailable:
        print(f"\nNot available in this build ({len(demo.unavailable)}):")
        for u in demo.unavailable:
            print(f"  - {u}")
    parts = ", ".join(f"{name} {sec:.1f}" for name, sec in demo.timings)
    print(f"\nDemo finished in {time.perf_counter() - t_start:.1f} s ({parts} s).")
    return 0
