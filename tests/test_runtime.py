"""Runtime: ISA dispatch override, thread pool control, config, fork and concurrency safety."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading

import nnfast as nf
import numpy as np
import pytest
from nnfast import _core


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NNFAST_", "OMP_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_config_keys():
    cfg = nf.config()
    for key in ("version", "isa", "isa_available", "num_threads", "compiler", "build_type"):
        assert key in cfg
    assert cfg["version"] == nf.__version__
    assert cfg["isa"] in cfg["isa_available"]
    assert cfg["isa_available"][0] == ("scalar" if platform.machine() in ("x86_64", "AMD64")
                                       else "baseline")
    assert cfg["num_threads"] == nf.get_num_threads() >= 1


def test_default_isa_is_best_available():
    r = run_python("import nnfast as nf; c = nf.config(); print(c['isa'], c['isa_available'][-1])")
    assert r.returncode == 0, r.stderr
    chosen, best = r.stdout.split()
    assert chosen == best


@pytest.mark.parametrize("name", _core._isa_available())
def test_isa_env_override(name):
    r = run_python("import nnfast as nf; print(nf.config()['isa'])", NNFAST_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_unknown_isa_env_gives_clean_import_error():
    r = run_python("import nnfast", NNFAST_ISA="sse9")
    assert r.returncode != 0
    assert (
        "ImportError: nnfast: unknown ISA 'sse9'; expected one of scalar, baseline, avx2, avx512"
        in r.stderr
    )
    assert "this CPU supports: " in r.stderr and "baseline" in r.stderr
    assert "Segmentation" not in r.stderr


def test_unsupported_isa_names_supported_paths():
    missing = [i for i in ("baseline", "avx2", "avx512") if i not in _core._isa_available()]
    if not missing:
        # Every path runs here: check the message path through the runtime switch instead.
        with pytest.raises(ValueError, match=r"unknown ISA 'neon'"):
            _core._testing.set_isa("neon")
        return
    r = run_python("import nnfast", NNFAST_ISA=missing[0])
    assert r.returncode != 0
    assert f"ISA '{missing[0]}' is not supported by this CPU or build; supported:" in r.stderr


def test_runtime_isa_switch_round_trip():
    before = _core._isa()
    try:
        for name in _core._isa_available():
            _core._testing.set_isa(name)
            assert nf.config()["isa"] == name
    finally:
        _core._testing.set_isa(before)
    assert _core._isa() == before


def test_num_threads_env():
    code = "import nnfast as nf; print(nf.get_num_threads())"
    assert run_python(code, NNFAST_NUM_THREADS="3").stdout.strip() == "3"
    assert run_python(code, OMP_NUM_THREADS="5").stdout.strip() == "5"
    assert run_python(code, OMP_NUM_THREADS="4,2").stdout.strip() == "4"
    # NNFAST_NUM_THREADS wins over OMP_NUM_THREADS.
    assert run_python(code, NNFAST_NUM_THREADS="2", OMP_NUM_THREADS="7").stdout.strip() == "2"
    default = int(run_python(code).stdout.strip())
    assert (
        default == len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else default >= 1
    )


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_bad_num_threads_env(value):
    r = run_python("import nnfast", NNFAST_NUM_THREADS=value)
    assert r.returncode != 0
    assert f"NNFAST_NUM_THREADS must be a positive integer, got '{value}'" in r.stderr


def test_set_num_threads_round_trip():
    before = nf.get_num_threads()
    try:
        for n in (1, 2, 5, 1):
            nf.set_num_threads(n)
            assert nf.get_num_threads() == n
            z = np.linspace(-1, 1, 200_001, dtype=np.float32)
            np.testing.assert_array_equal(nf.relu(z), np.maximum(z, 0))
    finally:
        nf.set_num_threads(before)


@pytest.mark.parametrize(
    "bad, exc, msg",
    [
        (0, ValueError, r"set_num_threads: n must be in \[1, 4096\], got 0$"),
        (-1, ValueError, r"set_num_threads: n must be in \[1, 4096\], got -1$"),
        (10**6, ValueError, r"set_num_threads: n must be in \[1, 4096\], got 1000000$"),
        (
            2**70,
            ValueError,
            r"set_num_threads: n must be in \[1, 4096\], got 1180591620717411303424$",
        ),
        (
            -(2**70),
            ValueError,
            r"set_num_threads: n must be in \[1, 4096\], got -1180591620717411303424$",
        ),
        (2.0, TypeError, r"set_num_threads: n must be an integer, got float$"),
        (True, TypeError, r"set_num_threads: n must be an integer, got bool$"),
        ("2", TypeError, r"set_num_threads: n must be an integer, got str$"),
        (None, TypeError, r"set_num_threads: n must be an integer, got NoneType$"),
    ],
)
def test_set_num_threads_rejects(bad, exc, msg):
    before = nf.get_num_threads()
    with pytest.raises(exc, match=msg):
        nf.set_num_threads(bad)
    assert nf.get_num_threads() == before


def test_forked_child_can_use_the_pool():
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    code = """
import os, numpy as np, nnfast as nf
nf.set_num_threads(2)
z = np.linspace(-1, 1, 1_000_001, dtype=np.float32)
nf.relu(z)  # the pool's workers exist before the fork
pid = os.fork()
if pid == 0:
    ok = np.array_equal(nf.relu(z), np.maximum(z, 0)) and nf.get_num_threads() == 2
    nf.set_num_threads(3)
    ok = ok and np.array_equal(nf.relu(z), np.maximum(z, 0))
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
print("parent", np.array_equal(nf.relu(z), np.maximum(z, 0)))
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["child", "0", "parent", "True"]


def test_concurrent_calls_from_python_threads():
    z = np.random.default_rng(0).standard_normal(400_003).astype(np.float32)
    expected = np.maximum(z, 0)
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(30):
            if not np.array_equal(nf.relu(z), expected):
                errors.append(f"thread {k} call {i}")
            if k == 0 and i % 10 == 0:
                nf.set_num_threads(1 + i % 3)

    before = nf.get_num_threads()
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        nf.set_num_threads(before)
    assert errors == []


def test_info_command_prints_config():
    r = subprocess.run(
        [sys.executable, "-m", "nnfast", "info"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "isa:" in r.stdout and "num_threads:" in r.stdout and nf.__version__ in r.stdout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fma_peak_probe_measures_positive_throughput(isa, dtype):
    from nnfast import _core

    gflops = _core._fma_peak(dtype, 10_000, 1)
    assert np.isfinite(gflops) and gflops > 0
    assert _core._fma_peak(dtype, 10_000, 2) > 0


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        ((np.int32, 10, 1), TypeError, r"_fma_peak: dtype must be float32 or float64, got int32"),
        ((np.float32, 0, 1), ValueError, r"_fma_peak: iters must be in \[1, "),
        ((np.float32, 10, 0), ValueError, r"_fma_peak: threads must be in \[1, 4096\], got 0"),
        ((np.float32, 10.0, 1), TypeError, r"_fma_peak: iters must be an integer, got float"),
    ],
)
def test_fma_peak_probe_rejects(args, exc, msg):
    from nnfast import _core

    with pytest.raises(exc, match=msg):
        _core._fma_peak(*args)
