"""Files written by format version 1 (nnfast before the Module core) still load and predict the same.

The fixtures in tests/data were written by main at 5d28477 (Sequential.save, format 1), with the
predictions of the saving model beside them.
"""

from __future__ import annotations

from pathlib import Path

import nnfast as nf
import numpy as np

DATA = Path(__file__).parent / "data"


def test_v1_files_load_and_predict_as_saved():
    X, _ = nf.datasets.load_digits()
    expected = np.load(DATA / "v1_expected.npz")
    cnn = nf.load(DATA / "v1_tutorial_cnn.npz")
    assert cnn.loss == "cross_entropy" and cnn.dtype == np.float32
    # Saved on the avx512 path: another SIMD path rounds float32 sums in another order.
    np.testing.assert_allclose(cnn.predict_proba(X[:20]), expected["cnn"], rtol=1e-5, atol=1e-7)
    mlp = nf.load(DATA / "v1_mlp_f64.npz")
    assert mlp.dtype == np.float64
    np.testing.assert_allclose(mlp.predict_proba(X[:20]), expected["mlp"], rtol=1e-12, atol=1e-15)
