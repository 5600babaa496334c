"""Every benchmark row times the same computation in each column.

A row's NumPy and PyTorch implementations are run once and their results compared with the
nnfast one, so a row cannot silently time something other than what it names (a wrong axis, a
missing bias, a stale in-place buffer). Rows that train whole models (different objects per
column) and rows marked not-quick (the 2048^3 product, seconds of NumPy time) are left out.
"""

from __future__ import annotations

import numpy as np
import pytest
from nnfast import bench

try:  # the torch column is checked when torch is installed
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

TRAINING = ("tutorial XOR train", "CNN train step")
ROWS = [r for r in bench.ROWS if r.quick and not r.name.startswith(TRAINING)]


def _as_numpy(result):
    if torch is not None and isinstance(result, torch.Tensor):
        return result.detach().numpy()
    if isinstance(result, (tuple, list)):
        return tuple(_as_numpy(r) for r in result)
    return np.asarray(result)


def _assert_same(got, want, where):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
        return
    assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
    w = want.astype(np.float64)
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    np.testing.assert_allclose(
        got.astype(np.float64), w, rtol=2e-4, atol=2e-5 * scale, err_msg=where
    )


def test_every_row_is_checked_or_named_as_training():
    names = {r.name for r in ROWS}
    for r in bench.ROWS:
        assert r.name in names or r.name.startswith(TRAINING) or not r.quick, r.name


def _assert_same_distribution(got, want, where):
    # A column drawing its own random mask (torch's dropout): same shapes, the same values where
    # both keep an element, and kept fractions within 1 % of each other.
    if isinstance(want, tuple):
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same_distribution(g, w, f"{where}[{i}]")
        return
    assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
    both = (got != 0) & (want != 0)
    np.testing.assert_allclose(got[both], want[both], rtol=1e-6, err_msg=where)
    assert abs(np.mean(got != 0) - np.mean(want != 0)) < 0.01, where


@pytest.mark.parametrize("row", ROWS, ids=[r.name.split(" (")[0] for r in ROWS])
def test_row_columns_compute_the_same_result(row):
    impls = row.setup(torch)
    want = _as_numpy(impls["nnfast"]())
    for name in ("numpy", "torch"):
        if name in impls:
            got = _as_numpy(impls[name]())
            if name == "torch" and row.extra.get("random_mask"):
                _assert_same_distribution(got, want, f"{row.name}: {name} vs nnfast")
            else:
                _assert_same(got, want, f"{row.name}: {name} vs nnfast")
