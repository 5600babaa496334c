"""nnfast.plot: every figure renders headless (Agg) and draws what it claims."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from nnfast import plot  # noqa: E402
from nnfast import reference as ref  # noqa: E402


def _render(fig: Figure) -> Figure:
    """Renders the figure to PNG bytes (Agg, no display needed)."""
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return fig


def _axes(fig: Figure) -> list:
    """The figure's axes without its colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _texts(fig: Figure) -> list[str]:
    out = [t.get_text() for ax in fig.axes for t in ax.texts]
    out += [ax.get_title() for ax in fig.axes]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return out


def test_plot_does_not_touch_pyplot_and_saves_png(tmp_path):
    # Headless-safe: no pyplot import (no GUI backend, no global figure list), PNG via Agg.
    code = (
        "import sys, numpy as np\n"
        "from nnfast import plot\n"
        "fig = plot.training_loss(np.linspace(1, 0.1, 10))\n"
        f"fig.savefig({str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_neuron_draws_one_synapse_per_weight():
    fig = _render(plot.neuron([-0.5, 1.2], 0.3, ["Price", "Performance"]))
    texts = _texts(fig)
    assert "w=-0.50" in texts and "w=1.20" in texts
    assert any("b=0.30" in t for t in texts)
    arrows = [c for c in fig.axes[0].texts if getattr(c, "arrow_patch", None) is not None]
    assert len(arrows) == 3  # two synapses and the output arrow
    colors = {tuple(np.round(a.arrow_patch.get_edgecolor()[:3], 2)) for a in arrows[:2]}
    assert colors == {(1.0, 0.0, 0.0), (0.0, 0.5, 0.0)}  # red negative, green positive
    with pytest.raises(ValueError, match="neuron: 2 weights but 1 input names"):
        plot.neuron([1, 2], 0.0, ["a"])


@pytest.mark.parametrize(
    ("name", "lo", "hi", "zones"),
    [("sigmoid", -6, 6, 2), ("tanh", -6, 6, 2), ("relu", -3, 3, 1)],
)
def test_activation_curve_derivative_and_vanishing_zones(name, lo, hi, zones):
    z = np.linspace(lo, hi, 121)
    a = getattr(ref, name)(z)
    da = getattr(ref, f"{name}_derivative")(z)
    fig = _render(plot.activation(name, z, a, da))
    ax1, ax2 = fig.axes
    np.testing.assert_array_equal(ax1.lines[0].get_ydata(), a)
    np.testing.assert_array_equal(ax2.lines[0].get_ydata(), da)
    marks = [t for t in ax2.texts if t.get_text() in ("vanishing\ngradient", "dead zone")]
    assert len(marks) == zones
    for t in marks:
        # Each mark sits where the derivative really is below the threshold.
        x = t.get_position()[0]
        assert np.interp(x, z, da) < 0.02
    none = plot.activation(name, z, a, da, vanishing_below=None)
    assert not none.axes[1].texts


def test_activation_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="activation: z, a, da must be 1-D of one shape"):
        plot.activation("sigmoid", np.zeros(3), np.zeros(4), np.zeros(3))


def test_softmax_bars_are_the_probabilities():
    s = np.array([2.1, 0.5, 1.3])
    p = ref.softmax(s)
    fig = _render(plot.softmax(["Laptop", "Tablet", "Phone"], s, p))
    ax1, ax2 = fig.axes
    np.testing.assert_allclose([r.get_height() for r in ax1.patches], s)
    np.testing.assert_allclose([r.get_height() for r in ax2.patches], p)
    assert "sum 1.000" in ax2.get_title()
    with pytest.raises(ValueError, match="softmax: 2 labels, 3 scores"):
        plot.softmax(["a", "b"], s, p)


def _edge_example():
    image = np.zeros((8, 8))
    image[:, 4:] = 255
    kv = np.array([[-1.0, 0, 1]] * 3)
    kernels = {"Vertical edge": kv, "Horizontal edge": kv.T}
    responses = {k: ref.conv2d(image, v) for k, v in kernels.items()}
    return image, kernels, responses


def test_convolution_shows_image_kernels_and_responses():
    image, kernels, responses = _edge_example()
    fig = _render(plot.convolution(image, kernels, responses))
    arrays = [im.get_array() for ax in fig.axes for im in ax.images]
    np.testing.assert_array_equal(arrays[0], image)
    for k in kernels:
        assert any(a.shape == kernels[k].shape and np.array_equal(a, kernels[k]) for a in arrays)
        assert any(a.shape == (6, 6) and np.array_equal(a, responses[k]) for a in arrays)
    texts = _texts(fig)
    assert any("765.0" in t for t in texts) and any("= 0.0" in t for t in texts)
    # Both responses share one colour scale, so "nothing detected" is dark, not mid-colour.
    clims = {im.get_clim() for ax in fig.axes for im in ax.images if im.get_array().shape == (6, 6)}
    assert clims == {(0.0, 765.0)}
    with pytest.raises(ValueError, match="same names"):
        plot.convolution(image, kernels, {"x": responses["Vertical edge"]})


def test_relu_pooling_flattening():
    _, _, responses = _edge_example()
    v = responses["Vertical edge"] - 300.0  # some negatives
    r = ref.relu(v)
    fig = _render(plot.relu_feature_map(v, r))
    ax1, ax2 = _axes(fig)
    np.testing.assert_array_equal(ax1.images[0].get_array(), v)
    np.testing.assert_array_equal(ax2.images[0].get_array(), r)
    pooled = ref.max_pool2d(r, 2)
    fig = _render(plot.pooling(r, pooled))
    ax1, ax2 = fig.axes
    assert ax1.images[0].get_array().shape == (6, 6)
    assert ax2.images[0].get_array().shape == (3, 3)
    assert "6×6" in ax1.get_title() and "3×3" in ax2.get_title()
    assert len(ax1.lines) == 4 + 4  # the 2x2 window grid: 4 horizontal and 4 vertical lines
    fig = _render(plot.flattening(pooled, pooled.reshape(-1)))
    bars = _axes(fig)[1].patches
    assert len(bars) == 9
    np.testing.assert_array_equal([b.get_width() for b in bars], pooled.reshape(-1))


def test_brute_force_and_gradient_descent():
    rng = np.random.default_rng(0)
    losses = rng.random(500) * 0.3 + 0.05
    fig = _render(plot.brute_force(losses))
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), losses)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), np.minimum.accumulate(losses))
    assert f"{losses.min():.4f}" in ax.get_legend_handles_labels()[1][-1]

    gd = np.geomspace(0.3, 0.01, 100)
    path = np.cumsum(rng.normal(size=(101, 2)) * 0.05, axis=0)
    w1, w2 = np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-1, 1, 20))
    fig = _render(plot.gradient_descent(losses, gd, path, loss_surface=(w1, w2, w1**2 + w2**2)))
    ax1, ax2 = _axes(fig)
    np.testing.assert_array_equal(ax1.lines[-1].get_ydata(), gd)
    assert len(ax1.lines[0].get_ydata()) == 100  # brute force cut to the same length
    path_line = ax2.lines[0]
    np.testing.assert_array_equal(path_line.get_xydata(), path)
    assert any(isinstance(c, ContourSet) for c in ax2.collections)
    with pytest.raises(ValueError, match=r"weight_path must be \(n, 2\)"):
        plot.gradient_descent(losses, gd, np.zeros((5, 3)))


def test_learning_rates_are_judged_from_the_curves():
    fig = _render(
        plot.learning_rates(
            {
                0.01: np.linspace(0.30, 0.295, 50),  # barely moves
                0.5: np.geomspace(0.3, 0.05, 50),  # steady descent
                2.0: np.array([0.3, 0.1, 0.25, 0.05, 0.2]),  # oscillates
            }
        )
    )
    verdicts = [ax.texts[0].get_text() for ax in fig.axes if ax.texts]
    assert verdicts == ["TOO SLOW", "GOOD!", "UNSTABLE (loss goes up)"]
    titles = [ax.get_title() for ax in fig.axes if ax.lines]
    assert titles == ["Learning Rate α = 0.01", "Learning Rate α = 0.5", "Learning Rate α = 2.0"]


def test_training_loss_log_scale():
    fig = _render(plot.training_loss(np.geomspace(1, 1e-3, 50)))
    assert fig.axes[0].get_yscale() == "log"
    assert len(fig.axes[0].lines[0].get_ydata()) == 50


def test_decision_boundary_has_a_contour_set_of_the_predictions():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([[0], [1], [1], [0]])
    seen = []

    def predict(points):
        seen.append(points.shape)
        return (np.abs(points[:, 0] - points[:, 1]) > 0.5).astype(float)[:, None]

    fig = _render(plot.decision_boundary(predict, X, y, resolution=50, loss_history=[1, 0.5]))
    assert seen == [(2500, 2)]
    ax = _axes(fig)[1]
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 2  # filled levels and the 0.5 line
    assert contours[0].filled and not contours[1].filled
    assert list(contours[1].levels) == [0.5]
    scatter = [c for c in ax.collections if not isinstance(c, ContourSet)]
    assert len(scatter) == 4
    with pytest.raises(ValueError, match=r"X must be \(m, 2\)"):
        plot.decision_boundary(predict, np.zeros((4, 3)), y)


def test_network_internals():
    w1 = np.arange(8.0).reshape(2, 4) / 8 - 0.4
    fig = _render(plot.network_internals([0.2, 0.8], [0.0, 0.5, 1.2, 0.0], w1, [[0.83]]))
    titles = [ax.get_title() for ax in _axes(fig)]
    assert titles == [
        "1. Input Layer",
        "2. Hidden Layer (after ReLU; gray = off)",
        "3. Layer 1 Weights",
        "4. Output Layer (after Sigmoid)",
    ]
    hidden = _axes(fig)[1].patches
    assert [b.get_facecolor()[:3] for b in hidden][0] == pytest.approx((0.5, 0.5, 0.5), abs=0.01)
    np.testing.assert_array_equal(_axes(fig)[2].images[0].get_array(), w1)
    assert any("0.830" in t for t in _texts(fig))
    assert not any("hidden neurons are off" in t for t in _texts(fig))
    off = _render(plot.network_internals([0.2, 0.8], np.zeros(4), w1, 0.99))
    assert any("all 4 hidden neurons are off" in t for t in _texts(off))


def test_filters_mosaic_holds_every_kernel():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 1, 3, 3))
    m = np.asarray(_render(plot.filters(w)).axes[0].images[0].get_array().filled(np.nan))
    assert m.shape == (3, 8 * 4 - 1)
    for o in range(8):
        np.testing.assert_array_equal(m[:, o * 4 : o * 4 + 3], w[o, 0])
    w2 = rng.normal(size=(16, 8, 3, 3))
    fig = _render(plot.filters(w2))
    m = np.asarray(fig.axes[0].images[0].get_array().filled(np.nan))
    assert m.shape == (4 * 4 - 1, 16 * 4 - 1)  # 4 of 8 input channels (rows) x 16 outputs
    np.testing.assert_array_equal(m[4:7, 20:23], w2[5, 1])
    assert "first 4 of 8 input channels" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match=r"filters: weights must be \(O, C, kh, kw\)"):
        plot.filters(np.zeros(3))


def test_feature_maps_one_panel_per_layer():
    rng = np.random.default_rng(2)
    layers = [("conv1", rng.random((8, 8, 8))), ("pool1", rng.random((8, 4, 4)))]
    layers.append(("conv2", rng.random((16, 4, 4))))
    fig = _render(plot.feature_maps(rng.random((1, 8, 8)), layers))
    assert len(fig.axes) == 4
    assert fig.axes[0].images[0].get_array().shape == (8, 8)
    assert fig.axes[3].images[0].get_array().shape == (4, 8 * 5 - 1)  # first 8 of 16 channels
    assert "first 8 of 16" in fig.axes[3].get_title()
    with pytest.raises(ValueError, match="layer 'bad' output must be"):
        plot.feature_maps(np.zeros((8, 8)), [("bad", np.zeros(5))])


def test_confusion_matrix_is_10x10_counts():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.8, t, rng.integers(0, 10, 500))
    fig = _render(plot.confusion_matrix(t, p, n_classes=10))
    cm = np.asarray(fig.axes[0].images[0].get_array())
    assert cm.shape == (10, 10)
    assert cm.sum() == 500
    for i in range(10):
        assert cm[i, i] == np.sum((t == i) & (p == i))
        assert cm[i].sum() == np.sum(t == i)
    assert f"{np.mean(t == p):.1%}" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        plot.confusion_matrix([10], [0], n_classes=10)
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        plot.confusion_matrix([1, 2, 3], [1, 2])


def test_training_curves_training_and_validation():
    class History:
        history = {
            "loss": [1.0, 0.5, 0.3],
            "accuracy": [0.5, 0.8, 0.9],
            "val_loss": [0.9, 0.6, 0.4],
            "val_accuracy": [0.55, 0.75, 0.85],
        }

    fig = _render(plot.training_curves(History()))
    loss_ax, acc_ax = fig.axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["training", "validation"]
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [55, 75, 85])
    fig = _render(plot.training_curves({"loss": [1.0, 0.5]}))
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no loss/accuracy"):
        plot.training_curves({"lr": [1.0]})
    with pytest.raises(TypeError, match="expected a History or a dict"):
        plot.training_curves([1, 2])


def test_predictions_marks_mistakes_in_red():
    rng = np.random.default_rng(4)
    t = np.array([1, 2, 3, 4, 5])
    p = np.array([1, 2, 0, 4, 0])
    fig = _render(plot.predictions(rng.random((5, 1, 8, 8)), t, p))
    red = [x.get_text() for x in fig.axes[0].texts if x.get_color() == "red"]
    assert red == ["0 (3)", "0 (5)"]


def test_benchmark_bars():
    rows = [
        {"name": "relu", "speedup_vs_numpy": 2.0, "speedup_vs_torch": 0.8},
        {"name": "dense", "speedup_vs_numpy": 1.5},
        {"name": "nothing"},
    ]
    fig = _render(plot.benchmark(rows))
    ax = fig.axes[0]
    widths = [b.get_width() for b in ax.patches]
    assert widths[:2] == [2.0, 1.5] and widths[2] == 0.8
    assert [t.get_text() for t in ax.get_yticklabels()] == ["relu", "dense"]
    with pytest.raises(ValueError, match="no rows with speed-ups"):
        plot.benchmark([{"name": "x"}])
