"""Type stubs for nnfast._core, the native extension.

The functions here are strict: inputs must be C-contiguous float32/float64 ``numpy.ndarray``s
(no conversion); the public wrappers in :mod:`nnfast.functional` convert first. Every kernel
releases the GIL while it runs.
"""

import numpy as np
import numpy.typing as npt

__version__: str
_compiler: str
_build_type: str
_isa_compiled: tuple[str, ...]

FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def relu(z: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """max(0, z) element-wise.

    Parameters
    ----------
    z : ndarray, any shape, float32 or float64, C-contiguous
    out : ndarray, optional
        Same shape and dtype as ``z``, C-contiguous, writeable; may be ``z`` (in place).

    Returns
    -------
    ndarray
        Same shape and dtype as ``z``; NaN propagates.
    """

def set_num_threads(n: int) -> None:
    """Sets the number of kernel threads (1..4096, the calling thread included)."""

def get_num_threads() -> int:
    """Number of kernel threads."""

def _set_isa(name: str) -> None:
    """Switches the SIMD path ("" = best). For tests; ``NNFAST_ISA`` is the public control."""

def _isa() -> str:
    """The SIMD path in use: "baseline", "avx2" or "avx512"."""

def _isa_available() -> list[str]:
    """Paths this CPU and build can run, weakest first."""

def _new_array(shape: list[int], dtype: np.dtype) -> npt.NDArray[np.floating]:
    """The bindings' overflow-checked output allocation (for tests)."""
