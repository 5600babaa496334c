"""Runs the benchmark table: ``python benchmarks/run.py [--quick] [--json FILE]``.

The rows live in ``nnfast/bench.py`` so that ``nnfast bench`` runs the same table from an
installed wheel.
"""

import sys

from nnfast.bench import main

if __name__ == "__main__":
    sys.exit(main())
