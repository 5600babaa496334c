"""Kernel functions on NumPy arrays: ``nnfast.relu(z)`` and friends.

Each function converts its inputs by the policy of :mod:`nnfast._convert`, calls the native kernel
(which releases the GIL) and returns a NumPy-owned array of the input's float dtype, or writes
into ``out=`` when given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._convert import as_float_array

__all__ = ["relu"]


def _scalar_if_0d(y: np.ndarray, out: Any) -> Any:
    # Like a NumPy ufunc, a 0-d input gives a NumPy scalar unless the caller passed out=.
    return y[()] if out is None and y.ndim == 0 else y


def relu(z: Any, out: np.ndarray | None = None) -> np.ndarray:
    """Rectified linear unit, ``max(0, z)`` element-wise.

    Parameters
    ----------
    z : array_like, any shape
        Pre-activations; float32 or float64 (others are converted, see ``nnfast._convert``).
    out : numpy.ndarray, optional
        C-contiguous, writeable array of ``z``'s shape and dtype; may be ``z`` itself.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as ``z``. NaN propagates; ``relu(-0.0)`` is a zero.
    """
    return _scalar_if_0d(_core.relu(as_float_array(z, "relu", "z"), out), out)
