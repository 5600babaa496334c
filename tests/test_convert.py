"""The conversion policy and the shared binding checks (dtype x order x contiguity x empty)."""

from __future__ import annotations

import re

import nnfast as nf
import numpy as np
import pytest
from nnfast import _core
from nnfast._convert import as_float_array, as_float_arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contiguous_float_input_is_not_copied(dtype):
    z = np.arange(12, dtype=dtype).reshape(3, 4)
    assert as_float_array(z, "f", "z") is z
    ro = z.copy()
    ro.flags.writeable = False
    assert as_float_array(ro, "f", "z") is ro  # inputs are only read


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda a: np.asfortranarray(a),
        lambda a: a[:, ::2],
        lambda a: a[::-1],
        lambda a: a.T,
        lambda a: np.broadcast_to(a[:1], a.shape),
        lambda a: a.astype(a.dtype.newbyteorder()),
    ],
    ids=["fortran", "strided", "reversed", "transposed", "zero-stride", "byteswapped"],
)
def test_layouts_are_copied_once_to_c_order(dtype, make):
    base = np.linspace(-3, 3, 24, dtype=dtype).reshape(4, 6)
    view = make(base)
    conv = as_float_array(view, "f", "z")
    assert conv.flags.c_contiguous and conv.dtype == dtype and conv.dtype.isnative
    np.testing.assert_array_equal(conv, view)
    np.testing.assert_array_equal(nf.relu(view), np.maximum(view, 0))


@pytest.mark.parametrize(
    "src, dtype",
    [
        (np.arange(5, dtype=np.int8), np.float64),
        (np.arange(5, dtype=np.int64), np.float64),
        (np.arange(5, dtype=np.uint32), np.float64),
        (np.array([True, False]), np.float64),
        (np.arange(5, dtype=np.float16), np.float32),
        ([1, 2, 3], np.float64),
        ([1.5, -2.0], np.float64),
        ((1, 2), np.float64),
        (3, np.float64),
        (2.5, np.float64),
    ],
)
def test_promotions(src, dtype):
    out = as_float_array(src, "f", "z")
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.asarray(src, dtype=dtype))


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_arrays(shape, dtype):
    y = nf.relu(np.zeros(shape, dtype=dtype))
    assert y.shape == shape and y.dtype == dtype


def test_mixed_dtypes_promote_together():
    a, b = as_float_arrays("f", a=np.ones(2, np.float32), b=np.ones(2, np.float64))
    assert a.dtype == b.dtype == np.float64
    a, b = as_float_arrays("f", a=np.ones(2, np.float32), b=np.ones(2, np.float32))
    assert a.dtype == b.dtype == np.float32
    a, b = as_float_arrays("f", a=np.ones(2, np.float32), b=[1, 2])
    assert a.dtype == b.dtype == np.float64


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.ones(2, np.complex128), "complex128"),
        (np.ones(2, np.longdouble), str(np.dtype(np.longdouble))),
        (np.array(["x"]), "<U1"),
        (np.array([object()]), "object"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "datetime64[D]"),
    ],
)
def test_unsupported_dtypes(bad, msg):
    if bad.dtype == np.float64:  # longdouble is float64 on some platforms
        pytest.skip("longdouble is float64 here")
    expected = re.escape(f"f: z must be a float32 or float64 array, got dtype {msg}")
    with pytest.raises(TypeError, match=expected):
        as_float_array(bad, "f", "z")


def test_core_rejects_what_the_python_layer_would_convert():
    # _core is strict: no silent conversions, clear errors, no crash.
    with pytest.raises(
        TypeError, match=r"relu: z must be a float32 or float64 numpy.ndarray, got list"
    ):
        _core.relu([1.0, 2.0])
    with pytest.raises(TypeError, match=r"relu: z must have dtype float32 or float64, got int64"):
        _core.relu(np.arange(3))
    with pytest.raises(TypeError, match=r"relu: z must have dtype float32 or float64, got >f8"):
        _core.relu(np.ones(3, dtype=">f8"))
    with pytest.raises(
        ValueError, match=r"relu: z must be C-contiguous, got an array with strides \(16,\)"
    ):
        _core.relu(np.ones(6)[::2])


def test_new_array_overflow_and_memory_errors():
    with pytest.raises(
        ValueError,
        match=r"_new_array: the output of shape \(4294967296, 4294967296\) has more elements than can be addressed",
    ):
        _core._testing.new_array([2**32, 2**32], np.dtype(np.float32))
    with pytest.raises(
        ValueError, match=r"_new_array: the output has a negative size in shape \(-1, 3\)"
    ):
        _core._testing.new_array([-1, 3], np.dtype(np.float32))
    with pytest.raises(MemoryError):
        _core._testing.new_array([2**27, 2**27], np.dtype(np.float64))  # 128 PiB
    assert _core._testing.new_array([2**40, 0], np.dtype(np.float32)).shape == (2**40, 0)
    ok = _core._testing.new_array([3, 4], np.dtype(np.float64))
    assert ok.shape == (3, 4) and ok.dtype == np.float64 and ok.flags.c_contiguous
