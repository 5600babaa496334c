"""The Python layer's module-level imports form no cycle (nn and serialization used to import
each other), and nnfast.nn is split into short files by family."""

from __future__ import annotations

import ast
from pathlib import Path

import nnfast as nf
import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "python" / "nnfast"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path, name: str, files: dict, lazy: bool = False) -> set[str]:
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("nnfast"):
                subs = {f"{mod}.{a.name}" for a in node.names} & set(files)
                is_pkg = mod in files and files[mod].name == "__init__.py"
                # from a package: the submodules named (an extension such as _core is no file)
                out.update(subs if subs or is_pkg else {mod})
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("nnfast"))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m, stack + [m])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n, [n])
            if found:
                return found
    return None


def test_no_import_cycle():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {n: {m for m in _top_level_imports(p, n, files) if m in files and m != n}
             for n, p in files.items()}  # fmt: skip
    assert "nnfast.training" in graph["nnfast.nn.module"]  # the scan sees relative imports
    assert find_cycle(graph) is None, find_cycle(graph)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_nn_training_and_serialization_import_no_cycle_even_lazily():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    mine = {n for n in files if n.startswith(("nnfast.nn", "nnfast.training",
                                              "nnfast.serialization", "nnfast.optim"))}
    graph = {n: {m for m in _top_level_imports(files[n], n, files, lazy=True)
                 if m in mine and m != n} for n in mine}  # fmt: skip
    assert "nnfast.nn.io" in graph["nnfast.nn.module"]  # Module.save's import inside save
    assert find_cycle(graph) is None, find_cycle(graph)


def test_nn_is_a_package_of_short_files():
    files = sorted((PKG / "nn").glob("*.py"))
    assert {p.stem for p in files} >= {"module", "containers", "dense", "conv", "pool", "norm",
                                       "dropout", "activations", "io"}  # fmt: skip
    assert not (PKG / "nn.py").exists()
    assert max(len(p.read_text().splitlines()) for p in files) < 500


# ----------------------------------------------------------------------------- one list of activations
_ACT_NAME = r"(?:linear|relu|sigmoid|tanh|softmax|gelu|leaky_relu)"


def test_activation_names_are_listed_in_one_cpp_list_only():
    # No C++ file spells out a list of activation names: no array of two or more name strings
    # ({"linear", "relu", ...}) and no message naming two ('relu', 'sigmoid' ...); the names come
    # from NNFAST_ACTIVATIONS in cpp/kernels/activation_list.h (stringified), which must hold all.
    import re

    cpp = ROOT / "cpp"
    if not cpp.is_dir():
        pytest.skip("needs the source tree (cpp/)")
    array = re.compile(rf'"{_ACT_NAME}"\s*,\s*"{_ACT_NAME}"')
    message = re.compile(rf"'{_ACT_NAME}'[^\"\n]*'{_ACT_NAME}'")
    bad = []
    for path in sorted(cpp.rglob("*")):
        if path.suffix not in (".h", ".cpp"):
            continue
        text = path.read_text()
        for rx in (array, message):
            for m in rx.finditer(text):
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not bad, "activation names listed outside cpp/kernels/activation_list.h:\n" + "\n".join(bad)
    listed = re.findall(r"X\((\w+), kFuse\w+\)", (cpp / "kernels" / "activation_list.h").read_text())
    assert tuple(listed) == tuple(nf._core.ACTIVATIONS)


def test_every_listed_activation_has_a_layer_a_kernel_and_a_reference():
    from nnfast import functional as F
    from nnfast import reference as ref

    layers = {c.activation for c in vars(nf.nn).values()
              if isinstance(c, type) and issubclass(c, nf.nn.Module) and hasattr(c, "activation")
              and isinstance(c.activation, str)}  # fmt: skip
    for name in nf._core.ACTIVATIONS:
        assert name in ref._ACTIVATIONS, name
        if name != "linear":
            assert callable(getattr(F, name)), name
            assert name in layers, f"no nnfast.nn layer for {name}"
    assert set(nf._core.CONV_ACTIVATIONS) <= set(nf._core.GEMM_ACTIVATIONS) <= set(
        nf._core.ACTIVATIONS)
