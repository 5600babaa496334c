"""The one base class of every layer and container: :class:`Module`.

A Module holds parameters (trainable arrays), buffers (state that is saved but not trained, such
as BatchNorm's running statistics) and child Modules, all registered by name in order. Names of
nested arrays are dotted paths (``"0.W"``, ``"2.block.0.b"``), the keys of :meth:`state_dict`.

Writing your own layer::

    class Scale(Module):
        def __init__(self, n):
            super().__init__()
            self.register_parameter("s", np.ones(n))

        def forward(self, x):
            self._x = x
            return x * self.s

        def backward(self, grad_y):
            self.grads["s"] = (grad_y * self._x).sum(axis=0)
            return grad_y * self.s

``backward(grad_y)`` returns the input gradient and stores parameter gradients in
``self.grads`` by parameter name; check it with :func:`nnfast.testing.gradcheck`.

Built-in layers create their parameters when they first see an input (``build``), from the
random generator of the model being built (seeded by its ``seed``), and keep their forward
outputs, gradients and workspaces in buffers reused per batch size (see :meth:`_scratch`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import training
from .registry import REGISTRY

__all__ = ["Module"]

# Buffers a layer keeps before starting afresh: a layer uses at most about six per batch size, so
# a training run's two sizes and a few prediction sizes fit.
_MAX_BUFFERS = 64

# The model being built: its weight generator and dtype, and counters layers draw from (Dropout
# numbers itself by order of construction in the model). None outside Module.build.
_BUILD: dict[str, Any] | None = None



def _pair(v: Any, name: str, cls: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in t
    ):
        raise TypeError(f"{cls}: {name} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def _positive_int(v: Any, name: str, cls: str, minimum: int = 1, why: str = "") -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{cls}: {name} must be an int, got {type(v).__name__}")
    if v < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{cls}: {name} must be >= {minimum}{reason}, got {v}")
    return int(v)


def _glorot_or_he(rng: Any, shape: tuple, fan_in: int, fan_out: int, act: str, dtype) -> np.ndarray:
    if act == "relu":
        w = rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))
    else:
        limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        w = rng.uniform(-limit, limit, shape)
    return np.ascontiguousarray(w, dtype=dtype)


def _build_rng() -> Any:
    return np.random.default_rng() if _BUILD is None else _BUILD["rng"]


def _build_dtype(x: np.ndarray) -> np.dtype:
    if _BUILD is not None:
        return _BUILD["dtype"]
    return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)


class Module(training.Trainable):
    """Base class of every layer and container.

    Attributes
    ----------
    training : bool
        Training mode (the default) or eval mode; set recursively by :meth:`train`/:meth:`eval`.
    grads : dict
        Gradients of the last backward pass by parameter name (arrays reused between batches).
    seed, dtype
        Used when this Module is the model being built and trained (``fit``, ``build``).
    """

    # NOTE: tests switch this off to run the same code on freshly allocated arrays (every
    # out= None), the path the reused buffers must reproduce bit for bit.
    _reuse = True
    seed: int | None = None
    dtype = np.dtype(np.float32)
    # Fusion: the activations this layer applies in its own kernel when the next layer is one.
    _absorbs: tuple[str, ...] = ()
    activation = "linear"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__module__.startswith("nnfast.nn.") and not cls.__name__.startswith("_"):
            REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        d = self.__dict__
        d["_params"] = {}
        d["_bufs"] = {}
        d["_children"] = {}
        d["grads"] = {}
        d["training"] = True
        d["_cache"] = {}
        d["_xbuf"] = {}
        d["input_shape"] = None
        d["output_shape"] = None
        d["_act"] = self.activation
        d["_ran"] = False

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_children" not in d:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if isinstance(value, Module):
            d["_params"].pop(name, None)
            d["_bufs"].pop(name, None)
            d["_children"][name] = value
        elif name in d["_params"]:
            d["_params"][name] = self._check_array(name, value, "parameter")
        elif name in d["_bufs"]:
            d["_bufs"][name] = self._check_array(name, value, "buffer")
        elif name in d["_children"]:
            del d["_children"][name]
        d[name] = value

    def __delattr__(self, name: str) -> None:
        for reg in ("_params", "_bufs", "_children"):
            self.__dict__[reg].pop(name, None)
        object.__delattr__(self, name)

    def _check_array(self, name: str, value: Any, kind: str) -> Any:
        if value is not None and not isinstance(value, np.ndarray):
            raise TypeError(
                f"{type(self).__name__}: {kind} {name!r} must be a NumPy array or None, got "
                f"{type(value).__name__}"
            )
        return value

    def _register(self, reg: str, name: str, array: Any, kind: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(
                f"{type(self).__name__}: {kind} name must be a non-empty string without '.', "
                f"got {name!r}"
            )
        others = [r for r in ("_params", "_bufs", "_children") if r != reg]
        if any(name in self.__dict__[r] for r in others) or (
            name in self.__dict__ and name not in self.__dict__[reg]
        ):
            raise ValueError(f"{type(self).__name__}: attribute {name!r} already exists")
        self.__dict__[reg][name] = self._check_array(name, array, kind)
        self.__dict__[name] = array

    def register_parameter(self, name: str, array: np.ndarray | None) -> None:
        """Registers a trainable array (``None``: a slot filled later, e.g. when built)."""
        self._register("_params", name, array, "parameter")

    def register_buffer(self, name: str, array: np.ndarray | None) -> None:
        """Registers an array that is saved in :meth:`state_dict` but not trained."""
        self._register("_bufs", name, array, "buffer")

    # ------------------------------------------------------------------ traversal
    def children(self) -> list[Module]:
        """Direct child Modules, in registration order."""
        return list(self._children.values())

    def named_children(self) -> list[tuple[str, Module]]:
        return list(self._children.items())

    def modules(self) -> list[Module]:
        """This Module and every descendant, depth first."""
        return [m for _, m in self.named_modules()]

    def named_modules(self, prefix: str = "") -> list[tuple[str, Module]]:
        out = [(prefix, self)]
        for name, c in self._children.items():
            out += c.named_modules(f"{prefix}.{name}" if prefix else name)
        return out

    def _named(self, reg: str, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        for k, v in self.__dict__[reg].items():
            if v is not None:
                yield prefix + k, self, k
        for name, c in self._children.items():
            yield from c._named(reg, f"{prefix}{name}.")

    def named_parameters(self) -> list[tuple[str, np.ndarray]]:
        """``(dotted name, array)`` for every parameter, this Module's first, then each child's."""
        return [(n, m._params[k]) for n, m, k in self._named("_params")]

    def parameters(self) -> list[np.ndarray]:
        """Every parameter array, in :meth:`named_parameters` order."""
        return [m._params[k] for _, m, k in self._named("_params")]

    def named_gradients(self) -> list[tuple[str, np.ndarray | None]]:
        """``(name, gradient)`` aligned with :meth:`named_parameters` (None before a backward)."""
        return [(n, m.grads.get(k)) for n, m, k in self._named("_params")]

    def gradients(self) -> list[np.ndarray | None]:
        return [g for _, g in self.named_gradients()]

    def named_buffers(self) -> list[tuple[str, np.ndarray]]:
        return [(n, m._bufs[k]) for n, m, k in self._named("_bufs")]

    def buffers(self) -> list[np.ndarray]:
        return [a for _, a in self.named_buffers()]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter and buffer by dotted name."""
        sd = {n: a.copy() for n, a in self.named_parameters()}
        sd.update((n, a.copy()) for n, a in self.named_buffers())
        return sd

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> None:
        """Copies ``state_dict``'s arrays into this Module's parameters and buffers.

        Every key is checked before anything is written: a missing key (with ``strict``), an
        unexpected one (with ``strict``), or an array of another shape or dtype raises
        ``ValueError`` naming the key, and the Module is left unchanged.
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(
                f"load_state_dict: state_dict must be a mapping of names to arrays, got "
                f"{type(state_dict).__name__}"
            )
        targets = dict(self.named_parameters())
        targets.update(self.named_buffers())
        if strict:
            missing = [k for k in targets if k not in state_dict]
            unexpected = [k for k in state_dict if k not in targets]
            if missing:
                raise ValueError(
                    f"load_state_dict: missing key {missing[0]!r} (missing: {missing}; "
                    f"unexpected: {unexpected})"
                )
            if unexpected:
                raise ValueError(
                    f"load_state_dict: unexpected key {unexpected[0]!r} (this model has "
                    f"{sorted(targets)})"
                )
        pairs = []
        for k, src in state_dict.items():
            if k not in targets:
                continue
            dst = targets[k]
            if not isinstance(src, np.ndarray):
                raise ValueError(
                    f"load_state_dict: {k!r} must be a NumPy array of shape {dst.shape} "
                    f"{dst.dtype}, got {type(src).__name__}"
                )
            if src.shape != dst.shape or src.dtype != dst.dtype:
                raise ValueError(
                    f"load_state_dict: {k!r} expected shape {dst.shape} dtype {dst.dtype}, got "
                    f"shape {src.shape} dtype {src.dtype}"
                )
            pairs.append((dst, src))
        for dst, src in pairs:
            dst[...] = src
        self._state_changed()

    def _state_changed(self) -> None:
        """Called after parameters change outside training (cached derived arrays go stale)."""
        for m in self.modules():
            m.__dict__.pop("_folded", None)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        """Sets training mode (``mode``) on this Module and every descendant; returns self."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        """Eval mode: BatchNorm uses its running statistics, Dropout is the identity."""
        return self.train(False)

    # ------------------------------------------------------------------ running
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define forward(x)")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """The input gradient of the last forward for the output gradient ``grad_y``; stores the
        parameter gradients in ``grads``. Raises RuntimeError before any forward."""
        return self._backward(grad_y, True)

    def _backward(self, grad: np.ndarray, need_grad_x: bool = True) -> Any:
        """The fast internal backward (built-in layers): may skip the input gradient."""
        if type(self).backward is Module.backward:
            raise NotImplementedError(f"{type(self).__name__} does not define backward(grad_y)")
        return self.backward(grad)

    def _check_ran(self) -> None:
        if not self._ran:
            raise RuntimeError(f"{self!r}: backward called before forward")

    # ------------------------------------------------------------------ building
    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape: Any) -> tuple[int, ...]:
        """Plans fusion, creates every parameter for samples of ``input_shape`` (from this
        Module's ``seed``, in ``dtype``) and records each layer's output shape."""
        global _BUILD
        shape = tuple(int(s) for s in input_shape)
        self._plan()
        was = [m.training for m in self.modules()]
        outer = _BUILD
        _BUILD = {"rng": np.random.default_rng(self.seed), "dtype": self.dtype, "seed": self.seed,
                  "counter": 0}
        for m in self.modules():
            m.__dict__["input_shape"] = m.__dict__["output_shape"] = None
        try:
            self.eval()
            y = self.forward(np.zeros((1, *shape), dtype=self.dtype))
        finally:
            _BUILD = outer
            for m, t in zip(self.modules(), was):
                m.__dict__["training"] = t
        self.__dict__["input_shape"] = shape
        self.__dict__["output_shape"] = tuple(y.shape[1:])
        self._built()
        return self.output_shape

    def _lazy_build(self, x: np.ndarray) -> None:
        """Builds a leaf layer for the batch ``x`` on its first forward."""
        self._build_leaf(tuple(int(s) for s in x.shape[1:]), _build_dtype(x), _build_rng())

    def _build_leaf(self, input_shape: tuple[int, ...], dtype: np.dtype, rng: Any) -> None:
        d = self.__dict__
        d["_cache"] = {}
        d["output_shape"] = self._output_shape(input_shape)
        d["input_shape"] = input_shape
        self._make_parameters(dtype, rng)

    def _output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def _make_parameters(self, dtype: np.dtype, rng: Any) -> None:
        """Creates (or converts to ``dtype``) this leaf's parameters and buffers."""

    def _plan(self) -> None:
        """Decides which layers fuse (containers); leaves reset to their own activation."""
        self.__dict__["_act"] = self.activation
        for c in self._children.values():
            c._plan()

    def _built(self) -> None:
        """Called after build: containers finish planning that needs shapes."""
        for c in self._children.values():
            c._built()

    def _absorb(self, nxt: Module) -> bool:
        """Fuses the following activation layer ``nxt`` into this one when declared."""
        if self._act == "linear" and nxt.activation in self._absorbs and nxt._fusable():
            self.__dict__["_act"] = nxt.activation
            return True
        return False

    def _fusable(self) -> bool:
        """Whether this layer may be absorbed into the previous one (activation layers)."""
        return False

    def _after(self, prev: Module) -> None:
        """Told which op runs before it (MaxPool2D takes over a fused ReLU's mask)."""

    def _last_leaf(self) -> Module:
        return self

    def _tail(self) -> Module | None:
        """The op producing this Module's output, which the loss may fuse with."""
        return None

    def _final_activation(self) -> str:
        return "linear"

    # ------------------------------------------------------------------ buffers
    def _scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """The layer's buffer ``name`` of this shape (batch size included) and dtype, allocated
        on first use and kept; None when reuse is off (the kernel then allocates)."""
        if not self._reuse:
            return None
        key = (name, shape)
        cache = self._cache
        buf = cache.get(key)
        if buf is None or buf.dtype != dtype:
            if len(cache) >= _MAX_BUFFERS:
                # NOTE: a cache, not an arena: calls on many different batch sizes (predict on
                # arrays of every length) start it afresh instead of growing it without bound.
                cache.clear()
            buf = np.empty(shape, dtype=dtype)
            cache[key] = buf
        return buf

    def _buffer(self, n: int, dtype: np.dtype) -> np.ndarray | None:
        """The forward output buffer for a batch of ``n``."""
        return self._scratch("y", (n, *self.output_shape), dtype)

    def _grad_x(self, x: np.ndarray) -> np.ndarray | None:
        """The input-gradient buffer for the batch ``x``."""
        return self._scratch("grad_x", x.shape, x.dtype)

    def _relu_backward(self, grad: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``grad * (y > 0)``, the mask and the product in reused buffers."""
        from .. import functional as F

        # NOTE: the mask in the float dtype (relu_derivative: exactly 1.0 or 0.0, NaN giving 0 as
        # y > 0 does) keeps the product bit-identical to grad * (y > 0) without NumPy's 32 kB
        # casting buffer for a bool operand.
        mask = F.relu_derivative(y, out=self._scratch("relu_mask", y.shape, y.dtype))
        return np.multiply(grad, mask, out=self._scratch("relu_grad", grad.shape, grad.dtype))

    # ------------------------------------------------------------------ description
    def save(self, path: Any) -> None:
        """Writes the architecture (JSON) and every parameter and buffer to one ``.npz`` file
        (see :func:`nnfast.load`); the Module must be built from nnfast layers."""
        from .io import save

        save(self, path)

    def _describe(self, describe: Any) -> dict[str, Any]:
        """This Module's entry in a saved file (containers add their children's)."""
        return {"type": type(self).__name__, "config": self.config()}

    @classmethod
    def _from_description(cls, d: dict[str, Any], construct: Any) -> Module:
        return cls(**d["config"])

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def summary(self, print_fn: Any = print) -> str:
        """A Keras-style table: each layer, its output shape and parameter count, and the total.
        Printed with ``print_fn`` (None: only returned). The model must be built."""
        if not self.built:
            raise RuntimeError(
                f"summary: {type(self).__name__} is not built yet: call build(input_shape) or fit"
            )
        rows = []
        for name, m in self.named_modules():
            if m is self and m._children:
                continue
            own = sum(a.size for a in m._params.values() if a is not None)
            depth = name.count(".")
            label = ("  " * depth) + (f"{name} " if name else "") + type(m).__name__
            shape = "?" if m.output_shape is None else str((None, *m.output_shape))
            rows.append((label, shape, f"{own:,}" if not m._children else ""))
        total = sum(a.size for a in self.parameters())
        w0 = max(len("Layer"), *(len(r[0]) for r in rows))
        w1 = max(len("Output shape"), *(len(r[1]) for r in rows))
        w2 = max(len("Params"), len(f"{total:,}"), *(len(r[2]) for r in rows))
        line = "-" * (w0 + w1 + w2 + 4)
        out = [f"{type(self).__name__}", line,
               f"{'Layer':<{w0}}  {'Output shape':<{w1}}  {'Params':>{w2}}", line]
        out += [f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}" for a, b, c in rows]
        out += [line, f"Total parameters: {total:,}"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text
