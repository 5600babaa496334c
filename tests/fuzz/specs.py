"""ONE table describing every public kernel function's arguments.

The bad-input matrix (tests/test_bad_input.py), the property tests (tests/test_properties.py) and
the fuzzer (tests/fuzz/fuzz_bindings.py) all read this table, so a function added here is covered
by all three. Array arguments are described by symbolic dimensions: two arrays sharing a symbol
must agree on that size, which is how the pairwise shape mismatches are generated.

A function is tested only when ``nnfast`` exports it; ``tests/test_bad_input.py`` lists exported
functions that have no entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from nnfast import reference as ref


@dataclass(frozen=True)
class Array:
    """A float array argument (labels/indices: integer arrays)."""

    dims: tuple[str, ...] | None  # symbolic sizes; None = any shape (element-wise)
    doc: str = ""  # how the binding's ndim message spells the axes, e.g. "(batch, in_features)"
    optional: bool = False  # may be None
    other_ndims: tuple[int, ...] = ()  # other accepted ndims (e.g. dense's single sample)
    kind: str = "float"  # "float" | "labels" | "indices"


@dataclass(frozen=True)
class Choice:
    """A string option."""

    values: tuple[str, ...]
    none_ok: bool = False  # None means the default

    @property
    def default(self) -> str:
        return self.values[0]


@dataclass(frozen=True)
class Int:
    """An integer option (huge ints must give ValueError/OverflowError, never "Unable to cast")."""

    lo: int
    hi: int
    default: int


@dataclass(frozen=True)
class Out:
    """The ``out=`` argument: checked, never converted."""


@dataclass(frozen=True)
class Spec:
    name: str
    args: dict[str, Any]  # argument name -> Array | Choice | Int | Out, in positional order
    sizes: dict[str, int]  # a valid size for each symbol
    reference: Callable[..., Any]  # float64 reference taking the same keyword arguments
    # Whether a combination of sizes is valid (False: a ValueError naming the function).
    valid: Callable[[dict[str, int]], bool] = lambda s: True
    # Sizes whose output element count overflows int64 (ValueError) or cannot be allocated
    # (MemoryError); the inputs stay empty.
    overflow_sizes: dict[str, int] = field(default_factory=dict)
    oom_sizes: dict[str, int] = field(default_factory=dict)
    # Relative tolerance (float32) per unit of reduction length, for the reference comparison.
    f32_rtol: float = 2e-6

    @property
    def arrays(self) -> dict[str, Array]:
        return {k: v for k, v in self.args.items() if isinstance(v, Array)}

    @property
    def has_out(self) -> bool:
        return any(isinstance(v, Out) for v in self.args.values())

    def shared_symbols(self) -> dict[str, list[str]]:
        """symbol -> the array arguments that must agree on it (two or more)."""
        users: dict[str, list[str]] = {}
        for name, a in self.arrays.items():
            for d in a.dims or ():
                users.setdefault(d, [])
                if name not in users[d]:
                    users[d].append(name)
        return {d: names for d, names in users.items() if len(names) > 1}


ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def _elementwise(name: str, reference: Callable[..., Any]) -> Spec:
    return Spec(name, {"z": Array(None), "out": Out()}, {}, lambda z, out=None: reference(z))


SPECS: dict[str, Spec] = {}


def _add(spec: Spec) -> None:
    SPECS[spec.name] = spec


# ----------------------------------------------------------------------------- activations
_add(_elementwise("relu", ref.relu))

# ----------------------------------------------------------------------------- dense / GEMM
_add(
    Spec(
        "matmul",
        {"a": Array(("M", "K"), "(m, k)"), "b": Array(("K", "N"), "(k, n)"), "out": Out()},
        {"M": 3, "K": 4, "N": 5},
        lambda a, b, out=None: ref.matmul(a, b),
        overflow_sizes={"M": 2**40, "K": 0, "N": 2**40},
        oom_sizes={"M": 2**21, "K": 0, "N": 2**21},
    )
)
_add(
    Spec(
        "dense",
        {
            "x": Array(("B", "I"), "(batch, in_features)", other_ndims=(1,)),
            "w": Array(("I", "O"), "(in_features, out_features)"),
            "b": Array(("O",), "(out_features,)", optional=True),
            "activation": Choice(ACTIVATIONS, none_ok=True),
            "out": Out(),
        },
        {"B": 3, "I": 4, "O": 5},
        lambda x, w, b=None, activation="linear", out=None: ref.dense(
            x, w, b, activation or "linear"
        ),
        overflow_sizes={"B": 2**40, "I": 0, "O": 2**40},
        oom_sizes={"B": 2**21, "I": 0, "O": 2**21},
    )
)
_add(
    Spec(
        "dense_backward",
        {
            "x": Array(("B", "I"), "(batch, in_features)"),
            "w": Array(("I", "O"), "(in_features, out_features)"),
            "a": Array(("B", "O"), "(batch, out_features)"),
            "grad_a": Array(("B", "O"), "(batch, out_features)"),
            "activation": Choice(ACTIVATIONS, none_ok=True),
        },
        {"B": 3, "I": 4, "O": 5},
        lambda x, w, a, grad_a, activation="linear": ref.dense_backward(
            x, w, a, grad_a, activation or "linear"
        ),
        # NOTE: every output shape is also an input's shape, so no huge output from empty inputs.
    )
)


# ----------------------------------------------------------------------------- helpers
def present(nf: Any) -> list[Spec]:
    """The specs of the functions this build of nnfast exports."""
    return [s for name, s in SPECS.items() if hasattr(nf, name)]


def shape_of(arg: Array, sizes: dict[str, int], elementwise_shape: tuple[int, ...]) -> tuple:
    return elementwise_shape if arg.dims is None else tuple(sizes[d] for d in arg.dims)


def valid_kwargs(
    spec: Spec,
    rng: np.random.Generator,
    dtype: Any = np.float64,
    sizes: dict[str, int] | None = None,
    elementwise_shape: tuple[int, ...] = (3, 4),
) -> dict[str, Any]:
    """A valid call's keyword arguments (random finite data, every option at its default)."""
    sizes = {**spec.sizes, **(sizes or {})}
    kw: dict[str, Any] = {}
    for name, a in spec.args.items():
        if isinstance(a, Array):
            kw[name] = make_array(a, shape_of(a, sizes, elementwise_shape), dtype, rng, sizes)
        elif isinstance(a, Choice):
            kw[name] = a.default
        elif isinstance(a, Int):
            kw[name] = a.default
    return kw


def make_array(
    a: Array, shape: tuple, dtype: Any, rng: np.random.Generator, sizes: dict[str, int]
) -> np.ndarray:
    if a.kind == "labels":
        k = max(1, sizes.get("K", 1))
        return rng.integers(0, k, size=shape).astype(np.int64)
    return np.asarray(rng.standard_normal(shape)).astype(dtype)


def huge_kwargs(spec: Spec, sizes: dict[str, int]) -> dict[str, Any]:
    """Empty float64 inputs of huge nominal sizes (optional inputs that would not be empty: None)."""
    sizes = {**spec.sizes, **sizes}
    kw: dict[str, Any] = {}
    for name, a in spec.args.items():
        if isinstance(a, Array):
            shape = shape_of(a, sizes, ())
            if 0 not in shape:
                assert a.optional, f"{spec.name}: {name} would not be empty with {sizes}"
                kw[name] = None
            else:
                kw[name] = np.empty(shape)
        elif isinstance(a, (Choice, Int)):
            kw[name] = a.default
    return kw


def call(nf: Any, spec: Spec, kw: dict[str, Any]) -> Any:
    return getattr(nf, spec.name)(**kw)


def reference(spec: Spec, kw: dict[str, Any]) -> Any:
    """The float64 reference result for a call's keyword arguments (out= dropped)."""
    k64 = {}
    for name, v in kw.items():
        if name == "out":
            continue
        a = spec.args[name]
        if isinstance(a, Array) and v is not None and a.kind == "float":
            v = np.asarray(v, dtype=np.float64)
        k64[name] = v
    return spec.reference(**k64)
