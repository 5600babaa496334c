"""nnfast: fast CPU neural-network kernels behind the "From Neurons to CNNs" tutorial.

``import nnfast as nf``; see README.md for a tour. Kernels live in the native extension
``nnfast._core``; this package converts inputs, composes kernels and holds the tutorial API,
networks, datasets, plots and the command line.
"""

from __future__ import annotations

from . import _core, functional
from ._runtime import config, get_num_threads, set_num_threads
from .functional import *  # noqa: F403  (the kernels; functional.__all__ lists them)

__version__: str = _core.__version__

__all__ = ["__version__", "config", "get_num_threads", "set_num_threads", *functional.__all__]
