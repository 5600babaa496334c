"""Saving and loading models: see :mod:`nnfast.nn.io` (kept here for ``nnfast.serialization``)."""

from __future__ import annotations

from .nn.io import load, save

__all__ = ["load", "save"]
