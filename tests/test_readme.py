"""Every ```python block of the README (and of docs/*.md) runs, and every name it promises exists.

The blocks of one file run in order in one namespace (a later sample may use an earlier one's
names, as a reader would), in a temporary folder where ``mnist`` holds MNIST IDX files: the real
ones when present (``NNFAST_MNIST_DIR``, default ``/work/shared/data/mnist``), else small
synthetic files in the same format, so the samples still execute end to end.

A block whose first line is a comment containing ``not run`` is skipped (use only when running it
is impossible, e.g. a download). A block using an ``nf.<name>`` that nnfast lacks fails the test
with the names it lacks.
"""

from __future__ import annotations

import gzip
import importlib
import os
import re
import struct
from pathlib import Path

import nnfast
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("NNFAST_MNIST_DIR", "/work/shared/data/mnist"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = [p for p in DOCS if p.is_file()]

_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def _missing_names(code: str) -> list[str]:
    used = set(re.findall(r"\bnf\.([A-Za-z_]\w*)", code))
    return sorted(n for n in used if not hasattr(nnfast, n))


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(magic + dims + array.astype(np.uint8).tobytes())


def _mnist_folder(tmp: Path) -> None:
    target = tmp / "mnist"
    if MNIST.is_dir():
        target.symlink_to(MNIST, target_is_directory=True)
        return
    # NOTE: synthetic stand-ins in the real format (blobs whose position encodes the label), only
    # so that the samples execute; the real files are used whenever they are available.
    target.mkdir()
    rng = np.random.default_rng(0)
    for kind, n in (("train5k", 600), ("t10k", 200)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28))
        for i, lab in enumerate(labels):
            r, c = 4 + (lab // 5) * 12, 2 + (lab % 5) * 5
            images[i, r : r + 8, c : c + 4] = 255
        _write_idx(target / f"{kind}-images-idx3-ubyte.gz", images)
        _write_idx(target / f"{kind}-labels-idx1-ubyte.gz", labels)


def test_the_docs_have_python_samples():
    if not DOCS:
        pytest.skip("README not available (tests run outside the source tree)")
    assert sum(len(python_blocks(p.read_text(encoding="utf-8"))) for p in DOCS) >= 1


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_code_samples_run(doc: Path, tmp_path, monkeypatch):
    blocks = python_blocks(doc.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{doc.name} has no python samples")
    monkeypatch.chdir(tmp_path)
    _mnist_folder(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    state = np.random.get_state()  # noqa: NPY002  (samples seed the global RNG, as the tutorial)
    try:
        for line, code in blocks:
            first = code.lstrip().splitlines()[0] if code.strip() else ""
            if first.startswith("#") and "not run" in first:
                continue
            missing = _missing_names(code)
            assert not missing, f"{doc.name}:{line}: uses nf.{', nf.'.join(missing)}, not in nnfast"
            if re.search(r"nnfast\.plot|import plot\b|matplotlib", code):
                pytest.importorskip("matplotlib")
            try:
                exec(compile(code, f"{doc.name}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"sample at {doc.name}:{line} failed: {exc!r}") from exc
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _table_names(text: str) -> set[str]:
    names = set()
    for row in text.splitlines():
        if not row.startswith("|"):
            continue
        for code in re.findall(r"`([^`]+)`", row):
            m = re.match(r"(nf|nnfast)((?:\.[A-Za-z_]\w*)+)", code)
            if m:
                names.add("nnfast" + m.group(2))
    return names


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return False
    return True


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_every_name_in_the_tables_exists(doc: Path):
    names = _table_names(doc.read_text(encoding="utf-8"))
    if any(n.startswith("nnfast.plot") for n in names):
        pytest.importorskip("matplotlib")
    missing = sorted(n for n in names if not _resolve(n))
    assert not missing, f"{doc.name} names what nnfast does not have: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_images_exist(doc: Path):
    # Paths are written for README.md at the root (docs/*.md are folded into it).
    for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (ROOT / target).is_file() or (doc.parent / target).is_file(), target
