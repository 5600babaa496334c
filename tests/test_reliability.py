"""Concurrency and process safety for every kernel in tests/fuzz/specs.py.

* many Python threads calling kernels at once (the GIL is released) give the serial results, bit
  for bit, while another thread changes the pool size;
* every kernel is bit-identical for any thread count;
* a child forked (multiprocessing, fork start method) while the pool's workers exist, and while
  another thread is inside a kernel, runs every kernel without hanging and gets the same bits.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings

import nnfast as nf
import numpy as np
import pytest
from fuzz import specs

SPECS = specs.present(nf)
IDS = [s.name for s in SPECS]

# Sizes large enough that every kernel splits its work over the pool.
BIG = {"M": 160, "K": 150, "N": 170, "B": 150, "I": 140, "O": 130}
BIG_ELEMENTWISE = (300, 1001)


def big_kwargs(spec, seed: int, dtype=np.float32) -> dict:
    rng = np.random.default_rng(seed)
    sizes = {k: v for k, v in BIG.items() if k in spec.sizes}
    return specs.valid_kwargs(spec, rng, dtype, sizes, BIG_ELEMENTWISE)


def as_bits(result) -> list[bytes]:
    parts = result if isinstance(result, tuple) else (result,)
    return [np.ascontiguousarray(p).tobytes() for p in parts]


@pytest.fixture
def restore_threads():
    before = nf.get_num_threads()
    yield
    nf.set_num_threads(before)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_bit_identical_for_every_thread_count(spec, restore_threads):
    kw = big_kwargs(spec, 1)
    results = {}
    for n in (1, 2, 3, 4, 7):
        nf.set_num_threads(n)
        results[n] = as_bits(specs.call(nf, spec, kw))
    assert all(r == results[1] for r in results.values())


def test_concurrent_threads_match_serial_results_while_pool_resizes(restore_threads):
    work = [
        (spec, big_kwargs(spec, seed, dt))
        for spec in SPECS
        for seed, dt in ((2, np.float32), (3, np.float64))
    ]
    nf.set_num_threads(2)
    expected = [as_bits(specs.call(nf, s, kw)) for s, kw in work]
    errors: list[str] = []
    stop = threading.Event()

    def caller(k: int) -> None:
        rng = np.random.default_rng(k)
        for i in range(12):
            j = int(rng.integers(len(work)))
            s, kw = work[j]
            if as_bits(specs.call(nf, s, kw)) != expected[j]:
                errors.append(f"thread {k} call {i}: {s.name}")

    def resizer() -> None:
        n = 0
        while not stop.is_set():
            nf.set_num_threads(1 + n % 4)
            n += 1

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    r = threading.Thread(target=resizer)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    r.join(timeout=60)
    assert not any(t.is_alive() for t in threads + [r]), "a thread hung"
    assert errors == []


def _child(conn, work) -> None:
    try:
        bits = [as_bits(specs.call(nf, s, kw)) for s, kw in work]
        nf.set_num_threads(3)
        bits3 = [as_bits(specs.call(nf, s, kw)) for s, kw in work]
        conn.send((bits, bits3, nf.get_num_threads()))
    except BaseException as exc:  # report, never hang the parent
        conn.send(repr(exc))
    finally:
        conn.close()


@pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="fork start method not available"
)
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "kernel-running-in-another-thread"])
def test_forked_child_runs_every_kernel(busy, restore_threads):
    nf.set_num_threads(2)
    work = [(s, big_kwargs(s, 4)) for s in SPECS]
    expected = [as_bits(specs.call(nf, s, kw)) for s, kw in work]  # the workers exist now
    stop = threading.Event()
    hammer = None
    if busy:
        big = [(s, big_kwargs(s, 5)) for s in SPECS]

        def loop() -> None:
            while not stop.is_set():
                for s, kw in big:
                    specs.call(nf, s, kw)

        hammer = threading.Thread(target=loop)
        hammer.start()
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a multi-threaded process; that is the point.
            warnings.simplefilter("ignore", DeprecationWarning)
            p = ctx.Process(target=_child, args=(child_conn, work))
            p.start()
        child_conn.close()
        got = parent_conn.recv() if parent_conn.poll(120) else "timeout: the child hung"
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    finally:
        stop.set()
        if hammer is not None:
            hammer.join()
    assert not isinstance(got, str), got
    bits, bits3, n = got
    assert n == 3
    assert bits == expected and bits3 == expected
    assert p.exitcode == 0
