"""Runs the benchmark table: ``python benchmarks/run.py [--quick] [--json FILE]``.

The rows live in ``nnfast/bench.py`` so that ``nnfast bench`` runs the same table from an
installed wheel. This script also sets, before NumPy is imported, OPENBLAS_THREAD_TIMEOUT, which
stops OpenBLAS's worker threads from busy-waiting after each call and stealing the cores of the
implementation timed next (see ``nnfast.bench``). PyTorch runs at its own default threading.
"""

import os
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from nnfast.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
