"""Property tests: hypothesis draws shapes, dtypes, memory orders, strides, values and options for
every kernel in tests/fuzz/specs.py (through the fuzz target's case generator).

A valid call must give the float64 reference's result (shape, promoted dtype, values, NaN/inf
positions) and leave its inputs untouched; a call with one hostile mutation must raise the
documented exception type with a message naming the function, writing nothing.
"""

from __future__ import annotations

import nnfast as nf
import pytest
from fuzz import fuzz_bindings as fb
from fuzz import specs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SPECS = specs.present(nf)
IDS = [s.name for s in SPECS]
SETTINGS = dict(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@settings(**SETTINGS)
@given(data=st.data())
def test_valid_calls_match_the_reference(spec, data):
    fb.run_case(fb.make_case(spec, fb.HypothesisSource(data), allow_bad=False))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@settings(**SETTINGS)
@given(data=st.data())
def test_hostile_calls_raise_clean_documented_errors(spec, data):
    fb.run_case(fb.make_case(spec, fb.HypothesisSource(data), allow_bad=True))
