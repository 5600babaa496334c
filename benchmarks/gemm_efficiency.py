"""GEMM efficiency: GFLOP/s as a share of the FMA peak measured beside it, on 1 and 2 threads.

``python benchmarks/gemm_efficiency.py [--threads 1,2] [--rounds 15] [--filter TEXT]``

``nnfast bench`` compares wall-clock medians with NumPy and PyTorch on every thread; this script
answers a different question, how close the GEMM comes to the machine's FMA limit, in a way that
survives a shared, loaded machine. Each round times the workload and then runs the register-only
FMA probe (``_core._fma_peak``) for about as long, both in CPU time of the threads doing the work
(``time.thread_time`` on one thread, ``time.process_time`` on several: time the process was not
scheduled does not count), and records the ratio. It prints the median ratio over the rounds and
the best GFLOP/s over the best probe. PyTorch (``torch.set_num_threads``) runs the same GEMMs
for reference when installed; NumPy is left out (its OpenBLAS thread count is fixed at import).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable

import nnfast as nf  # noqa: E402
import numpy as np  # noqa: E402
from nnfast import _core  # noqa: E402


def _workloads(torch: Any) -> list[tuple[str, float, Callable[[], Any], Callable[[], Any] | None]]:
    r = np.random.default_rng(0)
    out = []
    for n in (256, 1024, 2048):
        a = r.standard_normal((n, n), dtype=np.float32)
        b = r.standard_normal((n, n), dtype=np.float32)
        tfn = None
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            tfn = lambda ta=ta, tb=tb: torch.mm(ta, tb)  # noqa: E731
        out.append((f"matmul {n}^3", 2.0 * n**3, lambda a=a, b=b: nf.matmul(a, b), tfn))
    batch, fin, fout = 256, 784, 512
    x = r.standard_normal((batch, fin), dtype=np.float32)
    w = (r.standard_normal((fin, fout)) / np.sqrt(fin)).astype(np.float32)
    bias = r.standard_normal(fout, dtype=np.float32)
    g = r.standard_normal((batch, fout), dtype=np.float32)
    flops = 2.0 * batch * fin * fout

    def fwd_bwd() -> Any:
        a = nf.dense(x, w, bias, "relu")
        return nf.dense_backward(x, w, a, g, "relu")

    tf = tfb = None
    if torch is not None:
        tx, tw, tbias, tg = (torch.from_numpy(v) for v in (x, np.ascontiguousarray(w.T), bias, g))

        def tf() -> Any:
            return torch.relu(torch.nn.functional.linear(tx, tw, tbias))

        def tfb() -> Any:
            a = tf()
            dz = tg * (a > 0)
            return dz @ tw, tx.t() @ dz, dz.sum(0)

    shape = f"{batch}x{fin}x{fout}"
    out.append((f"dense fwd+relu {shape}", flops, lambda: nf.dense(x, w, bias, "relu"), tf))
    out.append((f"dense fwd+bwd relu {shape}", 3 * flops, fwd_bwd, tfb))
    return out


def _cpu_clock(threads: int) -> Callable[[], float]:
    return time.thread_time if threads == 1 else time.process_time


def _timed(fn: Callable[[], Any], inner: int, threads: int) -> tuple[float, float]:
    """(CPU seconds per call summed over the working threads, wall seconds per call)."""
    clock = _cpu_clock(threads)
    c0, w0 = clock(), time.perf_counter()
    for _ in range(inner):
        fn()
    return (clock() - c0) / inner, (time.perf_counter() - w0) / inner


def _probe(seconds: float, threads: int) -> float:
    """FMA peak in GFLOP/s per core, counted in CPU time, over about `seconds` of work."""
    iters = max(10_000, int(seconds * 4e8))
    clock = _cpu_clock(threads)
    c0, w0 = clock(), time.perf_counter()
    wall_gflops = _core._fma_peak(np.float32, iters, threads)
    cpu, wall = clock() - c0, time.perf_counter() - w0
    # The probe reports all threads' flops over its own wall time; rescale to CPU time, which
    # process_time sums over the threads, so this is per core.
    return wall_gflops * wall / max(cpu, 1e-9)


def measure(name: str, flops: float, fn: Callable[[], Any], threads: int, rounds: int) -> dict:
    fn()
    cpu1, _ = _timed(fn, 1, threads)
    inner = max(1, int(0.02 / max(cpu1 / threads, 1e-7)))
    ratios, rates, peaks, walls = [], [], [], []
    for _ in range(rounds):
        cpu, wall = _timed(fn, inner, threads)
        rate = flops / cpu / 1e9  # per core
        peak = _probe(cpu * inner / threads, threads)
        ratios.append(rate / peak)
        rates.append(rate)
        peaks.append(peak)
        walls.append(flops / wall / 1e9)
    return {
        "name": name,
        "median_share": statistics.median(ratios),
        "best_share": max(rates) / max(peaks),
        "gflops_per_core": statistics.median(rates),
        "peak_per_core": statistics.median(peaks),
        "wall_gflops": statistics.median(walls),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--filter", default=None, help="only workloads whose name contains TEXT")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch  # type: ignore[import-not-found,no-redef]
        except ImportError:
            torch = None
    cfg = nf.config()
    print(f"nnfast {cfg['version']} | isa {cfg['isa']} | load {os.getloadavg()[0]:.1f}")
    print(
        "| workload | threads | impl | GFLOP/s per core (CPU time) | % of FMA peak (median "
        "ratio / best) | wall GFLOP/s |"
    )
    print("|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        nf.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        for name, flops, fn, tfn in _workloads(torch):
            if args.filter and args.filter not in name:
                continue
            impls = [("nnfast", fn)] + ([("torch", tfn)] if tfn is not None else [])
            for impl, f in impls:
                r = measure(name, flops, f, threads, args.rounds)
                print(
                    f"| {name} | {threads} | {impl} | {r['gflops_per_core']:.1f} "
                    f"(peak {r['peak_per_core']:.0f}) | {100 * r['median_share']:.0f} % / "
                    f"{100 * r['best_share']:.0f} % | {r['wall_gflops']:.1f} |"
                )


if __name__ == "__main__":
    main()
