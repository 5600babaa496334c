"""Runtime controls: threads, the SIMD path in use, build information."""

from __future__ import annotations

import platform
import sys
from typing import Any

import numpy as np

from . import _core

__all__ = ["config", "get_num_threads", "set_num_threads"]


def set_num_threads(n: int) -> None:
    """Sets how many threads kernels use (the calling thread included); ``n >= 1``.

    Raises
    ------
    ValueError
        If ``n < 1``.
    TypeError
        If ``n`` is not an int.
    """
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads kernels use."""
    return _core.get_num_threads()


def config() -> dict[str, Any]:
    """How this nnfast was built and what it runs on.

    Returns
    -------
    dict
        ``version``, ``isa`` (the SIMD path in use), ``isa_available`` (paths this CPU can run),
        ``isa_compiled``, ``num_threads``, ``compiler``, ``build_type``, ``python``, ``numpy``,
        ``machine``.
    """
    return {
        "version": _core.__version__,
        "isa": _core._isa(),
        "isa_available": list(_core._isa_available()),
        "isa_compiled": list(_core._isa_compiled),
        "num_threads": _core.get_num_threads(),
        "compiler": _core._compiler,
        "build_type": _core._build_type,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
