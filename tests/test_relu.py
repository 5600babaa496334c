"""ReLU: the kernel that proves the dispatch mechanism end to end."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from nnfast import reference as ref

# Sizes around every vector width (4, 8, 16 floats; 2, 4, 8 doubles), the 4x unroll and the
# thread grain (32768).
SIZES = [
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    9,
    15,
    16,
    17,
    31,
    32,
    33,
    63,
    64,
    65,
    127,
    129,
    1021,
    32767,
    32768,
    65537,
    200003,
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_relu_matches_reference_on_every_isa(isa, dtype, n, rng):
    z = rng.standard_normal(n).astype(dtype)
    y = nf.relu(z)
    assert y.dtype == dtype and y.shape == z.shape
    np.testing.assert_array_equal(y, ref.relu(z.astype(np.float64)).astype(dtype))


def test_relu_bit_identical_across_thread_counts(threads, rng):
    z = rng.standard_normal(300_001).astype(np.float32)
    np.testing.assert_array_equal(nf.relu(z), np.maximum(z, 0))


def test_relu_special_values(isa):
    z = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, -1e-45, 1e-45, 3.0], dtype=np.float32)
    y = nf.relu(z)
    assert np.isnan(y[0])
    expected = np.array([0, np.inf, 0, 0, 0, 1e-45, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(y[1:], expected)


def test_relu_shapes_and_inplace(rng):
    z = rng.standard_normal((3, 4, 5))
    expected = np.maximum(z, 0)
    np.testing.assert_array_equal(nf.relu(z), expected)
    out = np.empty_like(z)
    assert nf.relu(z, out=out) is out
    np.testing.assert_array_equal(out, expected)
    same = z.copy()
    assert nf.relu(same, out=same) is same
    np.testing.assert_array_equal(same, expected)
    assert nf.relu(np.empty((0, 3))).shape == (0, 3)


def test_relu_scalar_and_list_inputs():
    y = nf.relu(-3)
    assert np.ndim(y) == 0 and y == 0.0 and isinstance(y, np.float64)
    np.testing.assert_array_equal(nf.relu([[1, -2], [3, -4]]), [[1.0, 0.0], [3.0, 0.0]])


def test_relu_bad_out():
    z = np.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match=r"relu: out must have dtype float32, got float64"):
        nf.relu(z, out=np.empty(4))
    with pytest.raises(ValueError, match=r"relu: out must have shape \(4,\), got \(5,\)"):
        nf.relu(z, out=np.empty(5, dtype=np.float32))
    ro = np.empty(4, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"relu: out must be writeable"):
        nf.relu(z, out=ro)
    with pytest.raises(ValueError, match=r"relu: out must be C-contiguous"):
        nf.relu(z, out=np.empty(8, dtype=np.float32)[::2])
    big = np.ones(8, dtype=np.float32)
    with pytest.raises(ValueError, match=r"relu: out must not overlap an input"):
        nf.relu(big[:4], out=big[2:6])
    with pytest.raises(TypeError, match=r"relu: out must be a numpy.ndarray or None, got list"):
        nf.relu(z, out=[0, 0, 0, 0])


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (
            np.ones(3, dtype=np.complex64),
            TypeError,
            r"relu: z must be a float32 or float64 array, got dtype complex64",
        ),
        (np.array(["a"]), TypeError, r"relu: z must be a float32 or float64 array, got dtype <U1"),
        (
            np.array([1, None], dtype=object),
            TypeError,
            r"relu: z must be a float32 or float64 array, got dtype object",
        ),
        ("abc", TypeError, r"relu: z must be an array of numbers, got str"),
        ([[1, 2], [3]], ValueError, r"relu: z could not be converted to an array"),
    ],
)
def test_relu_bad_input(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        nf.relu(bad)
