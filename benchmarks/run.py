"""Runs the benchmark table: ``python benchmarks/run.py [--quick] [--json FILE]``.

The rows live in ``nnfast/bench.py`` so that ``nnfast bench`` runs the same table from an
installed wheel. This script also sets, before NumPy and PyTorch are imported, the environment
that stops their worker threads from busy-waiting after each call (see ``nnfast.bench``).
"""

import os
import sys

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from nnfast.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
