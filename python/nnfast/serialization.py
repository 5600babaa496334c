"""Saving and loading :class:`nnfast.nn.Sequential` models: one ``.npz`` file, never pickle.

The file is a NumPy ``.npz`` archive holding

* ``__nnfast__``: a uint8 array with the UTF-8 JSON description of the model
  (``{"format": "nnfast.Sequential", "version": 1, "dtype": ..., "seed": ..., "input_shape": ...,
  "loss": ..., "layers": [{"type": "Dense", "config": {...}}, ...]}``);
* ``layer{i}.{name}``: the parameters of layer ``i`` (``W``, ``b``) in the model's dtype.

:func:`load` reads it with ``allow_pickle=False`` and rebuilds the same model; the round trip is
exact. A missing, truncated or foreign file raises an error naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

__all__ = ["load", "save"]

_FORMAT = "nnfast.Sequential"
_VERSION = 1
_META = "__nnfast__"


def _layer_types() -> dict[str, type]:
    from . import nn

    return {
        name: getattr(nn, name)
        for name in (
            "Dense",
            "Conv2D",
            "MaxPool2D",
            "Flatten",
            "ReLU",
            "Sigmoid",
            "Tanh",
            "Softmax",
        )
    }


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Writes ``model`` (a :class:`nnfast.nn.Sequential`) to ``path`` (exactly that name).

    Parameters
    ----------
    model : nnfast.nn.Sequential
    path : path-like
        Conventionally ending in ``.npz``.
    """
    types = _layer_types()
    layers = []
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        name = type(layer).__name__
        if types.get(name) is not type(layer):
            raise TypeError(f"save: layer {i} ({name}) is not a built-in nnfast.nn layer")
        layers.append({"type": name, "config": layer.config()})
        for k, v in layer.parameters().items():
            arrays[f"layer{i}.{k}"] = np.ascontiguousarray(v)
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "dtype": model.dtype.name,
        "seed": model.seed,
        "input_shape": None if model.input_shape is None else list(model.input_shape),
        "loss": model.loss,
        "layers": layers,
    }
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)


def load(path: str | os.PathLike[str]) -> Any:
    """Reads a model written by :meth:`nnfast.nn.Sequential.save`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated, not an ``.npz`` archive, not an nnfast model, or inconsistent
        (missing or mis-shaped weights). The message names the file.
    """
    from .nn import Sequential

    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"nnfast.load: no such file: {p}")

    def bad(why: str) -> ValueError:
        return ValueError(f"nnfast.load: {p} is not a valid nnfast model file: {why}")

    try:
        # NOTE: the file is opened here, not by np.load, so that it is closed even when NumPy
        # fails half-way through a truncated archive.
        with open(p, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise bad("not an .npz archive")
            with data:
                if _META not in data.files:
                    raise bad(f"no {_META} entry (not saved by nnfast)")
                arrays = {k: data[k] for k in data.files}
    except ValueError as exc:
        if str(exc).startswith("nnfast.load"):
            raise
        raise bad(str(exc)) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}") from None
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"unreadable description: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise bad("unknown format")
    if meta.get("version") != _VERSION:
        raise bad(f"unsupported version {meta.get('version')!r} (this nnfast reads {_VERSION})")
    types = _layer_types()
    layers = []
    try:
        for i, spec in enumerate(meta["layers"]):
            cls = types.get(spec["type"])
            if cls is None:
                raise bad(f"layer {i} has unknown type {spec['type']!r}")
            layers.append(cls(**spec["config"]))
        model = Sequential(layers, seed=meta["seed"], dtype=meta["dtype"])
    except (KeyError, TypeError) as exc:
        raise bad(f"malformed description: {type(exc).__name__}: {exc}") from None
    model.loss = meta.get("loss")
    if meta.get("input_shape") is not None:
        model.build(meta["input_shape"])
    expected = {
        f"layer{i}.{k}": v
        for i, layer in enumerate(model.layers)
        for k, v in layer.parameters().items()
    }
    if set(expected) != set(arrays):
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        raise bad(f"weights do not match the layers (missing {missing}, unexpected {extra})")
    for key, target in expected.items():
        src = arrays[key]
        if src.shape != target.shape or src.dtype != target.dtype:
            raise bad(
                f"{key} has shape {src.shape} dtype {src.dtype}, the layer needs "
                f"{target.shape} {target.dtype}"
            )
        target[...] = src
    return model
