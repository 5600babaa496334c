"""The README's test command is exactly what .ci/run runs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = 'pip install ".[test]" && python -m pytest -q'


def test_readme_and_ci_run_the_same_test_command():
    readme = ROOT / "README.md"
    ci = ROOT / ".ci" / "run"
    if not readme.exists() or not ci.exists():
        pytest.skip("source tree files not available")
    assert TEST_COMMAND in readme.read_text(encoding="utf-8")
    assert "python -m " + TEST_COMMAND in ci.read_text(encoding="utf-8")


def test_ci_runs_the_suite_on_the_scalar_path():
    ci = ROOT / ".ci" / "run"
    if not ci.exists():
        pytest.skip("source tree files not available")
    assert "NNFAST_ISA=scalar python -m pytest -q" in ci.read_text(encoding="utf-8")
