"""Measures nnfast's activation accuracy against float64/extended references, per ISA and dtype.

``python benchmarks/activations_accuracy.py`` prints, for each function, the maximum error in
ulps of the result dtype (the ulp of the correctly rounded reference; subnormal results count in
units of the smallest subnormal) and the maximum relative error over results >= the smallest
normal number. Inputs: a dense sweep over [-30, 30], logarithmic magnitudes from 1e-30 to the
overflow edge of exp, and random normals. References: ``nnfast.reference`` in float64 for float32
results, the same stable formulas in extended precision (np.longdouble) for float64 results.
GELU is measured in float32 only, against ``nnfast.reference.gelu`` (math.erfc in float64); its
float64 kernel is that same C library erfc, so there is nothing better to compare it with here.
"""

from __future__ import annotations

import sys

import numpy as np
from nnfast import _core
from nnfast import reference as ref


def _inputs(dtype: type) -> np.ndarray:
    lim = 88.0 if dtype == np.float32 else 709.0
    mag = np.logspace(-30, np.log10(lim), 4000)
    r = np.random.default_rng(0)
    z = np.concatenate(
        [mag, -mag, np.linspace(-30, 30, 200_001), r.standard_normal(100_000) * 5, [0.0, -0.0]]
    )
    return z.astype(dtype)


def _extended(name: str, z: np.ndarray) -> np.ndarray:
    # float64 results need a reference better than float64 arithmetic: the same stable formulas
    # in x87 extended precision (64-bit significand, np.longdouble on x86-64 Linux).
    x = z.astype(np.longdouble)
    a = np.abs(x)
    if name == "sigmoid":
        e = np.exp(-a)
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid_derivative":
        e = np.exp(-a)
        return e / (1 + e) ** 2
    if name == "tanh_derivative":
        e = np.exp(-2 * a)
        return 4 * e / (1 + e) ** 2
    raise ValueError(name)


def _reference(name: str, z: np.ndarray) -> np.ndarray:
    if z.dtype == np.float32:
        return {
            "sigmoid": ref.sigmoid,
            "tanh": ref.tanh,
            "sigmoid_derivative": ref.sigmoid_derivative,
            "tanh_derivative": ref.tanh_derivative,
            "softmax": lambda v: ref.softmax(v.reshape(-1, 100), axis=-1).reshape(-1),
            "gelu": ref.gelu,
        }[name](z.astype(np.float64))
    if name == "softmax":
        return ref.softmax(z.astype(np.longdouble).reshape(-1, 100), axis=-1).reshape(-1)
    return _extended(name, z)


def _errors(got: np.ndarray, want: np.ndarray, dtype: type) -> tuple[float, float]:
    # Arithmetic in the reference's precision (longdouble for float64 results).
    want = np.asarray(want)
    fin = np.isfinite(want)
    want = want[fin]
    got = got[fin].astype(want.dtype)
    ulp = np.spacing(np.abs(want.astype(dtype))).astype(want.dtype)
    ulp = np.maximum(ulp, np.finfo(dtype).smallest_subnormal)
    err = np.abs(got - want)
    ulps = float(np.max(err / ulp)) if err.size else 0.0
    normal = np.abs(want) >= np.finfo(dtype).tiny
    rel = float(np.max(err[normal] / np.abs(want[normal]))) if normal.any() else 0.0
    return ulps, rel


def main() -> int:
    names = ["sigmoid", "tanh", "sigmoid_derivative", "tanh_derivative", "softmax"]
    print("| function | dtype | isa | max ulp | max rel err |")
    print("|---|---|---|---|---|")
    before = _core._isa()
    try:
        for dtype in (np.float32, np.float64):
            z = _inputs(dtype)
            z = np.ascontiguousarray(z[: z.size // 100 * 100])
            sm_in = (z / 4).astype(dtype)  # softmax rows of 100 with a spread of logits
            for name in names + (["gelu"] if dtype == np.float32 else []):
                zin = sm_in if name == "softmax" else z
                want = _reference(name, zin)
                for isa in _core._isa_available():
                    _core._testing.set_isa(isa)
                    if name == "softmax":
                        got = _core.softmax(zin.reshape(-1, 100)).reshape(-1)
                    else:
                        got = getattr(_core, name)(zin)
                    ulps, rel = _errors(got, want, dtype)
                    print(f"| {name} | {np.dtype(dtype).name} | {isa} | {ulps:.2f} | {rel:.2e} |")
    finally:
        _core._testing.set_isa(before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
