"""The ``nnfast`` command line: ``info``, ``bench`` and ``demo``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _info(_args: argparse.Namespace) -> int:
    from ._runtime import config

    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>14}: {value}")
    return 0


def _demo(_args: argparse.Namespace) -> int:
    # NOTE: placeholder until the demo issue lands; it says so rather than pretending.
    print("nnfast demo: the tutorial walk-through is not built yet (see the demo issue).")
    print("What works today:")
    return _info(_args)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="nnfast", description="nnfast command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="build, SIMD path and threads").set_defaults(func=_info)
    sub.add_parser("demo", help="the tutorial, end to end").set_defaults(func=_demo)
    sub.add_parser("bench", help="kernels vs NumPy (and PyTorch), as ratios", add_help=False)
    if argv[:1] == ["bench"]:
        from .bench import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
