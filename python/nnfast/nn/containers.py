"""Containers: :class:`Sequential` (a stack, nestable) and :class:`Residual` (``block(x) + x``).

The fusion planner lives here: a container asks each op whether it absorbs the next one
(``Module._absorb``: Dense takes any activation of its GEMM epilogue, Conv2D and BatchNorm take
ReLU) and tells each op which op runs before it (``Module._after``: MaxPool2D takes over a fused
ReLU's mask). Nested containers answer for their first and last ops, so fusion crosses their
boundaries; a Residual answers for nothing (its input and output each have two uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import module as _m
from .module import Module

__all__ = ["Residual", "Sequential"]


def _record_shapes(m: Module, x: np.ndarray, y: np.ndarray) -> None:
    if _m._BUILD is not None:
        m.__dict__["input_shape"] = tuple(x.shape[1:])
        m.__dict__["output_shape"] = tuple(y.shape[1:])


class Sequential(Module):
    """Layers applied one after the other; itself a Module, so it nests.

    Parameters
    ----------
    layers : sequence of Module
        Named ``"0"``, ``"1"``, ... in :meth:`named_parameters` and :meth:`state_dict`.
    seed : int, optional
        Seeds weight initialisation, shuffling and dropout masks when this is the model being
        built and trained; the same seed gives identical weights after identical training.
    dtype : {"float32", "float64"}
        Parameter and computation dtype (inputs are converted to it).
    """

    def __init__(
        self, layers: Sequence[Module], seed: int | None = None, dtype: Any = "float32"
    ) -> None:
        super().__init__()
        if isinstance(layers, Module):
            raise TypeError("Sequential: layers must be a list of layers, got a single Module")
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: layer {i} must be an nnfast.nn layer, got {type(layer).__name__}"
                )
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("Sequential: the same layer object appears twice")
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self.layers = layers
        self.seed = seed
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"Sequential: dtype must be float32 or float64, got {self.dtype}")
        self._ops: list[Module] | None = None

    def __repr__(self) -> str:
        inner = ",\n".join("    " + repr(layer).replace("\n", "\n    ") for layer in self.layers)
        return f"Sequential([\n{inner}\n], seed={self.seed}, dtype={self.dtype.name!r})"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def _describe(self, describe: Any) -> dict[str, Any]:
        d = super()._describe(describe)
        d["layers"] = [describe(c, str(i)) for i, c in enumerate(self.layers)]
        return d

    @classmethod
    def _from_description(cls, d: dict[str, Any], construct: Any) -> Module:
        return cls([construct(c) for c in d["layers"]])

    # ------------------------------------------------------------------ planning
    def _plan(self) -> None:
        super()._plan()
        ops: list[Module] = []
        for layer in self.layers:
            if ops and ops[-1]._absorb(layer):
                continue
            ops.append(layer)
        for k in range(1, len(ops)):
            ops[k]._after(ops[k - 1])
        self._ops = ops

    def _absorb(self, nxt: Module) -> bool:
        return self._ops[-1]._absorb(nxt)

    def _after(self, prev: Module) -> None:
        self._ops[0]._after(prev)

    def _last_leaf(self) -> Module:
        return self._ops[-1]._last_leaf()

    def _tail(self) -> Module | None:
        return self._ops[-1]._tail()

    def _final_activation(self) -> str:
        return self._ops[-1]._final_activation()

    # ------------------------------------------------------------------ passes
    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._ops is None:
            self._plan()
        x0 = x
        for op in self._ops:
            x = op.forward(x)
        self._ran = True
        if _m._BUILD is not None:
            _record_shapes(self, x0, x)
            shape = self.input_shape
            for layer in self.layers:  # fused-away layers: the shape of what they would output
                if layer.output_shape is None:
                    layer.__dict__["input_shape"] = layer.__dict__["output_shape"] = shape
                shape = layer.output_shape
        return x

    def _backward(self, grad: np.ndarray, need_grad_x: bool = True) -> Any:
        self._check_ran()
        ops = self._ops
        for k in range(len(ops) - 1, -1, -1):
            grad = ops[k]._backward(grad, need_grad_x or k > 0)
        return grad


class Residual(Module):
    """``block(x) + shortcut(x)``, the shortcut the identity when None (a ResNet block).

    The two outputs must have the same shape (a ``ValueError`` when built otherwise); the
    backward sums the gradients of both paths.
    """

    def __init__(self, block: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        for name, m in (("block", block), ("shortcut", shortcut)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"Residual: {name} must be an nnfast.nn Module, got "
                                f"{type(m).__name__}")
        if block is None:
            raise TypeError("Residual: block must be an nnfast.nn Module, got None")
        self.block = block
        if shortcut is not None:
            self.shortcut = shortcut
        self.__dict__["_shortcut"] = shortcut

    def __repr__(self) -> str:
        inner = repr(self.block).replace("\n", "\n    ")
        sc = "" if self._shortcut is None else ",\n    shortcut=" + repr(self._shortcut).replace(
            "\n", "\n    ")
        return f"Residual(\n    {inner}{sc}\n)"

    def _describe(self, describe: Any) -> dict[str, Any]:
        d = super()._describe(describe)
        d["block"] = describe(self.block, "block")
        sc = self._shortcut
        d["shortcut"] = None if sc is None else describe(sc, "shortcut")
        return d

    @classmethod
    def _from_description(cls, d: dict[str, Any], construct: Any) -> Module:
        sc = d.get("shortcut")
        return cls(construct(d["block"]), None if sc is None else construct(sc))

    def forward(self, x: np.ndarray) -> np.ndarray:
        yb = self.block.forward(x)
        ys = x if self._shortcut is None else self._shortcut.forward(x)
        if yb.shape != ys.shape:
            raise ValueError(
                f"Residual: the block's output has samples of shape {tuple(yb.shape[1:])} but the "
                f"shortcut's has {tuple(ys.shape[1:])}; they must match to be added"
            )
        self.__dict__["_ran"] = True
        if self.output_shape is None or _m._BUILD is not None:
            _record_shapes(self, x, yb)
        return np.add(yb, ys, out=self._buffer(x.shape[0], yb.dtype))

    def _backward(self, grad: np.ndarray, need_grad_x: bool = True) -> Any:
        self._check_ran()
        gb = self.block._backward(grad, need_grad_x)
        gs = grad if self._shortcut is None else self._shortcut._backward(grad, need_grad_x)
        if not need_grad_x:
            return None
        out = self._scratch("grad_x", gb.shape, gb.dtype)
        return np.add(gb, gs, out=out)
