"""Fuzz target over nnfast's public kernel functions, generated from tests/fuzz/specs.py.

Each input picks a function and builds a call: random sizes (0 and 1 included), dtypes (float16/32/
64, integers, bool, mixed), layouts (Fortran, strided, negative strides, zero-stride broadcast,
byte-swapped, misaligned, read-only, Python lists), values (tiny, huge, NaN, inf, -0.0), options,
optional out=, and sometimes exactly one hostile mutation (wrong type, ndim, shape mismatch,
unknown name, bad integer, bad out=, overflowing or unallocatable sizes). The oracle:

* a valid call returns the float64 reference's shape, the promoted dtype and close values (exactly
  where the reference is NaN/inf), and leaves every input unchanged;
* a hostile call raises the documented exception type with a message starting "<function>: ",
  and writes nothing to out= or the inputs;
* nothing crashes, hangs or raises anything else.

Run it:
    python tests/fuzz/fuzz_bindings.py -max_total_time=600          # atheris (libFuzzer flags)
    python tests/fuzz/fuzz_bindings.py --engine random --seconds 60  # no atheris needed
scripts/sanitize.sh runs tests/test_fuzz.py (and so this target) under ASan/UBSan.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nnfast as nf  # noqa: E402

from fuzz import specs  # noqa: E402
from fuzz.specs import Array, Choice, Flag, Int, Real  # noqa: E402

SIZES = [0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33]
DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float16, np.int64, np.int32, np.bool_]
LAYOUTS = ["C", "C", "C", "F", "strided", "negative", "broadcast", "byteswap", "unaligned",
           "readonly", "list"]  # fmt: skip
SCALES = [1.0, 1.0, 0.01, 1e3, 1e30]


# ----------------------------------------------------------------------------- byte sources
class RandomSource:
    """Choices from a seeded PRNG (the engine without atheris, and reproducible cases)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def coin(self, p: float = 0.5) -> bool:
        return self.r.random() < p


class AtherisSource:
    """Choices from libFuzzer's bytes, so coverage feedback steers them."""

    def __init__(self, data: bytes) -> None:
        import atheris

        self.fdp = atheris.FuzzedDataProvider(data)

    def int(self, lo: int, hi: int) -> int:
        return self.fdp.ConsumeIntInRange(lo, hi)

    def pick(self, seq):
        return seq[self.fdp.ConsumeIntInRange(0, len(seq) - 1)]

    def coin(self, p: float = 0.5) -> bool:
        return self.fdp.ConsumeProbability() < p


class HypothesisSource:
    """Choices drawn through hypothesis (property tests; shrinks failing cases)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def pick(self, seq):
        return seq[self.data.draw(self.st.integers(0, len(seq) - 1))]

    def coin(self, p: float = 0.5) -> bool:
        return self.data.draw(self.st.floats(0, 1)) < p


# ----------------------------------------------------------------------------- cases
@dataclass
class Case:
    spec: specs.Spec
    kw: dict[str, Any]
    expect: tuple = ()  # exception types a hostile call may raise; () = must succeed
    mutation: str = ""
    compare: bool = True  # compare values with the reference (False for huge/special values)
    clean: dict[str, Any] = field(default_factory=dict)  # the values before layout changes
    dtype: Any = np.float64
    may_succeed: bool = False  # a big-but-valid option: success or a clean error

    def describe(self) -> str:
        parts = []
        for k, v in self.kw.items():
            if isinstance(v, np.ndarray):
                parts.append(f"{k}=ndarray{v.shape}{v.dtype}{'' if v.flags.c_contiguous else 'nc'}")
            else:
                parts.append(f"{k}={type(v).__name__}:{str(v)[:40]}")
        return f"{self.spec.name}({', '.join(parts)}) mutation={self.mutation or 'none'}"


def _values(
    src, shape: tuple, dtype, rng: np.random.Generator, nonneg: bool = False
) -> tuple[np.ndarray, bool]:
    scale = src.pick(SCALES)
    a = np.asarray(rng.standard_normal(shape) * scale)
    if nonneg:
        a = np.asarray(np.abs(a))
    special = scale > 1  # ill-conditioned for f32 activations: checked for crashes only
    if a.size and src.coin(0.15):
        flat = a.reshape(-1)
        for _ in range(src.int(1, 3)):
            flat[src.int(0, flat.size - 1)] = src.pick([np.nan, np.inf, -np.inf, -0.0, 1e308])
        special = True
    with np.errstate(all="ignore"):
        if np.dtype(dtype) == np.bool_:
            return np.asarray(a > 0), special
        if np.dtype(dtype).kind in "iu":
            return np.asarray(np.nan_to_num(np.clip(a, -1e6, 1e6)).astype(dtype)), special
        out = np.asarray(a.astype(dtype))
    return out, special or (np.dtype(dtype) == np.float16 and scale > 1)


def _layout(src, a: np.ndarray) -> Any:
    kind = src.pick(LAYOUTS)
    if kind == "F":
        return np.asarray(a, order="F")  # (np.asfortranarray makes a 0-d array 1-d)
    if kind == "strided" and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if kind == "negative" and a.ndim:
        return a[..., ::-1].copy()[..., ::-1]
    if kind == "broadcast" and a.ndim and a.shape[0] > 0:
        row = a[:1].copy()
        a[...] = row  # the clean values must equal what the view shows
        return np.broadcast_to(row, a.shape)
    if kind == "byteswap" and a.dtype.kind == "f":
        return a.astype(a.dtype.newbyteorder())
    if kind == "unaligned" and a.dtype.itemsize > 1:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        u = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
        u[...] = a
        return u
    if kind == "readonly":
        r = np.array(a, copy=True)
        r.flags.writeable = False
        return r
    if kind == "list" and a.dtype == np.float64 and a.size:  # ([] would lose the shape)
        return a.tolist()
    return a


def _result_dtype(kw: dict, spec: specs.Spec):
    dts = []
    for name in spec.float_arrays:
        v = kw.get(name)
        if v is None:
            continue
        dt = np.asarray(v).dtype
        dts.append(np.float32 if dt.kind == "f" and dt.itemsize <= 4 else np.float64)
    return np.float64 if np.float64 in dts else np.float32


def _option(src, a: Any, ew_ndim: int) -> tuple[Any, bool]:
    """A valid option value; the flag says it is a 'big' one (clean errors allowed)."""
    if isinstance(a, Choice):
        return (None if a.none_ok and src.coin(0.1) else src.pick(a.values)), False
    if isinstance(a, Flag):
        return src.pick([True, False, np.True_, np.False_]), False
    if isinstance(a, Real):
        v = src.pick([a.default, a.default, 0.0, 1e-3, 0.5, 0.9, -0.25, 3.0])
        if not (a.lo <= v and (v < a.hi if a.hi_open else v <= a.hi)):
            v = a.default
        form = src.int(0, 9)  # the number types a caller may pass
        if form == 0 and float(v).is_integer():
            return int(v), False
        if form == 1:
            return np.float64(v), False
        if form == 2:
            return np.array(v), False
        return v, False
    # Int
    if a.none_ok and src.coin(0.3):
        return None, False
    if a.names and src.coin(0.2):
        return src.pick(a.names), False
    if a.big and src.coin(0.05):
        return src.pick(a.big), True
    lo, hi = (-ew_ndim, ew_ndim - 1) if a.axis_of else (a.lo, min(a.hi, a.lo + 3))
    v = src.int(lo, hi)
    if a.pair and src.coin(0.3):
        return (v, src.int(a.lo, min(a.hi, a.lo + 3))), False
    return (np.int64(v) if src.coin(0.1) else v), False


def make_case(spec: specs.Spec, src, allow_bad: bool = True) -> Case:
    rng = np.random.default_rng(src.int(0, 2**32 - 1))
    sizes = {s: src.pick(SIZES) for s in spec.sizes}
    ew_shape = tuple(src.pick(SIZES) for _ in range(src.int(spec.min_ndim, 3)))
    kw: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    compare = True
    big = False
    opts: dict[str, Any] = {}
    for name, a in spec.args.items():
        if isinstance(a, (Choice, Flag, Int, Real)):
            opts[name], is_big = _option(src, a, len(ew_shape))
            big = big or is_big
    full = spec.full_sizes(sizes, opts)
    valid = spec.valid(full) and all(full[d] is not None for d in spec.derived)
    base_dtype = src.pick(DTYPES)
    # A binding called directly converts nothing: mostly binding-ready arrays, so that valid
    # calls stay frequent; the others must be refused (see below).
    ready = spec.strict and src.coin(0.8)
    if ready:
        base_dtype = src.pick([np.float32, np.float64])
    if spec.make_valid is not None:
        if not valid:  # its arguments only exist for valid sizes: use the defaults
            sizes, opts, big = dict(spec.sizes), specs.default_options(spec), False
            full, valid = spec.full_sizes(sizes, opts), True
        dtype = base_dtype if np.dtype(base_dtype).kind == "f" else np.float64
        made = spec.make_valid(rng, dtype, full)
        for name, a in spec.args.items():
            v = made[name]
            if isinstance(a, Array) and a.kind == "float":
                v, special = _values(src, v.shape, dtype, rng)
                compare = compare and not special
            clean[name] = v
            kw[name] = _layout(src, v) if isinstance(a, Array) and a.kind == "float" else v
    else:
        for name, a in spec.args.items():
            if isinstance(a, Array):
                if a.optional and src.coin(0.3):
                    kw[name] = clean[name] = None
                    continue
                if not valid and any(full.get(d) is None for d in a.dims or ()):
                    shape = tuple(src.pick(SIZES) for _ in a.dims)
                else:
                    shape = specs.shape_of(a, full, ew_shape)
                if np.prod([d for d in shape if d], dtype=float) > 2**22:  # a big derived size
                    shape = tuple(src.pick(SIZES) for _ in shape)
                dtype = base_dtype if ready or src.coin(0.8) else src.pick(DTYPES)
                if name in spec.float_arrays:
                    v, special = _values(src, shape, dtype, rng, a.nonneg)
                    compare = compare and not special
                else:
                    v = specs.make_array(a, shape, np.float64, rng, full)
                clean[name] = v
                kw[name] = v if ready else _layout(src, v)
            elif name in opts:
                kw[name] = clean[name] = opts[name]
    case = Case(spec, kw, compare=compare, clean=clean, dtype=_result_dtype(kw, spec))
    if big:
        case.expect, case.mutation, case.compare = (ValueError, MemoryError), "big option", False
        case.may_succeed = True
    elif not valid:
        case.expect = (ValueError,)
        case.mutation = "invalid sizes"
    elif spec.strict and not specs.binding_ready(spec, kw):
        case.expect, case.mutation = (TypeError, ValueError), "not binding-ready arrays"
    elif not spec.kw_valid(kw):
        case.expect, case.mutation = (ValueError,), "invalid combination"
    if spec.has_out and not case.expect and src.coin(0.3):
        with np.errstate(all="ignore"):
            want = np.asarray(specs.reference(spec, clean))
        kw["out"] = np.full(want.shape, 7.0, case.dtype)
    if allow_bad and src.coin(0.4) and not big:
        _mutate(case, src, rng, full)
    return case


def _mutate(case: Case, src, rng, sizes) -> None:
    spec, kw = case.spec, case.kw
    arrays = spec.float_arrays
    options = ["type"] * 3 + ["ndim"] * 2 + ["mismatch"] * 3 + ["choice", "int", "out", "out"]
    options += ["real"] * 2 if any(isinstance(a, Real) for a in spec.args.values()) else []
    elementwise = [n for n in arrays if spec.args[n].dims is None]
    options += ["shape"] * 2 if len(elementwise) > 1 else []
    options += ["huge"] if spec.overflow_sizes else []
    options += ["flag"] if any(isinstance(a, Flag) for a in spec.args.values()) else []
    options += ["forge"] * 3 if any(a.kind == "indices" for a in spec.arrays.values()) else []
    options += ["given"] if "input_shape" in spec.args else []
    int_arrays = [n for n, a in spec.arrays.items() if a.kind in ("labels", "indices")]
    options += ["masked"] if int_arrays else []
    kind = src.pick(options)
    prior = case.expect
    if kind == "type" and arrays:
        name = src.pick(arrays)
        v = np.asarray(case.clean[name] if case.clean[name] is not None else np.ones(2))
        with np.errstate(all="ignore"):
            v = v.astype(np.complex64)
        bad, exc = src.pick(
            [
                ("abc", TypeError),
                (b"\x00", TypeError),
                (["x", "y"], TypeError),
                (np.array([1.0, None], object), TypeError),
                (v, TypeError),
                ({}, TypeError),
                (object(), TypeError),
                (np.ma.array(v.real), TypeError),
                ([[1.0], [2.0, 3.0]], TypeError if spec.strict else ValueError),
            ]
            + ([] if spec.args[name].optional else [(None, TypeError)])
        )
        kw[name] = bad
        case.expect, case.mutation = (exc,), f"type {name}={type(bad).__name__}"
    elif kind == "ndim":
        names = [n for n in arrays if spec.args[n].dims is not None and kw[n] is not None]
        if not names:
            return
        name = src.pick(names)
        a = spec.args[name]
        if any(sizes.get(d) is None for d in a.dims):
            return
        nd = src.pick([len(a.dims) - 1, len(a.dims) + 1, 0])
        if nd < 0 or nd in a.other_ndims or nd == len(a.dims):
            return
        shape = tuple(sizes[d] for d in a.dims)
        shape = shape[:nd] if nd < len(shape) else shape + (2,) * (nd - len(shape))
        kw[name] = rng.standard_normal(shape)
        case.expect, case.mutation = (ValueError,), f"ndim {name}={nd}"
    elif kind == "mismatch":
        present = {s: [u for u in users if kw.get(u) is not None]
                   for s, users in spec.shared_symbols().items()}  # fmt: skip
        shared = [(s, u) for s, users in present.items() if len(users) > 1 for u in users]
        if not shared:
            return
        sym, name = src.pick(shared)
        a = spec.args[name]
        if any(sizes.get(d) is None for d in a.dims):
            return
        shape = [sizes[d] for d in a.dims]
        shape[a.dims.index(sym)] = sizes[sym] + src.int(1, 3)
        kw[name] = specs.make_array(a, tuple(shape), np.float64, rng, sizes)
        case.expect, case.mutation = (ValueError,), f"mismatch {name}.{sym}"
    elif kind == "shape":  # element-wise arrays must all have the first one's shape
        name = src.pick(elementwise[1:])
        if kw.get(name) is None:
            return
        shape = np.shape(kw[elementwise[0]])
        bad = src.pick([shape + (2,), shape[1:], shape[:-1] + (shape[-1] + 1,) if shape else (1,)])
        if bad == shape:
            return
        kw[name] = specs.make_array(spec.args[name], bad, case.dtype, rng, sizes)
        case.expect, case.mutation = (ValueError,), f"shape {name}={bad}"
    elif kind == "real":
        name = src.pick([n for n, a in spec.args.items() if isinstance(a, Real)])
        a = spec.args[name]
        bad_values = [("0.1", TypeError), (None, TypeError), (True, TypeError), (1j, TypeError),
                      (np.array([0.1]), TypeError), ([0.1], TypeError), (np.nan, ValueError),
                      (np.inf, ValueError), (-np.inf, ValueError), (10**400, ValueError)]  # fmt: skip
        if a.hi < np.inf:
            bad_values += [(a.hi + (0.0 if a.hi_open else 0.5), ValueError)]
        if a.lo > -np.inf:
            bad_values += [(a.lo - 0.5, ValueError)]
        bad, exc = src.pick(bad_values)
        kw[name] = bad
        case.expect, case.mutation = (exc,), f"real {name}={bad!r}"
    elif kind == "choice":
        names = [n for n, a in spec.args.items() if isinstance(a, Choice)]
        if not names:
            return
        name = src.pick(names)
        bad, exc = src.pick([("nope", ValueError), ("RELU", ValueError), (7, TypeError),
                             (b"relu", TypeError), (3.5, TypeError)])  # fmt: skip
        kw[name] = bad
        case.expect, case.mutation = (exc,), f"choice {name}={bad!r}"
    elif kind == "int":
        names = [n for n, a in spec.args.items() if isinstance(a, Int)]
        if not names:
            return
        name = src.pick(names)
        a = spec.args[name]
        lo = -np.ndim(kw[a.axis_of]) if a.axis_of else a.lo
        bad_values = [(2**70, (ValueError, OverflowError)), (lo - 1, (ValueError,)),
                      (-(2**63), (ValueError, OverflowError)), (1.5, (TypeError,)),
                      (True, (TypeError,)), (np.array([1, 2]), (TypeError,))]  # fmt: skip
        bad_values.append(("full", (ValueError,)) if a.names else ("1", (TypeError,)))
        if not a.none_ok:
            bad_values.append((None, (TypeError,)))
        if a.pair:
            bad_values += [((1, 1, 1), (ValueError,)), ((1, 2**64), (ValueError,)),
                           ([1, None], (TypeError,)), ((), (ValueError,))]  # fmt: skip
        bad, exc = src.pick(bad_values)
        if spec.name == "max_pool2d_backward" and name == "stride" and kw["pool_size"] is None:
            exc = (*exc, ValueError)  # "stride needs pool_size" may be checked first
        kw[name] = bad
        case.expect, case.mutation = exc, f"int {name}={bad!r}"
    elif kind == "flag":
        name = src.pick([n for n, a in spec.args.items() if isinstance(a, Flag)])
        bad = src.pick([1, 0, "True", None, np.array([True]), 1.0])
        kw[name] = bad
        case.expect, case.mutation = (TypeError,), f"flag {name}={bad!r}"
    elif kind == "forge":
        name = src.pick([n for n, a in spec.arrays.items() if a.kind == "indices"])
        idx = np.array(kw[name], copy=True)
        if not idx.size:
            return
        shape = kw["input_shape"]
        plane = shape[-2] * shape[-1]
        pos = src.int(0, idx.size - 1)
        flat = idx.reshape(-1)
        flat[pos] = src.pick([-1, plane, plane + 7, -(2**63), 2**63 - 1, 2**31, flat[pos] + 1,
                              flat[pos] + shape[-1]])  # fmt: skip
        kw[name] = idx
        # Inside the plane and (without pool_size) unchecked against its window: still valid.
        inside = 0 <= flat[pos] < plane
        if inside and kw.get("pool_size") is None:
            case.clean[name] = idx
            return
        if inside:
            case.expect, case.may_succeed = (ValueError,), True  # may still be in its window
        else:
            case.expect = (ValueError,)
        case.mutation = f"forged {name}[{pos}]={flat[pos]}"
    elif kind == "masked":  # integer labels/indices: refused like masked float arrays
        name = src.pick(int_arrays)
        v = np.asarray(kw[name])
        kw[name] = np.ma.array(v, mask=rng.random(v.shape) < 0.5)
        case.expect, case.mutation = (TypeError,), f"masked {name}"
    elif kind == "given":
        shape = tuple(kw["input_shape"])
        bad, exc = src.pick([(shape[:3], ValueError), ("abc", TypeError), (None, TypeError),
                             (shape[:-1] + (2**70,), ValueError), (shape[:-1] + (-1,), ValueError),
                             (shape[:-1] + (1.5,), TypeError), (np.array(shape), TypeError)])  # fmt: skip
        kw["input_shape"] = bad
        case.expect, case.mutation = (exc,), f"input_shape={bad!r}"
    elif kind == "out" and spec.has_out:
        with np.errstate(all="ignore"):
            try:
                want = np.asarray(specs.reference(spec, case.clean))
            except Exception:
                return
        dt = case.dtype
        other = np.float64 if dt == np.float32 else np.float32
        choices = [
            (np.full(want.shape, 7.0, other), TypeError, "dtype"),
            (np.full(want.shape + (2,), 7.0, dt), ValueError, "shape"),
            ([7.0], TypeError, "list"),
        ]
        ro = np.full(want.shape, 7.0, dt)
        ro.flags.writeable = False
        choices.append((ro, ValueError, "readonly"))
        if want.ndim and want.size and want.shape[-1] > 1:  # (an empty array is contiguous)
            choices.append(
                (np.full(want.shape[:-1] + (2 * want.shape[-1],), 7.0, dt)[..., ::2], ValueError,
                 "strided")
            )  # fmt: skip
        bad, exc, what = src.pick(choices)
        kw["out"] = bad
        case.expect, case.mutation = (exc,), f"out {what}"
    elif kind == "huge":
        big = src.pick([spec.overflow_sizes, spec.oom_sizes])
        huge = specs.huge_kwargs(spec, big)
        kw.clear()
        kw.update(huge)
        exc = (MemoryError,) if big is spec.oom_sizes else (ValueError,)
        case.expect, case.mutation = exc, "huge"
    if prior and case.expect != prior and kind != "huge":
        case.expect = tuple(case.expect) + tuple(prior)


# ----------------------------------------------------------------------------- oracle
class Finding(AssertionError):
    pass


def _snap(v: Any) -> Any:
    return np.array(v, copy=True) if isinstance(v, np.ndarray) else None


def run_case(case: Case) -> None:
    spec, kw = case.spec, case.kw
    snaps = {k: _snap(v) for k, v in kw.items()}
    error: Exception | None = None
    try:
        with np.errstate(all="ignore"):
            got = specs.call(nf, spec, kw)
    except Exception as exc:
        error = exc
    if error is not None:
        _check_error(case, error, snaps)
        return
    if case.may_succeed or spec.known_defect(case.clean):
        return
    if case.expect:
        raise Finding(f"hostile call accepted\n{case.describe()}")
    for k, s in snaps.items():
        if k != "out" and s is not None and not _same(kw[k], s):
            raise Finding(f"input {k} was modified\n{case.describe()}")
    with np.errstate(all="ignore"):
        want = specs.reference(spec, case.clean)
    got_t = got if isinstance(got, tuple) else (got,)
    want_t = want if isinstance(want, tuple) else (want,)
    if "out" in kw and kw["out"] is not None and got_t[0] is not kw["out"]:
        raise Finding(f"out= was not returned\n{case.describe()}")
    if len(got_t) != len(want_t):
        raise Finding(f"{len(got_t)} results, reference {len(want_t)}\n{case.describe()}")
    for g, w in zip(got_t, want_t):
        if w is None or g is None:
            if not (w is None and g is None):
                raise Finding(f"None result differs from the reference\n{case.describe()}")
            continue
        is_float = np.asarray(w).dtype.kind == "f"
        g, w = np.asarray(g), np.asarray(w, np.float64)
        if g.shape != w.shape:
            raise Finding(f"shape {g.shape} != reference {w.shape}\n{case.describe()}")
        if not is_float:
            if not np.array_equal(g, w):
                raise Finding(f"integer result differs from the reference\n{case.describe()}")
            continue
        if g.ndim and g.dtype != case.dtype:
            raise Finding(f"dtype {g.dtype} != {np.dtype(case.dtype)}\n{case.describe()}")
        if case.compare and g.size:
            g64 = g.astype(np.float64)
            tol = 1e-4 if case.dtype == np.float32 else 1e-9
            fin = np.isfinite(w)
            if not np.array_equal(np.isnan(g64), np.isnan(w)):
                raise Finding(f"NaN positions differ from the reference\n{case.describe()}")
            if not np.array_equal(g64[~fin & ~np.isnan(w)], w[~fin & ~np.isnan(w)]):
                raise Finding(f"infinities differ from the reference\n{case.describe()}")
            scale = 1.0 + (np.abs(w[fin]).max() if fin.any() else 0.0)
            err = np.abs(g64[fin] - w[fin]).max() if fin.any() else 0.0
            if not err <= tol * scale:
                raise Finding(f"max error {err:.3g} > {tol * scale:.3g}\n{case.describe()}")


def _check_error(case: Case, exc: Exception, snaps: dict[str, Any]) -> None:
    name, kw = case.spec.name, case.kw
    if not case.expect:
        raise Finding(f"valid call raised {type(exc).__name__}: {exc}\n{case.describe()}")
    if not isinstance(exc, case.expect):
        raise Finding(
            f"expected {[e.__name__ for e in case.expect]}, got {type(exc).__name__}: {exc}\n"
            f"{case.describe()}"
        )
    if not isinstance(exc, MemoryError) and not str(exc).startswith(f"{name}: "):
        raise Finding(f"message does not name the function: {exc!r}\n{case.describe()}")
    for k, s in snaps.items():
        if s is not None and not _same(kw[k], s):
            raise Finding(f"{k} was written by a failing call\n{case.describe()}")


def _same(a: Any, b: np.ndarray) -> bool:
    a = np.asarray(a)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=b.dtype.kind in "fc")


ALL = specs.present(nf)


def one_input(src, allow_bad: bool = True) -> Case:
    case = make_case(src.pick(ALL), src, allow_bad)
    run_case(case)
    return case


# ----------------------------------------------------------------------------- engines
def replay(case_seed: int) -> Case:
    """Re-runs one random-engine case (the seed a finding printed); returns it for inspection."""
    src = RandomSource(case_seed)
    case = make_case(src.pick(ALL), src)
    run_case(case)
    return case


def run_random(seconds: float, seed: int) -> int:
    """Random-engine loop; returns the number of executions (raises Finding on a defect)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        case_seed = seed * 1_000_003 + n
        try:
            one_input(RandomSource(case_seed))
        except Finding as f:
            raise Finding(f"{f}\nreproduce: fuzz_bindings.replay({case_seed})") from None
        n += 1
    return n


def _instrument(atheris: Any) -> None:
    """Instruments the functions of nnfast's Python layer and of this generator.

    NOTE: atheris.instrument_all() would also rewrite all of NumPy and takes minutes.
    """
    import inspect

    import nnfast._convert
    import nnfast.functional
    import nnfast.reference

    for mod in (nnfast.functional, nnfast._convert, nnfast.reference, specs, sys.modules[__name__]):
        for obj in list(vars(mod).values()):
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                atheris.instrument_func(obj)
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for member in vars(obj).values():
                    if inspect.isfunction(member):
                        atheris.instrument_func(member)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", choices=["atheris", "random"], default="atheris")
    p.add_argument("--seconds", type=float, default=60.0, help="random engine: run time")
    p.add_argument("--seed", type=int, default=0, help="random engine: first seed")
    p.add_argument("--threads", type=int, default=0, help="kernel threads (0: default)")
    args, rest = p.parse_known_args()
    if args.threads:
        nf.set_num_threads(args.threads)
    if args.engine == "random":
        t0 = time.monotonic()
        n = run_random(args.seconds, args.seed)
        print(f"fuzz(random): {n} executions in {time.monotonic() - t0:.1f} s, no finding")
        return
    import atheris

    def test_one_input(data: bytes) -> None:
        one_input(AtherisSource(data))

    # Coverage feedback from the Python layers (conversion, wrappers, this generator); the C++
    # side is checked by the oracle and, under scripts/sanitize.sh, by ASan/UBSan.
    _instrument(atheris)
    atheris.Setup([sys.argv[0], *rest], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
