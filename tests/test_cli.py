"""The ``nnfast`` command line: the demo end to end, train, bench --plot, argument errors."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import nnfast as nf
import numpy as np
import pytest
from nnfast.cli import main

MNIST = Path(os.environ.get("NNFAST_MNIST_DIR", "/work/shared/data/mnist"))
HAS_CNN = hasattr(nf, "conv2d") and hasattr(nf, "max_pool2d")


def test_every_kernel_the_demo_uses_is_built():
    # NOTE: the demo degrades to "[unavailable]" when a kernel is missing, and the assertions
    # below follow it; this makes a missing kernel a failure rather than a quieter demo.
    for name in ("sigmoid", "tanh", "softmax", "relu_derivative", "conv2d", "max_pool2d"):
        assert hasattr(nf, name), name


PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- demo
@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One ``nnfast demo --quick`` run with figures, shared by the tests below."""
    pytest.importorskip("matplotlib")
    out_dir = tmp_path_factory.mktemp("demo") / "figs"
    state = np.random.get_state()  # noqa: NPY002  (the global RNG is what is checked)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--quick", "--out", str(out_dir)])
    after = np.random.get_state()  # noqa: NPY002
    return code, buf.getvalue(), out_dir, (state, after)


def test_demo_quick_runs_the_tutorial_and_prints_its_results(quick_demo):
    code, out, _, _ = quick_demo
    assert code == 0
    # Part 1: the laptop neuron, with what the code computes (not the tutorial's printed block).
    assert "Weighted sum (z): 0.980" in out and "Purchase probability: 72.7%" in out
    assert "Weighted sum (z): 0.750" in out and "Weighted sum (z): 0.210" in out
    # Part 3: edge strengths and pooling.
    assert "Vertical edge strength: 765.0 (HIGH!)" in out
    assert "Horizontal edge strength: 0.0 (low)" in out
    assert "Before: (6, 6) -> After: (3, 3)" in out and "Size reduction: 75%" in out
    assert "Output shape: (9,)" in out
    # Part 4: brute force and gradient descent, each reporting its best loss.
    assert "New best! Loss =" in out and "Iteration  80: Loss =" in out
    assert "alpha = 2.0" in out
    # Part 5: XOR trained to 100 %.
    assert "Final accuracy: 100.0%" in out
    assert "XOR accuracy on all 8 points: 100%" in out
    # Scale up: digits, test accuracy and throughput.
    assert "Test accuracy:" in out and "images/s" in out
    acc = float(out.split("Test accuracy: ")[1].split("%")[0])
    assert acc > 80.0
    # Part 2 runs when the activation kernels are built, and says so plainly when not.
    for name in ("sigmoid", "tanh", "softmax"):
        if hasattr(nf, name):
            assert f"[unavailable] {name}" not in out
        else:
            assert f"[unavailable] {name}" in out
    if hasattr(nf, "sigmoid"):
        assert "Largest gradient: 0.2500 at z = 0.0" in out
    if hasattr(nf, "softmax"):
        assert "Total probability: 1.000" in out and "Prediction: Laptop" in out
    if not HAS_CNN:
        assert "the CNN is unavailable" in out


def test_demo_writes_every_figure_as_png(quick_demo):
    _, out, out_dir, _ = quick_demo
    files = sorted(out_dir.glob("*.png"))
    listed = [line.strip() for line in out.splitlines() if line.strip().endswith(".png")]
    assert [f.name for f in files] == listed
    assert f"{len(files)} figures written to {out_dir}" in out
    names = {f.name.split("_", 1)[1] for f in files}
    expected = {
        "neuron.png",
        "convolution.png",
        "relu_feature_map.png",
        "pooling.png",
        "flattening.png",
        "brute_force.png",
        "gradient_descent.png",
        "learning_rates.png",
        "xor_training.png",
        "network_internals.png",
        "confusion_matrix.png",
        "training_curves.png",
        "test_predictions.png",
    }
    expected |= {f"{n}.png" for n in ("sigmoid", "tanh", "softmax") if hasattr(nf, n)}
    if hasattr(nf, "relu_derivative"):
        expected.add("relu.png")
    if HAS_CNN:
        expected |= {"learned_filters.png", "feature_maps.png"}
    assert names == expected
    for f in files:
        assert f.read_bytes()[:8] == PNG, f


def test_demo_leaves_the_global_rng_alone(quick_demo):
    _, _, _, (before, after) = quick_demo
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]


def test_demo_no_plots_writes_nothing_and_needs_no_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = _run(capsys, "demo", "--quick", "--no-plots")
    assert code == 0, err
    assert "no figures (--no-plots)" in out and "figures written" not in out
    assert list(tmp_path.iterdir()) == []


def test_demo_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = _run(capsys, "demo")
    assert code == 1
    assert "the figures need matplotlib" in err
    assert 'pip install "nnfast[viz]"' in err and "nnfast demo --no-plots" in err
    assert out == "" and not (tmp_path / "nnfast-demo").exists()


def test_demo_out_must_be_a_folder(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = _run(capsys, "demo", "--out", str(f))
    assert code == 1
    assert f"nnfast demo: error: --out {f} exists and is not a folder" in err


# ----------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--out"], "argument --out: expected one argument"),
        (["train", "--data", "cifar"], "expected 'digits' or 'mnist:DIR', got 'cifar'"),
        (["train", "--data", "mnist:"], "expected 'digits' or 'mnist:DIR', got 'mnist:'"),
        (["train", "--epochs", "0"], "argument --epochs: expected an integer in [1, 1e9]"),
        (["train", "--epochs", "ten"], "expected a positive integer, got 'ten'"),
        (["train", "--epochs", str(2**70)], "expected an integer in [1, 1e9]"),
        (["train", "--batch-size", "-3"], "argument --batch-size: expected an integer"),
        (["train", "--lr", "0"], "argument --lr: expected a positive finite number"),
        (["train", "--lr", "nan"], "argument --lr: expected a positive finite number"),
        (["train", "--lr", "fast"], "expected a positive number, got 'fast'"),
        (["bench", "--plot"], "argument --plot: expected one argument"),
        (["bench", "--repeats", "0"], "--repeats must be >= 1"),
        (["bench", "--filter", "no such row"], "no benchmark row matches --filter 'no such row'"),
    ],
)
def test_argument_errors_print_usage_and_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert "usage: nnfast" in err
    assert message in err
    assert "Traceback" not in out + err


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = _run(capsys)
    assert code == 2
    assert "demo" in out and "train" in out and "bench" in out and "info" in out


def test_help_exits_0(capsys):
    code, out, _ = _run(capsys, "demo", "--help")
    assert code == 0
    assert "--no-plots" in out and "--quick" in out and "--out DIR" in out


def test_python_m_nnfast_exit_codes_without_traceback():
    ok = subprocess.run(
        [sys.executable, "-m", "nnfast", "info"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0 and "isa" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "nnfast", "train", "--epochs", "-1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "usage: nnfast train" in bad.stderr and "Traceback" not in bad.stderr


# ----------------------------------------------------------------------------- train
def test_train_missing_mnist_folder_is_a_clean_error(tmp_path, capsys):
    code, _, err = _run(capsys, "train", "--data", f"mnist:{tmp_path / 'nope'}")
    assert code == 1
    assert f"nnfast train: error: --data mnist:{tmp_path / 'nope'}: no such folder" in err
    code, _, err = _run(capsys, "train", "--data", f"mnist:{tmp_path}")
    assert code == 1
    assert "no training IDX files" in err


def test_train_truncated_mnist_file_names_the_file(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x00")
    code, out, err = _run(capsys, "train", "--data", f"mnist:{tmp_path}", "--epochs", "1")
    assert code == 1
    assert "nnfast train: error: load_mnist:" in err and "train-images-idx3-ubyte" in err
    assert "Traceback" not in out + err


@pytest.mark.skipif(not HAS_CNN, reason="conv2d/max_pool2d kernels not in this build")
def test_train_digits_and_save(tmp_path, capsys):
    path = tmp_path / "cnn.npz"
    code, out, err = _run(
        capsys, "train", "--data", "digits", "--epochs", "2", "--lr", "0.01", "--save", str(path)
    )
    assert code == 0, err
    acc = float(out.split("Test: accuracy ")[1].split("%")[0])
    assert acc > 70.0
    assert "images/s" in out and f"Saved to {path}" in out
    model = nf.load(path)
    images, labels = nf.datasets.load_digits()
    assert model.evaluate(images, labels)["accuracy"] > 0.7


@pytest.mark.skipif(not HAS_CNN, reason="conv2d/max_pool2d kernels not in this build")
@pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST IDX files in {MNIST}")
def test_train_mnist_uses_the_train_and_test_files(capsys):
    code, out, err = _run(capsys, "train", "--data", f"mnist:{MNIST}", "--epochs", "1")
    assert code == 0, err
    assert "(5000) / t10k (10000)" in out
    acc = float(out.split("Test: accuracy ")[1].split("%")[0])
    assert acc > 80.0


# ----------------------------------------------------------------------------- bench --plot
def test_bench_plot_writes_a_bar_chart(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    code, out, _ = _run(
        capsys,
        "bench",
        "--quick",
        "--filter",
        "relu 1M",
        "--repeats",
        "1",
        "--no-torch",
        "--plot",
        str(png),
    )
    assert code == 0
    assert f"bar chart written to {png}" in out
    assert png.read_bytes()[:8] == PNG


def test_bench_plot_without_matplotlib_fails_before_measuring(tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "nnfast.plot", raising=False)
    monkeypatch.delattr(nf, "plot", raising=False)
    code, out, err = _run(capsys, "bench", "--plot", str(tmp_path / "b.png"))
    assert code == 2
    assert "--plot needs matplotlib" in err and out == ""


def test_bench_times_numpy_without_a_blas_override_and_names_it(tmp_path):
    # OPENBLAS_CORETYPE forces NumPy's BLAS kernel: the NumPy column comes from a child process
    # without it, and the run says so (in the output and in --json).
    import json
    import subprocess
    import sys

    out = tmp_path / "b.json"
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", OPENBLAS_THREAD_TIMEOUT="4")
    r = subprocess.run(
        [sys.executable, "-m", "nnfast", "bench", "--filter", "relu_derivative 1M", "--repeats", "1",
         "--quick", "--no-torch", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "warning: OPENBLAS_CORETYPE=Haswell forces NumPy's BLAS kernel" in r.stdout
    assert "NumPy timed in a child process without OPENBLAS_CORETYPE" in r.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["blas_env_overrides"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert "child process" in data["machine"]["numpy_timed_in"]
    (row,) = data["results"]
    assert row["seconds"]["numpy"] > 0 and row["speedup_vs_numpy"] > 0
    r2 = subprocess.run(
        [sys.executable, "-m", "nnfast", "bench", "--filter", "relu_derivative 1M", "--repeats", "1",
         "--quick", "--no-torch", "--keep-blas-env"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r2.returncode == 0, r2.stderr
    assert "kept (--keep-blas-env)" in r2.stdout and "this process, interleaved" in r2.stdout
