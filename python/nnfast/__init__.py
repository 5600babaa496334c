"""nnfast: fast CPU neural-network kernels behind the "From Neurons to CNNs" tutorial.

``import nnfast as nf``; see README.md for a tour. Kernels live in the native extension
``nnfast._core``; this package converts inputs, composes kernels and holds the tutorial API,
networks, datasets, plots and the command line.
"""

from __future__ import annotations

from . import _core, datasets, functional, losses, nn, optim, tutorial
from ._runtime import config, get_num_threads, set_num_threads
from .functional import *  # noqa: F403  (the kernels; functional.__all__ lists them)
from .nn import (
    Conv2D,
    Dense,
    Flatten,
    History,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .optim import SGD, Adam
from .serialization import load

# The tutorial's names at top level; where a kernel of the same name exists (max_pool2d,
# flatten), the kernel wins (it accepts the tutorial's calls too) and nnfast.tutorial keeps its own.
_TUTORIAL = [n for n in tutorial.__all__ if n not in functional.__all__]
globals().update({n: getattr(tutorial, n) for n in _TUTORIAL})

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "config",
    "get_num_threads",
    "set_num_threads",
    "tutorial",
    "datasets",
    "losses",
    "nn",
    "load",
    "Conv2D",
    "Dense",
    "Flatten",
    "History",
    "MaxPool2D",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "optim",
    "SGD",
    "Adam",
    *functional.__all__,
    *_TUTORIAL,
]
