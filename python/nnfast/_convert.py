"""The conversion policy for inputs, in one place (DESIGN §1).

Kernels take C-contiguous float32/float64 arrays without copying. Everything else is converted
here, with at most one explicit copy:

* float32 / float64 ndarrays that are C-contiguous pass through untouched (zero copy);
* non-contiguous views, Fortran-order arrays, broadcast (zero-stride) views and non-native byte
  order → one ``np.ascontiguousarray`` copy of the same dtype;
* integer and boolean arrays, Python lists, tuples and scalars → float64 (NumPy's promotion);
  float16 → float32;
* several inputs of one call with mixed float dtypes → the promoted dtype (float64 if any is);
* complex, object, string, datetime and extended-precision arrays, ``None``, ``str`` and
  ``bytes`` → ``TypeError`` naming the function and the argument;
* masked arrays → ``TypeError`` (the kernels would silently ignore the mask), float inputs,
  integer labels and pooling indices alike;
* misaligned arrays (e.g. ``np.frombuffer`` at an odd offset) → one aligned copy.

``out=`` arrays are never converted: the bindings check them exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_float_array", "as_float_arrays", "reject_masked"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _target_dtype(dt: np.dtype, fn: str, arg: str) -> np.dtype:
    kind = dt.kind
    if kind == "f":
        if dt.itemsize == 4:
            return _F32
        if dt.itemsize == 8:
            return _F64
        if dt.itemsize == 2:
            return _F32
        raise TypeError(f"{fn}: {arg} must be a float32 or float64 array, got dtype {dt}")
    if kind in "biu":
        return _F64
    raise TypeError(f"{fn}: {arg} must be a float32 or float64 array, got dtype {dt}")


def reject_masked(x: Any, fn: str, arg: str) -> None:
    """Raises TypeError for a ``numpy.ma.MaskedArray`` (float, integer labels or indices alike).

    NOTE: refused rather than honoured: a masked label or pooling index has no meaning the kernels
    could give it, and dropping the masked rows would silently change the batch size (the mean).
    """
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{fn}: {arg} is a masked array (numpy.ma.MaskedArray); nnfast would ignore its mask: "
            f"pass {arg}.filled(value) or {arg}.data"
        )


def as_float_array(x: Any, fn: str, arg: str, dtype: np.dtype | None = None) -> np.ndarray:
    """Returns ``x`` as a C-contiguous float32/float64 ndarray, copying only when needed.

    Parameters
    ----------
    x : array_like
        The input.
    fn, arg : str
        Function and argument names, for error messages.
    dtype : numpy.dtype, optional
        Force this float dtype (used after promoting several inputs together).
    """
    if (
        type(x) is np.ndarray
        and (x.dtype is _F32 or x.dtype is _F64 or x.dtype == _F32 or x.dtype == _F64)
        and x.flags.c_contiguous
        and x.flags.aligned
        and x.dtype.isnative
        and (dtype is None or x.dtype == dtype)
    ):
        return x
    reject_masked(x, fn, arg)
    if not isinstance(x, np.ndarray):
        if x is None or isinstance(x, (str, bytes)):
            raise TypeError(f"{fn}: {arg} must be an array of numbers, got {type(x).__name__}")
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{fn}: {arg} could not be converted to an array: {exc}") from None
    target = dtype if dtype is not None else _target_dtype(x.dtype, fn, arg)
    if dtype is not None:
        _target_dtype(x.dtype, fn, arg)  # still reject complex/object/str inputs
    # NOTE: np.asarray keeps a misaligned C-contiguous array as it is; np.require copies it.
    # np.asarray also drops ndarray subclasses (np.matrix ...) to plain arrays.
    return np.require(np.asarray(x), dtype=target, requirements=["C", "A"])


def as_float_arrays(fn: str, **named: Any) -> list[np.ndarray]:
    """Converts several inputs of one call to one promoted float dtype, in argument order."""
    converted = {name: as_float_array(v, fn, name) for name, v in named.items()}
    dt = _F64 if any(a.dtype == _F64 for a in converted.values()) else _F32
    return [a if a.dtype == dt else a.astype(dt) for a in converted.values()]
