"""nnfast: fast CPU neural-network kernels behind the "From Neurons to CNNs" tutorial.

``import nnfast as nf``; see README.md for a tour. Kernels live in the native extension
``nnfast._core``; this package converts inputs, composes kernels and holds the tutorial API,
networks, datasets, plots and the command line.
"""

from __future__ import annotations

from . import _core
from ._runtime import config, get_num_threads, set_num_threads
from .functional import dense, dense_backward, matmul, relu

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "config",
    "dense",
    "dense_backward",
    "get_num_threads",
    "matmul",
    "relu",
    "set_num_threads",
]
