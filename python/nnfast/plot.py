"""The tutorial's figures, one function each, each returning a :class:`matplotlib.figure.Figure`.

Needs the ``viz`` extra (``pip install "nnfast[viz]"``, i.e. matplotlib). The functions take arrays
(or small objects) that nnfast computed and only draw them: no numerics happen here, so a figure
shows exactly what the kernels returned.

Headless-safe: figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``, so nothing touches a global figure manager or GUI backend and nothing leaks between
calls. Save with ``fig.savefig("name.png")``; in a notebook, a returned figure displays itself.

Tutorial figures: :func:`neuron`, :func:`activation`, :func:`softmax`, :func:`convolution`,
:func:`relu_feature_map`, :func:`pooling`, :func:`flattening`, :func:`brute_force`,
:func:`gradient_descent`, :func:`learning_rates`, :func:`training_loss`,
:func:`decision_boundary`, :func:`network_internals`. Beyond the tutorial, for CNNs on real digits:
:func:`filters`, :func:`feature_maps`, :func:`confusion_matrix`, :func:`training_curves`,
:func:`predictions`; and :func:`benchmark` for ``nnfast bench --plot``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

try:
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - exercised by the CLI's message test
    raise ImportError(
        'nnfast.plot needs matplotlib: pip install "nnfast[viz]" (or pip install matplotlib)'
    ) from exc

__all__ = [
    "activation",
    "benchmark",
    "brute_force",
    "confusion_matrix",
    "convolution",
    "decision_boundary",
    "feature_maps",
    "filters",
    "flattening",
    "gradient_descent",
    "learning_rates",
    "network_internals",
    "neuron",
    "pooling",
    "predictions",
    "relu_feature_map",
    "softmax",
    "training_curves",
    "training_loss",
]

_TITLE = {"fontsize": 14, "weight": "bold"}
_SUB = {"fontsize": 12, "weight": "bold"}


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _np(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# ----------------------------------------------------------------------------- Part 1: neurons


def neuron(
    weights: Sequence[float],
    bias: float,
    input_names: Sequence[str] | None = None,
    title: str = "Neuron with Synaptic Connections",
) -> Figure:
    """Tutorial Part 1, ``visualize_neuron``: inputs, synapses (green +, red -, width ~ |w|), sum.

    Parameters
    ----------
    weights : (n_inputs,) array_like
        The synapse weights (``Neuron.weights``).
    bias : float
        ``Neuron.bias``, written on the summing node.
    input_names : list of str, optional
        One label per input; ``x1 .. xn`` by default.
    """
    w = _np(weights).reshape(-1)
    n = w.size
    names = list(input_names) if input_names is not None else [f"x{i + 1}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"neuron: {n} weights but {len(names)} input names")
    fig = _figure(10, max(4.0, 1.5 * n + 2))
    ax = fig.add_subplot()
    out_y = n / 2 + 0.5
    for i, (wi, name) in enumerate(zip(w, names)):
        y = n - i
        ax.scatter(0, y, s=4200, c="lightblue", edgecolors="black", zorder=3)
        ax.text(0, y, name, ha="center", va="center", fontsize=9, zorder=4)
        color = "green" if wi > 0 else "red"
        ax.annotate(
            "",
            xy=(2.7, out_y),
            xytext=(0.35, y),
            arrowprops={
                "arrowstyle": "-|>",
                "color": color,
                "lw": max(0.8, abs(wi) * 5),
                "alpha": 0.7,
                "mutation_scale": 20,
            },
            zorder=2,
        )
        ax.text(
            1.3,
            y + (out_y - y) * 0.45,
            f"w={wi:.2f}",
            fontsize=11,
            ha="center",
            bbox={"boxstyle": "round", "facecolor": color, "alpha": 0.3},
            zorder=4,
        )
    ax.scatter(3, out_y, s=4000, c="orange", edgecolors="black", zorder=3)
    ax.text(
        3, out_y, f"Σ + b\n(b={bias:.2f})", ha="center", va="center", fontsize=10, weight="bold"
    )
    ax.annotate("", xy=(4.1, out_y), xytext=(3.4, out_y), arrowprops={"arrowstyle": "-|>", "lw": 2})
    ax.text(
        4.6,
        out_y,
        "Output\n(activation)",
        ha="center",
        va="center",
        fontsize=11,
        bbox={"boxstyle": "round", "facecolor": "yellow", "alpha": 0.5},
    )
    ax.set_xlim(-0.6, 5.2)
    ax.set_ylim(0.2, n + 0.8)
    ax.axis("off")
    ax.set_title(title, **_TITLE)
    return fig


# ----------------------------------------------------------------------------- Part 2: activations

_ACTIVATION_STYLE = {
    "sigmoid": ("σ(z)", "σ'(z)", "tab:blue", "tab:green", (-0.1, 1.1)),
    "tanh": ("tanh(z)", "tanh'(z)", "purple", "orange", (-1.1, 1.1)),
    "relu": ("ReLU(z)", "ReLU'(z)", "red", "darkred", None),
}


def activation(
    name: str,
    z: Any,
    a: Any,
    da: Any,
    vanishing_below: float | None = 0.02,
) -> Figure:
    """Tutorial Part 2: an activation function (left) and its derivative (right).

    Where the derivative falls below ``vanishing_below`` the right panel shades the z range red and
    labels it "vanishing gradient" (for ReLU, whose derivative is exactly 0 for z <= 0, the zone
    is the "dead zone"). Pass ``vanishing_below=None`` to mark nothing.

    Parameters
    ----------
    name : {"sigmoid", "tanh", "relu"} or any label
    z : (n,) array_like
        Increasing pre-activations.
    a, da : (n,) array_like
        The activation and its derivative at ``z`` (e.g. ``nf.sigmoid(z)``,
        ``nf.sigmoid_derivative(z)``).
    """
    z, a, da = _np(z), _np(a), _np(da)
    if not (z.shape == a.shape == da.shape) or z.ndim != 1:
        raise ValueError(
            f"activation: z, a, da must be 1-D of one shape, got {z.shape}, {a.shape}, {da.shape}"
        )
    key = name.lower()
    f_label, d_label, f_color, d_color, ylim = _ACTIVATION_STYLE.get(
        key, (f"{name}(z)", f"{name}'(z)", "tab:blue", "tab:green", None)
    )
    fig = _figure(14, 5)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(z, a, color=f_color, linewidth=2.5, label=f_label)
    ax1.fill_between(z, 0, a, alpha=0.2, color=f_color)
    if key == "sigmoid":
        ax1.axhline(0.5, color="r", linestyle="--", alpha=0.4, label="Decision boundary (0.5)")
    elif key == "tanh":
        ax1.axhline(0.0, color="r", linestyle="--", alpha=0.4, label="Zero line")
    ax1.axvline(0, color="gray", linestyle="--", alpha=0.3)
    ax1.set_xlabel("z (weighted sum)", fontsize=12)
    ax1.set_ylabel("a (activation)", fontsize=12)
    pretty = {"sigmoid": "Sigmoid Function σ(z)", "tanh": "Tanh Function", "relu": "ReLU Function"}
    ax1.set_title(pretty.get(key, f"{name} Function"), **_TITLE)
    if ylim is not None:
        ax1.set_ylim(*ylim)
    if key == "relu":
        ax1.text(z[0] * 0.7, 0.1 * max(a.max(), 1), "Dead zone\n(neuron off)", color="red")
        ax1.text(z[-1] * 0.3, a.max() * 0.6, "Active zone\n(neuron on)", color="green")
    ax1.legend(loc="upper left")
    ax1.grid(True, alpha=0.3)

    ax2.plot(z, da, color=d_color, linewidth=2.5, label=d_label)
    ax2.fill_between(z, 0, da, alpha=0.2, color=d_color)
    ax2.axvline(0, color="gray", linestyle="--", alpha=0.3)
    ax2.set_xlabel("z (weighted sum)", fontsize=12)
    ax2.set_ylabel("Gradient", fontsize=12)
    ax2.set_title(f"{d_label}: the gradient used for learning", **_TITLE)
    ax2.grid(True, alpha=0.3)
    top = float(np.nanmax(da)) if da.size else 1.0
    ax2.set_ylim(-0.05 * max(top, 1e-12), 1.25 * max(top, 1e-12))
    if vanishing_below is not None and z.size:
        low = da < vanishing_below
        # Shade each contiguous run of z where the gradient (nearly) vanishes.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], low.astype(np.int8), [0]))))
        label = (
            "Dead zone (gradient 0)"
            if key == "relu"
            else f"Vanishing gradient (< {vanishing_below:g})"
        )
        for k, (i, j) in enumerate(zip(edges[::2], edges[1::2])):
            ax2.axvspan(z[i], z[j - 1], color="red", alpha=0.12, label=label if k == 0 else None)
            mid = 0.5 * (z[i] + z[j - 1])
            ax2.text(
                mid,
                0.55 * top,
                "dead zone" if key == "relu" else "vanishing\ngradient",
                color="red",
                ha="center",
                fontsize=10,
            )
    ax2.legend(loc="upper right")
    return fig


def softmax(
    labels: Sequence[str], scores: Any, probabilities: Any, title: str = "Softmax"
) -> Figure:
    """Tutorial Part 2: raw scores (before softmax) and probabilities (after), as bars."""
    s, p = _np(scores).reshape(-1), _np(probabilities).reshape(-1)
    labels = list(labels)
    if not (len(labels) == s.size == p.size):
        raise ValueError(f"softmax: {len(labels)} labels, {s.size} scores, {p.size} probabilities")
    colors = [("#FF6B6B", "#4ECDC4", "#45B7D1")[i % 3] for i in range(len(labels))]
    fig = _figure(14, 5)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(labels, s, color=colors, alpha=0.7, edgecolor="black")
    ax1.set_ylabel("Raw Score (z)", fontsize=12)
    ax1.set_title(f"Before {title}: Raw Scores", **_TITLE)
    ax1.axhline(0, color="black", linewidth=0.8)
    ax1.grid(True, alpha=0.3, axis="y")
    ax1.set_ylim(min(0.0, s.min() * 1.2), max(0.0, s.max()) * 1.2 + 0.1)
    for i, v in enumerate(s):
        ax1.text(i, v + 0.05, f"{v:.1f}", ha="center", fontsize=11, weight="bold")
    ax2.bar(labels, p, color=colors, alpha=0.7, edgecolor="black")
    ax2.set_ylabel("Probability", fontsize=12)
    ax2.set_title(f"After {title}: Probabilities (sum {p.sum():.3f})", **_TITLE)
    ax2.set_ylim(0, 1.05)
    ax2.axhline(1.0, color="red", linestyle="--", alpha=0.4, label="Sum = 1.0")
    ax2.grid(True, alpha=0.3, axis="y")
    ax2.legend()
    for i, v in enumerate(p):
        ax2.text(i, v + 0.03, f"{v:.1%}", ha="center", fontsize=11, weight="bold")
    return fig


# ----------------------------------------------------------------------------- Part 3: CNN layers


def _annotate_cells(ax: Any, k: np.ndarray, lim: float, fmt: str = "{:.0f}") -> None:
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            dark = abs(k[i, j]) > 0.6 * lim
            ax.text(
                j,
                i,
                fmt.format(k[i, j]),
                ha="center",
                va="center",
                fontsize=14,
                weight="bold",
                color="white" if dark else "black",
            )


def _image_axes(ax: Any) -> None:
    # Images keep a thin frame (a white region must stay visible) but lose the ticks.
    ax.set_xticks([])
    ax.set_yticks([])


def convolution(
    image: Any,
    kernels: Mapping[str, Any],
    responses: Mapping[str, Any],
    image_title: str = "Original Image",
) -> Figure:
    """Tutorial Part 3: the image, then one row per kernel: the kernel and its feature map.

    All responses share one colour scale (0 is black), so a kernel that finds nothing looks dark.

    Parameters
    ----------
    image : (H, W) array_like
    kernels : dict name -> (kh, kw) array_like
        E.g. ``{"Vertical edge": k_v, "Horizontal edge": k_h}``.
    responses : dict name -> (Ho, Wo) array_like
        ``convolve2d(image, kernel)`` for each name in ``kernels``.
    """
    names = list(kernels)
    if set(names) != set(responses):
        raise ValueError(
            f"convolution: kernels and responses must have the same names, "
            f"got {sorted(names)} and {sorted(responses)}"
        )
    img = _np(image)
    resps = {n: _np(responses[n]) for n in names}
    hi = max([float(np.abs(r).max()) for r in resps.values() if r.size] + [1e-12])
    lo = -hi if any(r.size and r.min() < 0 for r in resps.values()) else 0.0
    rows = max(1, len(names))
    fig = _figure(13, 4.2 * rows)
    axes = np.atleast_2d(fig.subplots(rows, 3))
    for r in range(rows):
        for c in range(3):
            axes[r, c].axis("off")
    axes[0, 0].axis("on")
    _image_axes(axes[0, 0])
    axes[0, 0].imshow(img, cmap="gray")
    axes[0, 0].set_title(f"{image_title}\n{img.shape[0]}×{img.shape[1]}", **_SUB)
    for r, name in enumerate(names):
        k, resp = _np(kernels[name]), resps[name]
        lim = max(1e-12, float(np.abs(k).max()))
        axes[r, 1].imshow(k, cmap="RdBu_r", vmin=-lim, vmax=lim)
        if k.size <= 49:
            _annotate_cells(axes[r, 1], k, lim)
        axes[r, 1].set_title(f"{name}\nkernel {k.shape[0]}×{k.shape[1]}", **_SUB)
        axes[r, 2].axis("on")
        _image_axes(axes[r, 2])
        im = axes[r, 2].imshow(resp, cmap="hot", vmin=lo, vmax=hi)
        strength = float(np.abs(resp).max()) if resp.size else 0.0
        axes[r, 2].set_title(f"{name} response\nstrength max|S| = {strength:.1f}", **_SUB)
        fig.colorbar(im, ax=axes[r, 2], shrink=0.8)
    return fig


def relu_feature_map(before: Any, after: Any) -> Figure:
    """Tutorial Part 3: a feature map after convolution (signed) and after ReLU (non-negative)."""
    b, a = _np(before), _np(after)
    fig = _figure(12, 5)
    ax1, ax2 = fig.subplots(1, 2)
    lim = max(1e-12, float(np.abs(b).max()) if b.size else 1.0)
    im1 = ax1.imshow(b, cmap="RdBu", vmin=-lim, vmax=lim)
    ax1.set_title("After Convolution\n(can be negative)", **_SUB)
    ax1.axis("off")
    fig.colorbar(im1, ax=ax1, shrink=0.8)
    im2 = ax2.imshow(a, cmap="hot")
    ax2.set_title("After ReLU\n(only positive)", **_SUB)
    ax2.axis("off")
    fig.colorbar(im2, ax=ax2, shrink=0.8)
    return fig


def pooling(before: Any, after: Any, pool_size: int = 2) -> Figure:
    """Tutorial Part 3: a feature map with its pooling windows outlined, and the pooled map."""
    b, a = _np(before), _np(after)
    fig = _figure(12, 5)
    ax1, ax2 = fig.subplots(1, 2)
    vmax = max(1e-12, float(b.max())) if b.size else 1.0

    def values(ax: Any, m: np.ndarray) -> None:
        if m.size > 144:
            return
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=10,
                    color="black" if m[i, j] > 0.6 * vmax else "white",
                )

    ax1.imshow(b, cmap="hot", vmin=0, vmax=vmax)
    values(ax1, b)
    for k in range(0, b.shape[0] + 1, pool_size):
        ax1.axhline(k - 0.5, color="deepskyblue", linewidth=2.5)
    for k in range(0, b.shape[1] + 1, pool_size):
        ax1.axvline(k - 0.5, color="deepskyblue", linewidth=2.5)
    ax1.set_title(
        f"Before Pooling\n{b.shape[0]}×{b.shape[1]} (blue: {pool_size}×{pool_size} windows)", **_SUB
    )
    _image_axes(ax1)
    ax2.imshow(a, cmap="hot", vmin=0, vmax=vmax)
    values(ax2, a)
    ax2.set_title(f"After Max Pooling ({pool_size}×{pool_size})\n{a.shape[0]}×{a.shape[1]}", **_SUB)
    _image_axes(ax2)
    return fig


def flattening(feature_map: Any, vector: Any) -> Figure:
    """Tutorial Part 3: a 2-D feature map and the 1-D vector ``flatten`` makes of it."""
    m, v = _np(feature_map), _np(vector).reshape(-1)
    fig = _figure(14, 5)
    ax1, ax2 = fig.subplots(1, 2)
    im = ax1.imshow(m, cmap="hot")
    ax1.set_title(f"2D Feature Map {m.shape}", **_TITLE)
    ax1.axis("off")
    fig.colorbar(im, ax=ax1)
    ax2.barh(range(v.size), v, color="orange", edgecolor="black")
    ax2.set_xlabel("Feature Value", fontsize=12)
    ax2.set_ylabel("Feature Index", fontsize=12)
    ax2.set_title(f"1D Feature Vector (Flattened) ({v.size},)", **_TITLE)
    ax2.invert_yaxis()
    ax2.grid(True, alpha=0.3, axis="x")
    return fig


# ----------------------------------------------------------------------------- Part 4: optimization


def brute_force(losses: Any, best_loss: float | None = None) -> Figure:
    """Tutorial Part 4: the loss of every random attempt, the best one as a dashed line."""
    lo = _np(losses).reshape(-1)
    best = float(lo.min()) if best_loss is None else float(best_loss)
    fig = _figure(12, 5)
    ax = fig.add_subplot()
    ax.plot(lo, alpha=0.5, linewidth=0.8, label="Loss of each random guess")
    ax.plot(np.minimum.accumulate(lo), color="black", linewidth=1.5, label="Best so far")
    ax.axhline(best, color="r", linestyle="--", label=f"Best: {best:.4f}")
    ax.set_xlabel("Attempt", fontsize=12)
    ax.set_ylabel("Loss", fontsize=12)
    ax.set_title(f"Brute Force Search (Random Guessing), {lo.size} attempts", **_TITLE)
    ax.legend(loc="upper right", framealpha=0.9)
    ax.grid(True, alpha=0.3)
    return fig


def gradient_descent(
    brute_force_losses: Any,
    gd_losses: Any,
    weight_path: Any,
    loss_surface: tuple[Any, Any, Any] | None = None,
) -> Figure:
    """Tutorial Part 4: convergence of gradient descent vs brute force, and the weight-space path.

    Parameters
    ----------
    brute_force_losses : (n,) array_like
        Losses of the random attempts; the first ``len(gd_losses)`` are drawn.
    gd_losses : (n_iter,) array_like
        ``loss_history`` of ``gradient_descent``.
    weight_path : (n_iter + 1, 2) array_like
        ``weight_history``.
    loss_surface : (W1, W2, L), optional
        Meshgrid of weights and the loss there, drawn as contour lines under the path.
    """
    bf, gd, path = _np(brute_force_losses).reshape(-1), _np(gd_losses).reshape(-1), _np(weight_path)
    if path.ndim != 2 or path.shape[1] != 2:
        raise ValueError(f"gradient_descent: weight_path must be (n, 2), got {path.shape}")
    fig = _figure(15, 5.5)
    ax1, ax2 = fig.subplots(1, 2)
    n = gd.size
    ax1.plot(bf[:n], "gray", alpha=0.5, label=f"Brute force ({min(n, bf.size)} attempts)")
    ax1.plot(np.minimum.accumulate(bf[:n]), "k--", alpha=0.6, label="Brute force, best so far")
    ax1.plot(gd, "green", linewidth=2, label="Gradient descent")
    ax1.set_xlabel("Iteration/Attempt", fontsize=12)
    ax1.set_ylabel("Loss", fontsize=12)
    ax1.set_title("Convergence Speed Comparison", **_TITLE)
    ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(True, alpha=0.3)
    if loss_surface is not None:
        w1, w2, surf = (_np(v) for v in loss_surface)
        cs = ax2.contour(w1, w2, surf, levels=15, cmap="viridis", alpha=0.6)
        ax2.clabel(cs, fontsize=7)
    ax2.plot(
        path[:, 0],
        path[:, 1],
        "g-",
        linewidth=2,
        marker="o",
        markersize=3,
        label="Gradient descent path",
    )
    ax2.scatter(
        path[0, 0],
        path[0, 1],
        c="red",
        s=200,
        marker="*",
        label="Start",
        zorder=5,
        edgecolors="black",
    )
    ax2.scatter(
        path[-1, 0],
        path[-1, 1],
        c="green",
        s=200,
        marker="*",
        label="End",
        zorder=5,
        edgecolors="black",
    )
    ax2.set_xlabel("Weight 1", fontsize=12)
    ax2.set_ylabel("Weight 2", fontsize=12)
    ax2.set_title("Path Through Weight Space", **_TITLE)
    ax2.legend()
    ax2.grid(True, alpha=0.3)
    return fig


def _lr_verdict(lr: float, losses: np.ndarray) -> tuple[str, str]:
    # Judged from the curve itself, not from the tutorial's hard-coded labels.
    if losses.size < 2 or not np.all(np.isfinite(losses)):
        return "UNSTABLE!", "red"
    if np.any(np.diff(losses) > 1e-12):
        return "UNSTABLE (loss goes up)", "red"
    drop = (losses[0] - losses[-1]) / max(losses[0], 1e-300)
    if drop < 0.05:
        return "TOO SLOW", "yellow"
    return "GOOD!", "lightgreen"


def learning_rates(results: Mapping[float, Any]) -> Figure:
    """Tutorial Part 4: one loss curve per learning rate, each labelled slow / good / unstable.

    ``results`` maps the learning rate to its loss history. The label is judged from the curve:
    "unstable" if the loss ever rises, "too slow" if it fell by less than 5 %, else "good".
    """
    items = list(results.items())
    cols = 2 if len(items) > 1 else 1
    rows = (len(items) + cols - 1) // cols
    fig = _figure(7.5 * cols, 4.5 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax in axes[len(items) :]:
        ax.axis("off")
    for ax, (lr, losses) in zip(axes, items):
        lo = _np(losses).reshape(-1)
        ax.plot(lo, linewidth=2)
        ax.set_xlabel("Iteration", fontsize=11)
        ax.set_ylabel("Loss", fontsize=11)
        ax.set_title(f"Learning Rate α = {lr}", fontsize=13, weight="bold")
        ax.grid(True, alpha=0.3)
        if lo.size and np.all(np.isfinite(lo)):
            ax.set_ylim(0, float(lo[:10].max()) * 1.1)
        verdict, color = _lr_verdict(float(lr), lo)
        ax.text(
            0.5,
            0.5,
            verdict,
            transform=ax.transAxes,
            ha="center",
            fontsize=12,
            bbox={"boxstyle": "round", "facecolor": color, "alpha": 0.7},
        )
    return fig


# ----------------------------------------------------------------------------- Part 5: training


def training_loss(loss_history: Any, ylabel: str = "Loss (MSE)") -> Figure:
    """Tutorial Part 5: the training loss per epoch, log scale."""
    lo = _np(loss_history).reshape(-1)
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    ax.plot(lo, linewidth=2, color="blue")
    ax.set_xlabel("Epoch", fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.set_title("Training Loss Over Time", **_TITLE)
    ax.grid(True, alpha=0.3)
    if lo.size and np.all(lo > 0):
        ax.set_yscale("log")
    return fig


def decision_boundary(
    predict: Callable[[np.ndarray], Any],
    X: Any,
    y: Any,
    xlim: tuple[float, float] = (-0.2, 1.2),
    ylim: tuple[float, float] = (-0.2, 1.2),
    resolution: int = 100,
    loss_history: Any = None,
) -> Figure:
    """Tutorial Part 5: the network's output over the input plane (filled contours) and the data.

    Parameters
    ----------
    predict : callable
        Maps an ``(n, 2)`` float64 array of points to ``n`` outputs (e.g. ``model.forward``; an
        ``(n, 1)`` result is accepted).
    X : (m, 2) array_like
        The data points; ``y`` (m,) or (m, 1) their 0/1 labels.
    loss_history : array_like, optional
        When given, the loss curve is drawn on the left as in the tutorial.
    """
    X, y = _np(X), _np(y).reshape(-1)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] != y.size:
        raise ValueError(
            f"decision_boundary: X must be (m, 2) with m labels, got {X.shape}, {y.shape}"
        )
    xx, yy = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    grid = np.c_[xx.ravel(), yy.ravel()]
    Z = _np(predict(grid)).reshape(xx.shape)
    if loss_history is not None:
        fig = _figure(15, 5.5)
        ax1, ax2 = fig.subplots(1, 2)
        lo = _np(loss_history).reshape(-1)
        ax1.plot(lo, linewidth=2, color="blue")
        ax1.set_xlabel("Epoch", fontsize=12)
        ax1.set_ylabel("Loss (MSE)", fontsize=12)
        ax1.set_title("Training Loss Over Time", **_TITLE)
        ax1.grid(True, alpha=0.3)
        if lo.size and np.all(lo > 0):
            ax1.set_yscale("log")
    else:
        fig = _figure(8, 6)
        ax2 = fig.add_subplot()
    contour = ax2.contourf(xx, yy, Z, levels=20, cmap="RdYlGn", alpha=0.6)
    ax2.contour(xx, yy, Z, levels=[0.5], colors="black", linewidths=2)
    fig.colorbar(contour, ax=ax2, label="Prediction")
    for (x0, x1), t in zip(X, y):
        one = t > 0.5
        ax2.scatter(
            x0,
            x1,
            c="green" if one else "red",
            s=250,
            marker="o" if one else "X",
            edgecolors="black",
            linewidths=1.5,
            zorder=5,
        )
    ax2.set_xlabel("Input 1", fontsize=12)
    ax2.set_ylabel("Input 2", fontsize=12)
    ax2.set_title("Learned Decision Boundary (black: output 0.5)", **_TITLE)
    ax2.set_xlim(*xlim)
    ax2.set_ylim(*ylim)
    ax2.grid(True, alpha=0.3)
    return fig


def network_internals(x: Any, hidden: Any, w1: Any, output: Any) -> Figure:
    """Tutorial Part 5, ``visualize_network_internals``: input, hidden activations, W1, output.

    Parameters
    ----------
    x : (n_in,) array_like
        One input sample.
    hidden : (n_hidden,) array_like
        The hidden layer after ReLU for that sample (``model.a1[0]``).
    w1 : (n_in, n_hidden) array_like
        First-layer weights.
    output : float or (1,) array_like
        The network's output probability.
    """
    x, h, w, out = (
        _np(x).reshape(-1),
        _np(hidden).reshape(-1),
        _np(w1),
        float(_np(output).ravel()[0]),
    )
    fig = _figure(15, 10)
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    ax.bar(
        [f"Input {i + 1}" for i in range(x.size)],
        x,
        color=["skyblue", "lightcoral"][: x.size] if x.size <= 2 else "skyblue",
        edgecolor="black",
    )
    ax.set_ylabel("Value", fontsize=11)
    ax.set_title("1. Input Layer", fontsize=13, weight="bold")
    ax.set_ylim(0, max(1.0, float(x.max()) * 1.1))
    ax.grid(True, alpha=0.3, axis="y")
    ax = axes[0, 1]
    ax.bar(range(h.size), h, color=["green" if v > 0 else "gray" for v in h], edgecolor="black")
    ax.set_xlabel("Neuron", fontsize=11)
    ax.set_ylabel("Activation", fontsize=11)
    ax.set_title("2. Hidden Layer (after ReLU; gray = off)", fontsize=13, weight="bold")
    ax.set_xticks(range(h.size))
    ax.grid(True, alpha=0.3, axis="y")
    if h.size and not np.any(h > 0):
        ax.set_ylim(0, 1)
        ax.text(
            (h.size - 1) / 2,
            0.5,
            f"all {h.size} hidden neurons are off (ReLU = 0):\n"
            "the output comes from the bias b2 alone",
            ha="center",
            va="center",
            fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "lightyellow"},
        )
    ax = axes[1, 0]
    lim = max(1e-12, float(np.abs(w).max()))
    im = ax.imshow(w, cmap="RdBu", aspect="auto", vmin=-lim, vmax=lim)
    ax.set_xlabel("Hidden Neuron", fontsize=11)
    ax.set_ylabel("Input", fontsize=11)
    ax.set_xticks(range(w.shape[1]))
    ax.set_yticks(range(w.shape[0]))
    ax.set_title("3. Layer 1 Weights", fontsize=13, weight="bold")
    fig.colorbar(im, ax=ax)
    if w.size <= 64:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{w[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=10,
                    color="white" if abs(w[i, j]) > 0.6 * lim else "black",
                )
    ax = axes[1, 1]
    ax.bar(["Output"], [out], width=0.4, color="orange", edgecolor="black")
    ax.axhline(0.5, color="red", linestyle="--", linewidth=2, label="Decision threshold")
    ax.set_ylabel("Probability", fontsize=11)
    ax.set_title("4. Output Layer (after Sigmoid)", fontsize=13, weight="bold")
    ax.set_ylim(0, 1.15)
    ax.legend()
    ax.grid(True, alpha=0.3, axis="y")
    ax.text(
        0,
        min(out + 0.03, 1.02),
        f"{out:.3f}\nClass {int(out > 0.5)}",
        ha="center",
        fontsize=12,
        weight="bold",
    )
    return fig


# ----------------------------------------------------------------------------- CNNs on real digits


def _mosaic(tiles: np.ndarray, cols: int, pad: int = 1) -> np.ndarray:
    """Tiles ``(n, h, w)`` laid out ``cols`` per row, separated by NaN (drawn blank)."""
    n, h, w = tiles.shape
    rows = max(1, (n + cols - 1) // cols)
    m = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), np.nan)
    for k in range(n):
        r, c = divmod(k, cols)
        m[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tiles[k]
    return m


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="white")


# NOTE: grids of many images are drawn as one mosaic image per axes rather than one axes per
# image: a 64-axes figure takes seconds to lay out and render, a mosaic a few milliseconds.


def filters(weights: Any, title: str = "Learned filters", max_in: int = 4) -> Figure:
    """The learned kernels of a convolution layer, all on one symmetric blue-red scale.

    ``weights`` is ``(out_channels, in_channels, kh, kw)`` (OIHW); a ``(kh, kw)`` or
    ``(out, kh, kw)`` array is accepted. A single-input layer's filters are shown 8 to a row;
    otherwise column ``j`` holds output channel ``j``'s kernels for the first ``max_in`` input
    channels, one row each. The mosaic drawn is ``fig.axes[0].images[0]``.
    """
    w = _np(weights)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4:
        raise ValueError(f"filters: weights must be (O, C, kh, kw), got shape {w.shape}")
    o, c, kh, kw = w.shape
    cin = min(c, max_in)
    if c > 1:  # one row per input channel, one column per output channel
        tiles = w[:, :cin].transpose(1, 0, 2, 3).reshape(cin * o, kh, kw)
        cols = o
    else:
        tiles = w[:, 0]
        cols = min(8, o)
    m = _mosaic(tiles, cols)
    lim = max(1e-12, float(np.abs(w).max()))
    scale = min(0.5, 10.0 / m.shape[1], 8.0 / m.shape[0])  # inches per kernel pixel
    fig = _figure(1.8 + scale * m.shape[1], max(2.6, 1.2 + scale * m.shape[0]))
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap=_cmap("RdBu_r"), vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    if c > 1:
        ax.set_xticks([(j * (kw + 1) + (kw - 1) / 2) for j in range(o)], [str(j) for j in range(o)])
        ax.set_yticks(
            [(i * (kh + 1) + (kh - 1) / 2) for i in range(cin)], [f"in {i}" for i in range(cin)]
        )
        ax.set_xlabel("output channel")
        ax.tick_params(length=0, labelsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        ax.axis("off")
    more = f" (first {cin} of {c} input channels)" if c > cin else ""
    ax.set_title(f"{title}: {o}×{c}×{kh}×{kw}{more}", **_SUB)
    return fig


def _normalise(a: np.ndarray) -> np.ndarray:
    # Each channel on its own 0..1 scale: channels of one layer differ widely in magnitude.
    lo = a.min(axis=(-2, -1), keepdims=True)
    span = a.max(axis=(-2, -1), keepdims=True) - lo
    return (a - lo) / np.where(span > 0, span, 1.0)


def feature_maps(
    image: Any,
    layers: Sequence[tuple[str, Any]],
    max_channels: int = 8,
    title: str = "Feature maps of one digit, layer by layer",
) -> Figure:
    """What a CNN sees: the input digit, then each layer's output channels as images.

    Parameters
    ----------
    image : (H, W) or (1, H, W) array_like
        The input digit.
    layers : list of (name, (C, H, W) array_like)
        Each layer's output for that digit: one panel per layer showing its first
        ``max_channels`` channels, each channel scaled to its own range (bright = strong).
    """
    img = _np(image)
    img = img.reshape(img.shape[-2:])
    maps = []
    for name, m in layers:
        a = _np(m)
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ValueError(
                f"feature_maps: layer {name!r} output must be (C, H, W), got {a.shape}"
            )
        maps.append((str(name), a))
    fig = _figure(11, 1.6 * (1 + len(maps)) + 0.6)
    axes = np.atleast_1d(fig.subplots(1 + len(maps), 1)).reshape(-1)
    axes[0].imshow(img, cmap="gray_r")
    axes[0].set_title(f"input {img.shape[0]}×{img.shape[1]}", fontsize=10)
    axes[0].axis("off")
    for ax, (name, a) in zip(axes[1:], maps):
        k = min(max_channels, a.shape[0])
        ax.imshow(_mosaic(_normalise(a[:k]), k), cmap=_cmap("viridis"), vmin=0, vmax=1)
        more = f", first {k} of {a.shape[0]} channels" if a.shape[0] > k else f", {k} channels"
        ax.set_title(f"{name}: {a.shape[0]}×{a.shape[1]}×{a.shape[2]}{more}", fontsize=10)
        ax.axis("off")
    fig.suptitle(title, **_TITLE)
    return fig


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    n_classes: int | None = None,
    labels: Sequence[str] | None = None,
    title: str = "Confusion matrix",
) -> Figure:
    """Counts of (true class, predicted class), with the count in each cell and the accuracy.

    ``y_true`` and ``y_pred`` are integer class ids; ``n_classes`` defaults to the largest id + 1.
    The matrix drawn is available as ``fig.axes[0].images[0].get_array()``.
    """
    t = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if t.size != p.size:
        raise ValueError(f"confusion_matrix: {t.size} true labels but {p.size} predictions")
    k = (
        int(n_classes)
        if n_classes is not None
        else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    )
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= k or p.max() >= k):
        raise ValueError(f"confusion_matrix: labels must be in [0, {k})")
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    fig = _figure(1.0 + 0.65 * k, 0.6 + 0.6 * k)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8, label="count")
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if cm[i, j] > thresh else "black",
                )
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted class", fontsize=12)
    ax.set_ylabel("True class", fontsize=12)
    acc = float(np.trace(cm)) / max(1, t.size)
    ax.set_title(f"{title}: accuracy {acc:.1%} on {t.size} images", **_SUB)
    return fig


def _history_dict(history: Any) -> dict[str, list[float]]:
    h = getattr(history, "history", history)
    if not isinstance(h, Mapping):
        raise TypeError(
            f"training_curves: expected a History or a dict of lists, got {type(history).__name__}"
        )
    return {str(k): list(np.asarray(v, dtype=np.float64).reshape(-1)) for k, v in h.items()}


def training_curves(history: Any, title: str = "Training curves") -> Figure:
    """Loss and accuracy per epoch, training and validation (``Sequential.fit``'s History).

    ``history`` is a ``History`` (its ``.history`` dict) or a dict with keys among ``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``.
    """
    h = _history_dict(history)
    metrics = [m for m in ("loss", "accuracy") if m in h or f"val_{m}" in h]
    if not metrics:
        raise ValueError(f"training_curves: no loss/accuracy in history keys {sorted(h)}")
    fig = _figure(6.5 * len(metrics), 4.5)
    axes = np.atleast_1d(fig.subplots(1, len(metrics))).reshape(-1)
    for ax, m in zip(axes, metrics):
        for key, style, label in ((m, "o-", "training"), (f"val_{m}", "s--", "validation")):
            if key in h:
                v = np.asarray(h[key])
                if m == "accuracy" and v.size and v.max() <= 1.0:
                    v = 100 * v
                ax.plot(np.arange(1, v.size + 1), v, style, linewidth=2, label=label)
        ax.set_xlabel("Epoch", fontsize=12)
        ax.set_ylabel("Accuracy (%)" if m == "accuracy" else "Loss", fontsize=12)
        ax.set_title(m.capitalize(), **_SUB)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title, **_TITLE)
    return fig


def predictions(
    images: Any, y_true: Any, y_pred: Any, n: int = 24, title: str = "Test digits"
) -> Figure:
    """A grid of test images, each labelled "predicted (true)", mistakes in red."""
    imgs = _np(images)
    imgs = imgs.reshape(imgs.shape[0], *imgs.shape[-2:])
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    n = min(n, imgs.shape[0])
    cols = min(8, max(1, n))
    h, w = imgs.shape[1:]
    pad = max(1, h // 3)  # room for the label above each tile
    m = _mosaic(imgs[:n], cols, pad)
    m = np.vstack([np.full((pad, m.shape[1]), np.nan), m])
    rows = (n + cols - 1) // cols
    fig = _figure(1.3 * cols, 1.45 * rows + 0.6)
    ax = fig.add_subplot()
    ax.imshow(m, cmap=_cmap("gray_r"))
    for i in range(n):
        r, c = divmod(i, cols)
        ok = t[i] == p[i]
        ax.text(
            c * (w + pad) + (w - 1) / 2,
            r * (h + pad) + pad - 1.5,
            f"{p[i]} ({t[i]})",
            ha="center",
            va="bottom",
            fontsize=9,
            color="black" if ok else "red",
            weight="normal" if ok else "bold",
        )
    ax.axis("off")
    wrong = int(np.sum(t[:n] != p[:n]))
    ax.set_title(f"{title}: predicted (true); {wrong} of {n} wrong, in red", **_SUB)
    return fig


# ----------------------------------------------------------------------------- benchmarks


def benchmark(results: Sequence[Mapping[str, Any]], title: str = "nnfast speed-up") -> Figure:
    """Horizontal bars of nnfast's speed-up over NumPy (and PyTorch when measured), log scale.

    ``results`` are the row dicts of :func:`nnfast.bench.run_rows` (keys ``name``,
    ``speedup_vs_numpy``, optional ``speedup_vs_torch``). A dotted line marks 1× (parity).
    """
    rows = [r for r in results if "speedup_vs_numpy" in r or "speedup_vs_torch" in r]
    if not rows:
        raise ValueError("benchmark: no rows with speed-ups to plot")
    names = [str(r["name"]) for r in rows]
    y = np.arange(len(rows))
    has_torch = any("speedup_vs_torch" in r for r in rows)
    h = 0.4 if has_torch else 0.7
    fig = _figure(10, 1.0 + 0.45 * len(rows) * (1.6 if has_torch else 1))
    ax = fig.add_subplot()
    np_vals = [float(r.get("speedup_vs_numpy", np.nan)) for r in rows]
    ax.barh(y - (h / 2 if has_torch else 0), np_vals, height=h, color="tab:blue", label="vs NumPy")
    if has_torch:
        t_vals = [float(r.get("speedup_vs_torch", np.nan)) for r in rows]
        ax.barh(y + h / 2, t_vals, height=h, color="tab:orange", label="vs PyTorch")
    ax.axvline(1.0, color="black", linestyle=":", linewidth=1.5)
    ax.set_xscale("log")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up (× faster than the other; > 1 means nnfast wins)", fontsize=11)
    ax.set_title(title, **_SUB)
    ax.grid(True, alpha=0.3, axis="x")
    ax.legend()
    return fig
