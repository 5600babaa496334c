"""Shared fixtures: run a test on every SIMD path and on several thread counts."""

from __future__ import annotations

import os

import nnfast as nf
import numpy as np
import pytest
from nnfast import _core

ISAS = list(_core._isa_available())
THREAD_COUNTS = sorted({1, 2, 3, max(1, os.cpu_count() or 1)})


@pytest.fixture(params=ISAS)
def isa(request: pytest.FixtureRequest):
    """Runs the test once per SIMD path this CPU supports, restoring the default afterwards."""
    before = _core._isa()
    _core._testing.set_isa(request.param)
    try:
        yield request.param
    finally:
        _core._testing.set_isa(before)


@pytest.fixture(params=THREAD_COUNTS)
def threads(request: pytest.FixtureRequest):
    """Runs the test with 1..N kernel threads, restoring the count afterwards."""
    before = nf.get_num_threads()
    nf.set_num_threads(request.param)
    try:
        yield request.param
    finally:
        nf.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def with_num_threads(n: int):
    """Context manager setting the kernel thread count temporarily."""

    class _Ctx:
        def __enter__(self):
            self.before = nf.get_num_threads()
            nf.set_num_threads(n)

        def __exit__(self, *exc):
            nf.set_num_threads(self.before)

    return _Ctx()


# Per-dtype tolerances for comparisons with the float64 reference.
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
