"""Saving and loading Modules built from nnfast layers: one ``.npz`` file, never pickle.

The file is a NumPy ``.npz`` archive holding

* ``__nnfast__``: a uint8 array with the UTF-8 JSON description of the model
  (``{"format": "nnfast.Module", "version": 2, "dtype": ..., "seed": ..., "input_shape": ...,
  "loss": ..., "model": {"type": "Sequential", "config": {}, "layers": [...]}}``; a
  ``Residual`` has ``"block"`` and ``"shortcut"`` instead of ``"layers"``);
* every entry of the model's :meth:`~nnfast.nn.Module.state_dict` (parameters and buffers by
  dotted name, e.g. ``0.W``, ``2.block.1.running_mean``) in its own dtype.

Files of format 1 (``"format": "nnfast.Sequential"``, a flat ``layers`` list, weights named
``layer{i}.W``), written before the Module core, still load. :func:`load` reads with
``allow_pickle=False``; the round trip is exact. :func:`save` writes to a temporary file in the
same directory, flushes it and renames it over ``path``, so an interrupted save never leaves a
half-written file under that name. A missing, truncated or foreign file raises an error naming
the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from .registry import REGISTRY

__all__ = ["load", "save"]

_FORMAT, _VERSION = "nnfast.Module", 2
_FORMAT_V1 = "nnfast.Sequential"
_META = "__nnfast__"


def _describer(root: str):
    def describe(m: Any, where: str) -> dict[str, Any]:
        name = type(m).__name__
        if REGISTRY.get(name) is not type(m):
            raise TypeError(
                f"save: {'layer ' + where if where else 'the model'} ({name}) is not a built-in "
                "nnfast.nn layer; save its state_dict() instead"
            )
        return m._describe(lambda c, sub: describe(c, f"{where}.{sub}" if where else sub))

    return describe(root, "")


def _construct(d: Any) -> Any:
    cls = REGISTRY.get(d["type"]) if isinstance(d, dict) else None
    if cls is None:
        raise KeyError(f"unknown layer type {d.get('type') if isinstance(d, dict) else d!r}")
    return cls._from_description(d, _construct)


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Writes ``model`` (any Module built from nnfast layers) to ``path`` (exactly that name)."""
    p = os.fspath(path)
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "dtype": np.dtype(model.dtype).name,
        "seed": model.seed,
        "input_shape": None if model.input_shape is None else list(model.input_shape),
        "loss": model.loss,
        "model": _describer(model),
    }
    arrays = dict(model.state_dict())  # copies, contiguous (0-d arrays stay 0-d)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    tmp = os.path.join(os.path.dirname(os.path.abspath(p)), f".{os.path.basename(p)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(p: str) -> dict[str, np.ndarray]:
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
                return {k: data[k] for k in data.files}
    except ValueError as exc:
        if str(exc).startswith("nnfast.load"):
            raise
        raise bad(str(exc)) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise bad(f"{type(exc).__name__}: {exc}") from None


def load(path: str | os.PathLike[str]) -> Any:
    """Reads a model written by :meth:`nnfast.nn.Module.save` (format 2, or format 1).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated, not an ``.npz`` archive, not an nnfast model, or inconsistent
        (missing, unexpected or mis-shaped arrays). The message names the file.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"nnfast.load: no such file: {p}")

    def bad(why: str) -> ValueError:
        return ValueError(f"nnfast.load: {p} is not a valid nnfast model file: {why}")

    arrays = _read(p)
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"unreadable description: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") not in (_FORMAT, _FORMAT_V1):
        raise bad("unknown format")
    v1 = meta["format"] == _FORMAT_V1
    if meta.get("version") != (1 if v1 else _VERSION):
        raise bad(f"unsupported version {meta.get('version')!r} (this nnfast reads 1 and 2)")
    try:
        if v1:
            tree = {"type": "Sequential", "config": {}, "layers": meta["layers"]}
            renamed = {}
            for k, v in arrays.items():
                head, _, rest = k.partition(".")
                if not head.startswith("layer") or not head[5:].isdigit():
                    raise bad(f"unexpected array {k!r}")
                renamed[f"{int(head[5:])}.{rest}"] = v
            arrays = renamed
        else:
            tree = meta["model"]
        model = _construct(tree)
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.float32, np.float64):
            raise bad(f"dtype must be float32 or float64, got {dtype}")
        model.seed, model.dtype = meta["seed"], dtype
    except ValueError as exc:
        if str(exc).startswith("nnfast.load"):
            raise
        raise bad(f"malformed description: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise bad(f"malformed description: {type(exc).__name__}: {exc}") from None
    model.loss = meta.get("loss")
    if meta.get("input_shape") is not None:
        try:
            model.build(meta["input_shape"])
        except (ValueError, TypeError) as exc:
            raise bad(f"the layers do not fit its input shape: {exc}") from None
    try:
        model.load_state_dict(arrays)
    except ValueError as exc:
        raise bad(str(exc)) from None
    return model
