"""The built-in layer types by class name, for saving and loading (filled as each nnfast.nn
Module subclass is defined; user subclasses are not listed)."""

from __future__ import annotations

REGISTRY: dict[str, type] = {}
