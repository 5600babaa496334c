"""The ``nnfast`` command line: ``demo``, ``train``, ``bench`` and ``info``.

``nnfast demo`` runs the tutorial end to end; ``nnfast train`` trains the tutorial's CNN on the
shipped digits or on MNIST IDX files; ``nnfast bench`` times the kernels against NumPy (and
PyTorch); ``nnfast info`` prints the build. ``python -m nnfast`` is the same command. Argument
errors print the usage and exit with status 2; other expected failures (a missing data file, no
matplotlib for figures) print one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

_VIZ_HINT = 'pip install "nnfast[viz]"  (or: pip install matplotlib)'


class _Failure(Exception):
    """An expected failure: printed as ``nnfast <command>: error: <message>``, exit status 1."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1 or v > 1_000_000_000:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, 1e9], got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _data_spec(text: str) -> tuple[str, Path | None]:
    if text == "digits":
        return "digits", None
    if text.startswith("mnist:") and len(text) > len("mnist:"):
        return "mnist", Path(text[len("mnist:") :])
    raise argparse.ArgumentTypeError(f"expected 'digits' or 'mnist:DIR', got {text!r}")


def _require_matplotlib(command: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _Failure(
            f"the figures need matplotlib, which is not installed.\n"
            f"  Install it:  {_VIZ_HINT}\n"
            f"  or run without figures:  nnfast {command} --no-plots"
            if command == "demo"
            else f"--plot needs matplotlib, which is not installed. Install it: {_VIZ_HINT}"
        ) from None


# ----------------------------------------------------------------------------- info
def _info(_args: argparse.Namespace) -> int:
    from ._runtime import config

    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>14}: {value}")
    return 0


# ----------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    out = None
    if not args.no_plots:
        _require_matplotlib("demo")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise _Failure(f"--out {out} exists and is not a folder")
    from ._demo import run

    try:
        return run(out, quick=args.quick)
    except OSError as exc:  # the figure folder cannot be created or written
        raise _Failure(f"--out {out}: {exc}") from None


# ----------------------------------------------------------------------------- train
def _mnist_kinds(directory: Path) -> tuple[str, str | None]:
    """(train kind, test kind or None) from the IDX files present in ``directory``."""
    if not directory.is_dir():
        raise _Failure(f"--data mnist:{directory}: no such folder")
    kinds = sorted(
        {p.name.split("-images-idx3-ubyte")[0] for p in directory.glob("*-images-idx3-ubyte*")}
    )
    test = "t10k" if "t10k" in kinds else None
    train = [k for k in kinds if k != "t10k"]
    if not train:
        raise _Failure(
            f"--data mnist:{directory}: no training IDX files (<kind>-images-idx3-ubyte[.gz] "
            f"with kind other than t10k, e.g. train-images-idx3-ubyte.gz)"
        )
    return ("train" if "train" in train else train[0]), test


def _train(args: argparse.Namespace) -> int:
    import numpy as np

    import nnfast as nf

    from . import datasets, nn
    from .optim import Adam

    kind, directory = args.data
    try:
        if kind == "digits":
            images, labels = datasets.load_digits()
            order = np.random.default_rng(args.seed).permutation(len(labels))
            n_test = len(labels) // 5
            X_te, y_te = images[order[:n_test]], labels[order[:n_test]]
            X_tr, y_tr = images[order[n_test:]], labels[order[n_test:]]
            source = f"shipped digits: {len(y_tr)} train / {len(y_te)} test (seeded 80/20 split)"
        else:
            train_kind, test_kind = _mnist_kinds(directory)
            X_tr, y_tr = datasets.load_mnist(directory, train_kind)
            if test_kind is not None:
                X_te, y_te = datasets.load_mnist(directory, test_kind)
                source = (
                    f"MNIST {directory}: {train_kind} ({len(y_tr)}) / {test_kind} ({len(y_te)})"
                )
            else:
                order = np.random.default_rng(args.seed).permutation(len(y_tr))
                n_test = len(y_tr) // 10
                X_te, y_te = X_tr[order[:n_test]], y_tr[order[:n_test]]
                X_tr, y_tr = X_tr[order[n_test:]], y_tr[order[n_test:]]
                source = f"MNIST {directory}: {train_kind}, 10% held out ({len(y_te)} images)"
    except (OSError, ValueError) as exc:
        raise _Failure(str(exc)) from None
    if X_tr.shape[0] == 0 or X_te.shape[0] == 0:
        raise _Failure("the data set is empty")
    if not hasattr(nf, "conv2d"):
        raise _Failure("this build has no conv2d kernel, so the tutorial CNN cannot be trained")
    model = nn.Sequential(nn.tutorial_cnn(*X_tr.shape[1:]), seed=args.seed)
    print(f"Data: {source}")
    print(f"Model: {model!r}")
    print(
        f"Training: {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}, "
        f"{nf.get_num_threads()} threads, {nf.config()['isa']}\n"
    )
    t0 = time.perf_counter()
    model.fit(
        X_tr,
        y_tr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=Adam(lr=args.lr),
        verbose=1,
    )
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = model.evaluate(X_te, y_te)
    t_eval = time.perf_counter() - t0
    print(
        f"\nTest: accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f} on "
        f"{len(y_te)} images"
    )
    print(
        f"Time: training {t_train:.2f} s ({args.epochs * len(y_tr) / t_train:,.0f} images/s), "
        f"evaluation {len(y_te) / max(t_eval, 1e-9):,.0f} images/s"
    )
    if args.save:
        try:
            model.save(args.save)
        except OSError as exc:
            raise _Failure(f"--save {args.save}: {exc}") from None
        print(f"Saved to {args.save} (load with nnfast.load)")
    return 0


# ----------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnfast",
        description="nnfast: the 'From Neurons to CNNs' tutorial on fast CPU kernels",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "demo",
        help="the tutorial end to end, with every figure",
        description="Walks the tutorial, Parts 1-5, printing its results, then trains a CNN on "
        "the shipped handwritten digits; writes every figure as PNG.",
    )
    p.add_argument(
        "--out", default="nnfast-demo", metavar="DIR", help="figure folder (default ./nnfast-demo)"
    )
    p.add_argument("--quick", action="store_true", help="fewer training epochs")
    p.add_argument("--no-plots", action="store_true", help="no figures (no matplotlib needed)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "train",
        help="train the tutorial CNN on digits or MNIST",
        description="Trains the tutorial's CNN (conv 8 > pool > conv 16 > pool > dense) and "
        "reports test accuracy and images/s.",
    )
    p.add_argument(
        "--data",
        type=_data_spec,
        default=("digits", None),
        metavar="digits|mnist:DIR",
        help="the shipped 8x8 digits (default), or a folder of MNIST IDX files (train or "
        "train5k as training set, t10k as test set when present)",
    )
    p.add_argument("--epochs", type=_positive_int, default=10, metavar="N")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="B")
    p.add_argument("--lr", type=_positive_float, default=0.005, metavar="LR", help="Adam lr")
    p.add_argument("--seed", type=int, default=0, help="weights, shuffling and split seed")
    p.add_argument("--save", metavar="FILE", help="save the trained model (.npz)")
    p.set_defaults(func=_train)

    sub.add_parser(
        "bench", help="kernels vs NumPy (and PyTorch), as ratios; --plot FILE", add_help=False
    )
    sub.add_parser("info", help="build, SIMD path and threads").set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (argument errors: 2, failures: 1)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):
        # NOTE: the tutorial prints check marks; never die on a console that cannot show them.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    command = argv[0] if argv else None
    try:
        if command == "bench":
            from .bench import main as bench_main

            return bench_main(argv[1:])
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args))
    except SystemExit as exc:  # argparse: usage already printed
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except _Failure as exc:
        print(f"nnfast {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nnnfast {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
