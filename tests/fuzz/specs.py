"""ONE table describing every public kernel function's arguments.

The bad-input matrix (tests/test_bad_input.py), the property tests (tests/test_properties.py) and
the fuzzer (tests/fuzz/fuzz_bindings.py) all read this table, so a function added here is covered
by all three. Array arguments are described by symbolic dimensions: two arrays sharing a symbol
must agree on that size, which is how the pairwise shape mismatches are generated.

A function is tested only when ``nnfast`` exports it; ``tests/test_bad_input.py`` lists exported
functions that have no entry here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from nnfast import _core
from nnfast import reference as ref


@dataclass(frozen=True)
class Array:
    """A float array argument (labels/indices: integer arrays)."""

    dims: tuple[str, ...] | None  # symbolic sizes; None = any shape (element-wise)
    doc: str = ""  # how the binding's ndim message spells the axes, e.g. "(batch, in_features)"
    optional: bool = False  # may be None
    other_ndims: tuple[int, ...] = ()  # other accepted ndims (e.g. dense's single sample)
    kind: str = "float"  # "float" | "labels" | "indices" | "state" (updated in place)
    nonneg: bool = False  # valid values are >= 0


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
    """An integer option, or a pair of them (``pair``), or one of ``names`` (conv's padding).

    ``axis_of``: the range is the axes of that (element-wise) array, ``[-ndim, ndim - 1]``
    (``lo``/``hi`` are for the default 2-D shape). ``big``: valid values large enough that the
    call may legitimately fail with ValueError/MemoryError (the fuzzer checks for clean errors).
    """

    lo: int
    hi: int
    default: Any
    pair: bool = False
    names: tuple[str, ...] = ()
    none_ok: bool = False
    axis_of: str | None = None
    big: tuple[int, ...] = ()


@dataclass(frozen=True)
class Real:
    """A real option: a Python float or int or a NumPy real scalar (bool is a TypeError).

    Valid values are finite and in ``[lo, hi]`` (``[lo, hi)`` with ``hi_open``).
    """

    default: float
    lo: float = -np.inf
    hi: float = np.inf
    hi_open: bool = False


@dataclass(frozen=True)
class Flag:
    """A bool option (a Python bool or numpy.bool_; anything else is a TypeError)."""

    default: bool = False


@dataclass(frozen=True)
class Given:
    """An argument the spec's ``make_valid`` builds (e.g. max_pool2d_backward's input_shape)."""


@dataclass(frozen=True)
class Out:
    """The ``out=`` argument: checked, never converted."""


@dataclass(frozen=True)
class Outs:
    """A tuple ``out=(...)`` for a function with several results (NumPy's multi-output ufunc
    convention): one entry per name, each an array or None. Checked, never converted; the generic
    single-``out`` tests skip it (tests/test_backward_out.py covers it)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    args: dict[str, Any]  # argument name -> Array | Choice | Int | Out, in positional order
    sizes: dict[str, int]  # a valid size for each symbol
    reference: Callable[..., Any]  # float64 reference taking the same keyword arguments
    # Whether a combination of sizes and option values is valid (False: a ValueError naming the
    # function). It gets one dict: the sizes and the options by name.
    valid: Callable[[dict[str, Any]], bool] = lambda s: True
    # Symbols computed from the others (e.g. a convolution's output height).
    derived: dict[str, Callable[[dict[str, Any]], int]] = field(default_factory=dict)
    # Builds a valid call's keyword arguments itself (rng, dtype, sizes) when the arguments
    # depend on each other beyond shapes (pooling indices); None: the generic builder.
    make_valid: Callable[..., dict[str, Any]] | None = None
    # Minimum ndim of element-wise arrays.
    min_ndim: int = 0
    # Result arrays that are views of an input and may keep its layout (flatten).
    view: bool = False
    # Calls whose values are not compared (an open defect, named in the string), or None.
    known_defect: Callable[[dict[str, Any]], str | None] = lambda kw: None
    # Whether the call's arguments are valid beyond sizes and options (False: a ValueError).
    kw_valid: Callable[[dict[str, Any]], bool] = lambda kw: True
    # Sizes whose output element count overflows int64 (ValueError) or cannot be allocated
    # (MemoryError); the inputs stay empty.
    overflow_sizes: dict[str, int] = field(default_factory=dict)
    oom_sizes: dict[str, int] = field(default_factory=dict)
    # Relative tolerance (float32) per unit of reduction length, for the reference comparison.
    f32_rtol: float = 2e-6
    # "_core": a binding called directly (no conversion: every array must already be a
    # C-contiguous, aligned, native float32/float64 ndarray of the first array's dtype).
    module: str = ""
    # In-place functions: the "state" arrays they update, whose new values are the result
    # (the reference returns them in this order). See call().
    inplace: tuple[str, ...] = ()

    @property
    def arrays(self) -> dict[str, Array]:
        return {k: v for k, v in self.args.items() if isinstance(v, Array)}

    @property
    def has_out(self) -> bool:
        return any(isinstance(v, Out) for v in self.args.values())

    @property
    def outs(self) -> Outs | None:
        """The tuple ``out=`` of a multi-result function, or None."""
        return next((v for v in self.args.values() if isinstance(v, Outs)), None)

    def shared_symbols(self) -> dict[str, list[str]]:
        """symbol -> the array arguments that must agree on it (two or more, or a derived one)."""
        users: dict[str, list[str]] = {}
        for name, a in self.arrays.items():
            for d in a.dims or ():
                users.setdefault(d, [])
                if name not in users[d]:
                    users[d].append(name)
        return {d: names for d, names in users.items() if len(names) > 1 or d in self.derived}

    @property
    def float_arrays(self) -> list[str]:
        """The float array arguments (inputs and in-place state)."""
        return [k for k, a in self.arrays.items() if a.kind in ("float", "state")]

    @property
    def strict(self) -> bool:
        return self.module == "_core"

    def options(self, kw: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if not isinstance(self.args.get(k), (Array, Out, Outs))}

    def full_sizes(self, sizes: dict[str, int], opts: dict[str, Any]) -> dict[str, Any]:
        """sizes plus option values plus the derived symbols (None where undefined)."""
        full: dict[str, Any] = {**self.sizes, **sizes, **opts}
        for d, f in self.derived.items():
            try:
                full[d] = f(full)
            except (ZeroDivisionError, ValueError):
                full[d] = None
        return full


# The activations dense and conv2d fuse, from the kernels' one list.
ACTIVATIONS = tuple(_core.GEMM_ACTIVATIONS)
CONV_ACTIVATIONS = tuple(_core.CONV_ACTIVATIONS)


def _elementwise(name: str, reference: Callable[..., Any]) -> Spec:
    return Spec(name, {"z": Array(None), "out": Out()}, {}, lambda z, out=None: reference(z))


SPECS: dict[str, Spec] = {}


def _add(spec: Spec) -> None:
    SPECS[spec.name] = spec


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ----------------------------------------------------------------------------- activations
_add(_elementwise("relu", ref.relu))
_add(_elementwise("sigmoid", ref.sigmoid))
_add(_elementwise("tanh", ref.tanh))
_add(_elementwise("relu_derivative", ref.relu_derivative))
_add(_elementwise("sigmoid_derivative", ref.sigmoid_derivative))
_add(_elementwise("tanh_derivative", ref.tanh_derivative))
_add(_elementwise("gelu", ref.gelu))
_add(
    Spec(
        "gelu_backward",
        {"grad_y": Array(None), "z": Array(None), "out": Out()},
        {},
        lambda grad_y, z, out=None: ref.gelu_backward(grad_y, z),
    )
)
_add(
    Spec(
        "leaky_relu",
        {"z": Array(None), "negative_slope": Real(0.01), "out": Out()},
        {},
        lambda z, negative_slope=0.01, out=None: ref.leaky_relu(z, negative_slope),
    )
)
_add(
    Spec(
        "leaky_relu_backward",
        {"grad_y": Array(None), "z": Array(None), "negative_slope": Real(0.01), "out": Out()},
        {},
        lambda grad_y, z, negative_slope=0.01, out=None: ref.leaky_relu_backward(
            grad_y, z, negative_slope
        ),
    )
)
_add(
    Spec(
        "softmax",
        {"z": Array(None), "axis": Int(-2, 1, -1, axis_of="z"), "out": Out()},
        {},
        lambda z, axis=-1, out=None: ref.softmax(z, axis),
        min_ndim=1,
    )
)


# ----------------------------------------------------------------------------- losses
def _loss(name: str, a: str, b: str, reference: Callable[..., Any], out: bool) -> Spec:
    args: dict[str, Any] = {a: Array(None), b: Array(None)}
    if out:
        args["out"] = Out()
    return Spec(name, args, {}, lambda out=None, **kw: reference(kw[a], kw[b]))


_add(_loss("mse_loss", "pred", "target", ref.mse_loss, False))
_add(_loss("mse_loss_grad", "pred", "target", ref.mse_loss_grad, True))
_add(_loss("binary_cross_entropy", "prob", "target", ref.binary_cross_entropy, False))
_add(_loss("binary_cross_entropy_grad", "prob", "target", ref.binary_cross_entropy_grad, True))
_add(
    Spec(
        "softmax_cross_entropy",
        {"logits": Array(("N", "K"), "(N, K)"), "labels": Array(("N",), "(N,)", kind="labels")},
        {"N": 4, "K": 3},
        lambda logits, labels: ref.softmax_cross_entropy(logits, labels),
        valid=lambda s: s["K"] >= 1,
    )
)

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
            "out": Outs(("grad_x", "grad_w", "grad_b")),
        },
        {"B": 3, "I": 4, "O": 5},
        lambda x, w, a, grad_a, activation="linear", out=None: ref.dense_backward(
            x, w, a, grad_a, activation or "linear"
        ),
        # NOTE: every output shape is also an input's shape, so no huge output from empty inputs.
    )
)


# ----------------------------------------------------------------------------- convolution
def _conv_out(s: dict[str, Any], axis: int) -> int:
    size, k = (s["H"], s["KH"]) if axis == 0 else (s["W"], s["KW"])
    pad = s.get("padding", 0)
    stride = _pair(s.get("stride", 1))[axis]
    if k < 1 or stride < 1:
        raise ValueError("no output")
    if pad == "same":
        if size < 1:  # the padded input (k - 1 wider) is still narrower than the kernel
            raise ValueError("no output")
        return size
    p = 0 if pad == "valid" else _pair(pad)[axis]
    if size + 2 * p < k:
        raise ValueError("no output")
    return (size + 2 * p - k) // stride + 1


def _conv_valid(s: dict[str, Any]) -> bool:
    if s.get("padding") == "same" and _pair(s.get("stride", 1)) != (1, 1):
        return False
    try:
        _conv_out(s, 0), _conv_out(s, 1)
    except ValueError:
        return False
    return True


CONV_X = Array(("N", "C", "H", "W"), "(N, C, H, W) or 2 dims (H, W)", other_ndims=(2,))
CONV_W = Array(("O", "C", "KH", "KW"), "(out_channels, in_channels, kh, kw)")
STRIDE = Int(1, 2**63 - 1, 1, pair=True, big=(2**40, 2**63 - 1))
PADDING = Int(0, 2**40, 0, pair=True, names=("valid", "same"), big=(2**20, 2**40))
CONV_SIZES = {"N": 2, "C": 3, "H": 7, "W": 6, "O": 4, "KH": 3, "KW": 2}
CONV_DERIVED = {"HO": lambda s: _conv_out(s, 0), "WO": lambda s: _conv_out(s, 1)}

_add(
    Spec(
        "conv2d",
        {
            "x": CONV_X,
            "w": CONV_W,
            "b": Array(("O",), "(out_channels,)", optional=True),
            "stride": STRIDE,
            "padding": PADDING,
            "out": Out(),
            "activation": Choice(CONV_ACTIVATIONS, none_ok=True),
        },
        CONV_SIZES,
        lambda x, w, b=None, stride=1, padding=0, out=None, activation="linear": ref._ACTIVATIONS[
            activation or "linear"
        ](ref.conv2d(x, w, b, stride, padding)),
        valid=_conv_valid,
        derived=CONV_DERIVED,
        overflow_sizes={"N": 2**30, "C": 0, "H": 2**12, "W": 2**12, "O": 2**12},
        oom_sizes={"N": 2**10, "C": 0, "H": 2**10, "W": 2**10, "O": 2**10},
    )
)
_add(
    Spec(
        "conv2d_backward",
        {
            "x": CONV_X,
            "w": CONV_W,
            "grad_y": Array(("N", "O", "HO", "WO"), "(N, out_channels, Ho, Wo)"),
            "stride": STRIDE,
            "padding": PADDING,
            "need_grad_x": Flag(True),
            "out": Outs(("grad_x", "grad_w", "grad_b")),
        },
        CONV_SIZES,
        lambda x, w, grad_y, stride=1, padding=0, need_grad_x=True, out=None: (
            lambda r: r if need_grad_x else (None, *r[1:])
        )(ref.conv2d_backward(x, w, grad_y, stride, padding)),
        valid=_conv_valid,
        derived=CONV_DERIVED,
    )
)


# ----------------------------------------------------------------------------- pooling
def _pool_out(s: dict[str, Any], axis: int) -> int:
    size = s["H"] if axis == 0 else s["W"]
    pool = s.get("pool_size")
    p = _pair(2 if pool is None else pool)[axis]  # (backward without pool_size: any window)
    st = s.get("stride")
    st = p if st is None else _pair(st)[axis]
    if p > size or p < 1 or st < 1:
        raise ValueError("no output")
    return (size - p) // st + 1


def _pool_valid(s: dict[str, Any]) -> bool:
    try:
        _pool_out(s, 0), _pool_out(s, 1)
    except ValueError:
        return False
    return True


def _pool_backward_kwargs(rng: np.random.Generator, dtype: Any, sizes: dict[str, Any]) -> dict:
    shape = (sizes["N"], sizes["C"], sizes["H"], sizes["W"])
    x = rng.standard_normal(shape)
    pool = sizes.get("pool_size")
    stride = sizes.get("stride") if pool is not None else None  # (stride needs pool_size)
    _, idx = ref.max_pool2d(x, 2 if pool is None else pool, stride, return_indices=True)
    return {
        "grad_y": np.asarray(rng.standard_normal(idx.shape)).astype(dtype),
        "indices": idx,
        "input_shape": shape,
        "pool_size": pool,
        "stride": stride,
        "out": None,
    }


POOL_SIZES = {"N": 2, "C": 3, "H": 7, "W": 6}
POOL_DERIVED = {"HO": lambda s: _pool_out(s, 0), "WO": lambda s: _pool_out(s, 1)}
_add(
    Spec(
        "max_pool2d",
        {
            "x": Array(("N", "C", "H", "W"), "(N, C, H, W) or 2 dims (H, W)", other_ndims=(2,)),
            "pool_size": Int(1, 2**63 - 1, 2, pair=True, big=(2**40,)),
            "stride": Int(1, 2**63 - 1, None, pair=True, none_ok=True, big=(2**40,)),
            "return_indices": Flag(False),
        },
        POOL_SIZES,
        lambda x, pool_size=2, stride=None, return_indices=False: ref.max_pool2d(
            x, pool_size, stride, return_indices
        ),
        valid=_pool_valid,
        derived=POOL_DERIVED,
    )
)
_add(
    Spec(
        "max_pool2d_backward",
        {
            "grad_y": Array(("N", "C", "HO", "WO"), "like input_shape"),
            "indices": Array(("N", "C", "HO", "WO"), "like input_shape", kind="indices"),
            "input_shape": Given(),
            "pool_size": Int(1, 2**63 - 1, 2, pair=True, none_ok=True),
            "stride": Int(1, 2**63 - 1, None, pair=True, none_ok=True),
            "out": Out(),
        },
        POOL_SIZES,
        lambda grad_y, indices, input_shape, pool_size=None, stride=None, out=None: (
            ref.max_pool2d_backward(grad_y, indices, input_shape)
        ),
        valid=_pool_valid,
        derived=POOL_DERIVED,
        make_valid=_pool_backward_kwargs,
    )
)


def _avg_backward_kwargs(rng: np.random.Generator, dtype: Any, sizes: dict[str, Any]) -> dict:
    shape = (sizes["N"], sizes["C"], sizes["H"], sizes["W"])
    pool, stride = sizes.get("pool_size", 2), sizes.get("stride")
    gy_shape = ref.avg_pool2d(np.zeros(shape), pool, stride).shape
    return {
        "grad_y": np.asarray(rng.standard_normal(gy_shape)).astype(dtype),
        "input_shape": shape,
        "pool_size": pool,
        "stride": stride,
        "out": None,
    }


_add(
    Spec(
        "avg_pool2d",
        {
            "x": Array(("N", "C", "H", "W"), "(N, C, H, W) or 2 dims (H, W)", other_ndims=(2,)),
            "pool_size": Int(1, 2**63 - 1, 2, pair=True, big=(2**40,)),
            "stride": Int(1, 2**63 - 1, None, pair=True, none_ok=True, big=(2**40,)),
            "out": Out(),
        },
        POOL_SIZES,
        lambda x, pool_size=2, stride=None, out=None: ref.avg_pool2d(x, pool_size, stride),
        valid=_pool_valid,
        derived=POOL_DERIVED,
    )
)
_add(
    Spec(
        "avg_pool2d_backward",
        {
            "grad_y": Array(("N", "C", "HO", "WO"), "like input_shape"),
            "input_shape": Given(),
            "pool_size": Int(1, 2**63 - 1, 2, pair=True),
            "stride": Int(1, 2**63 - 1, None, pair=True, none_ok=True),
            "out": Out(),
        },
        POOL_SIZES,
        lambda grad_y, input_shape, pool_size=2, stride=None, out=None: (
            ref.avg_pool2d_backward(grad_y, input_shape, pool_size, stride)
        ),
        valid=_pool_valid,
        derived=POOL_DERIVED,
        make_valid=_avg_backward_kwargs,
    )
)


def _global_backward_kwargs(rng: np.random.Generator, dtype: Any, sizes: dict[str, Any]) -> dict:
    shape = (sizes["N"], sizes["C"], sizes["H"], sizes["W"])
    return {
        "grad_y": np.asarray(rng.standard_normal(shape[:2])).astype(dtype),
        "input_shape": shape,
        "out": None,
    }


_add(
    Spec(
        "global_avg_pool2d",
        {"x": Array(("N", "C", "H", "W"), "(N, C, H, W)"), "out": Out()},
        POOL_SIZES,
        lambda x, out=None: ref.global_avg_pool2d(x),
    )
)
_add(
    Spec(
        "global_avg_pool2d_backward",
        {"grad_y": Array(("N", "C"), "(N, C)"), "input_shape": Given(), "out": Out()},
        POOL_SIZES,
        lambda grad_y, input_shape, out=None: ref.global_avg_pool2d_backward(grad_y, input_shape),
        make_valid=_global_backward_kwargs,
    )
)


# ----------------------------------------------------------------------------- dropout
DROPOUT_P = Real(0.5, 0.0, 1.0, hi_open=True)
SEED = Int(0, 2**64 - 1, 0)
_add(
    Spec(
        "dropout",
        {"x": Array(None), "p": DROPOUT_P, "seed": SEED, "out": Out()},
        {},
        lambda x, p=0.5, seed=0, out=None: ref.dropout(x, p, seed),
    )
)
_add(
    Spec(
        "dropout_backward",
        {"grad_y": Array(None), "p": DROPOUT_P, "seed": SEED, "out": Out()},
        {},
        lambda grad_y, p=0.5, seed=0, out=None: ref.dropout_backward(grad_y, p, seed),
    )
)


# ----------------------------------------------------------------------------- optimizers
# The in-place updates behind nnfast.optim, called as nnfast._core.sgd_step / adam_step.
def _sgd_reference(param, grad, velocity=None, lr=0.1, momentum=0.0):
    if velocity is None:
        return param - lr * grad, None
    return ref.sgd_step(param, grad, velocity, lr, momentum)


_add(
    Spec(
        "sgd_step",
        {
            "param": Array(None, kind="state"),
            "grad": Array(None),
            "velocity": Array(None, optional=True, kind="state"),
            "lr": Real(0.1),
            "momentum": Real(0.0),
        },
        {},
        _sgd_reference,
        kw_valid=lambda kw: kw.get("velocity") is not None or not kw.get("momentum"),
        module="_core",
        inplace=("param", "velocity"),
    )
)
_add(
    Spec(
        "adam_step",
        {
            "param": Array(None, kind="state"),
            "grad": Array(None),
            "m": Array(None, kind="state"),
            "v": Array(None, kind="state", nonneg=True),  # (a second moment)
            "lr": Real(1e-3),
            "beta1": Real(0.9, 0.0, 1.0, hi_open=True),
            "beta2": Real(0.999, 0.0, 1.0, hi_open=True),
            "eps": Real(1e-8, 0.0),
            "step": Int(1, 2**62, 1),
        },
        {},
        lambda param, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1: ref.adam_step(
            param, grad, m, v, step, lr, beta1, beta2, eps
        ),
        module="_core",
        inplace=("param", "m", "v"),
    )
)


# ----------------------------------------------------------------------------- helpers
def function(nf: Any, spec: Spec) -> Any:
    """The function a spec describes (nnfast.NAME, or nnfast._core.NAME for a binding)."""
    return getattr(nf._core if spec.module == "_core" else nf, spec.name, None)


def present(nf: Any) -> list[Spec]:
    """The specs of the functions this build of nnfast exports."""
    return [s for s in SPECS.values() if function(nf, s) is not None]


def shape_of(arg: Array, sizes: dict[str, Any], elementwise_shape: tuple[int, ...]) -> tuple:
    return elementwise_shape if arg.dims is None else tuple(sizes[d] for d in arg.dims)


def default_options(spec: Spec) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for name, a in spec.args.items():
        if isinstance(a, Choice):
            opts[name] = a.default
        elif isinstance(a, Int):
            opts[name] = a.default
        elif isinstance(a, (Flag, Real)):
            opts[name] = a.default
    return opts


def valid_kwargs(
    spec: Spec,
    rng: np.random.Generator,
    dtype: Any = np.float64,
    sizes: dict[str, int] | None = None,
    elementwise_shape: tuple[int, ...] = (3, 4),
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A valid call's keyword arguments (random finite data, options at their defaults)."""
    opts = {**default_options(spec), **(options or {})}
    full = spec.full_sizes(sizes or {}, opts)
    if spec.make_valid is not None:
        return spec.make_valid(rng, dtype, full)
    kw: dict[str, Any] = {}
    for name, a in spec.args.items():
        if isinstance(a, Array):
            kw[name] = make_array(a, shape_of(a, full, elementwise_shape), dtype, rng, full)
        elif name in opts:
            kw[name] = opts[name]
    return kw


def make_array(
    a: Array, shape: tuple, dtype: Any, rng: np.random.Generator, sizes: dict[str, Any]
) -> np.ndarray:
    if a.kind == "labels":
        k = max(1, sizes.get("K", 1))
        return rng.integers(0, k, size=shape).astype(np.int64)
    if a.kind == "indices":
        return np.zeros(shape, np.int64)
    v = np.asarray(rng.standard_normal(shape))
    return np.asarray(np.abs(v) if a.nonneg else v).astype(dtype)


def huge_kwargs(spec: Spec, sizes: dict[str, int]) -> dict[str, Any]:
    """Empty float64 inputs of huge nominal sizes (optional inputs that would not be empty: None)."""
    full = spec.full_sizes(sizes, default_options(spec))
    kw: dict[str, Any] = dict(default_options(spec))
    for name, a in spec.args.items():
        if isinstance(a, Array):
            shape = shape_of(a, full, ())
            if 0 not in shape:
                assert a.optional, f"{spec.name}: {name} would not be empty with {sizes}"
                kw[name] = None
            else:
                kw[name] = np.empty(shape)
    return kw


def _is_state(v: Any) -> bool:
    """An array an in-place function may update: exactly what its binding accepts."""
    return (
        type(v) is np.ndarray
        and v.dtype in (np.float32, np.float64)
        and v.dtype.isnative
        and v.flags.c_contiguous
        and v.flags.aligned
        and v.flags.writeable
    )


def binding_ready(spec: Spec, kw: dict[str, Any]) -> bool:
    """Whether a strict spec's arrays are all what its binding accepts (else it must raise)."""
    first = None
    for name in spec.float_arrays:
        v = kw.get(name)
        if v is None and spec.args[name].optional:
            continue
        ok = type(v) is np.ndarray and v.dtype in (np.float32, np.float64) and v.dtype.isnative
        if not (ok and v.flags.c_contiguous and v.flags.aligned):
            return False
        if spec.args[name].kind == "state" and not v.flags.writeable:
            return False
        if first is None:
            first = v
        elif v.dtype != first.dtype or v.shape != first.shape:
            return False
    return True


def call(nf: Any, spec: Spec, kw: dict[str, Any]) -> Any:
    """Calls the function; an in-place one returns the new values of its state arrays.

    NOTE: an in-place function updates copies of its state arrays (when they are acceptable
    ones; anything else is passed as it is, to be refused), so the caller's kw keeps the values
    the reference starts from, as for every other function. tests/test_optim.py checks that the
    caller's own arrays are the ones updated.
    """
    f = function(nf, spec)
    if not spec.inplace:
        return f(**kw)
    kw = {k: (v.copy() if k in spec.inplace and _is_state(v) else v) for k, v in kw.items()}
    result = f(**kw)
    assert result is None, f"{spec.name} returned {result!r}, not None"
    return tuple(kw.get(k) for k in spec.inplace)


def reference(spec: Spec, kw: dict[str, Any]) -> Any:
    """The float64 reference result for a call's keyword arguments (out= dropped)."""
    k64 = {}
    for name, v in kw.items():
        if name == "out":
            continue
        a = spec.args[name]
        if isinstance(a, Array) and v is not None and a.kind in ("float", "state"):
            v = np.asarray(v, dtype=np.float64)
        k64[name] = v
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # NOTE: the reference's own warnings (mean of an empty array, log of a negative
        # probability) are not what is under test; its NaNs are.
        warnings.simplefilter("ignore", RuntimeWarning)
        return spec.reference(**k64)
