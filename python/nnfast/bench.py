"""The benchmark harness behind ``nnfast bench`` and ``benchmarks/run.py``.

Table-driven: each :class:`Row` names a workload, builds its inputs once, and gives the nnfast
call, the best pure-NumPy call (from :mod:`nnfast.reference` or plain NumPy) and, when PyTorch is
installed, the PyTorch call. The implementations of a row are timed interleaved in one process
(round-robin, one sample each per round) and the median sample is reported, so drift on a noisy
shared machine hits them alike. Element-wise rows also time a plain copy of the same bytes
(``np.copyto``) as the machine's practical limit; GEMM-like rows report GFLOP/s.

Families add rows by appending to :data:`ROWS` in the ``_rows_*`` functions below.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _core, _runtime, _tutorial_seed
from . import functional as F

__all__ = ["ROWS", "Row", "main", "run_rows"]

Impl = Callable[[], Any]


@dataclass
class Row:
    """One benchmark workload.

    ``setup(torch)`` returns a dict of implementations: ``"nnfast"``, ``"numpy"`` and optionally
    ``"torch"`` (only when the torch module is passed) and ``"copy"`` (the same bytes copied).
    ``flops`` or ``bytes`` (moved) turn the nnfast time into GFLOP/s or GB/s.
    """

    name: str
    family: str
    setup: Callable[[Any], dict[str, Impl]]
    flops: float = 0.0
    bytes: float = 0.0
    quick: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ROWS: list[Row] = []


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _rows_activations() -> None:
    from . import reference as ref

    n = 1 << 20

    def unary(name: str, numpy_fn: Callable[[Any], Any]) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            z = _rng().standard_normal(n, dtype=np.float32)
            dst = np.empty_like(z)
            fn = getattr(F, name)
            impls: dict[str, Impl] = {
                "nnfast": lambda: fn(z),
                "numpy": lambda: numpy_fn(z),
                "copy": lambda: np.copyto(dst, z),
            }
            if torch is not None:
                tz = torch.from_numpy(z)
                tfn = getattr(torch, name)
                impls["torch"] = lambda: tfn(tz)
            return impls

        return setup

    # NumPy's best: sigmoid via the stable reference, relu by np.maximum, tanh by np.tanh.
    ROWS.append(Row("relu 1M f32", "activations", unary("relu", ref.relu), bytes=8.0 * n))
    ROWS.append(Row("sigmoid 1M f32", "activations", unary("sigmoid", ref.sigmoid), bytes=8.0 * n))
    ROWS.append(Row("tanh 1M f32", "activations", unary("tanh", np.tanh), bytes=8.0 * n))

    # The derivatives at z. torch has no such functions: its columns are what a torch user writes
    # (the same formulas autograd's backward kernels evaluate, without the autograd graph).
    def torch_derivative(name: str, torch: Any) -> Callable[[Any], Any]:
        if name == "relu_derivative":
            return lambda tz: (tz > 0).to(tz.dtype)
        if name == "sigmoid_derivative":
            return lambda tz: (lambda s: s * (1 - s))(torch.sigmoid(tz))
        return lambda tz: 1 - torch.tanh(tz).square()

    def derivative(name: str) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            z = _rng().standard_normal(n, dtype=np.float32)
            dst = np.empty_like(z)
            fn, numpy_fn = getattr(F, name), getattr(ref, name)
            impls: dict[str, Impl] = {
                "nnfast": lambda: fn(z),
                "numpy": lambda: numpy_fn(z),
                "copy": lambda: np.copyto(dst, z),
            }
            if torch is not None:
                tz, tfn = torch.from_numpy(z), torch_derivative(name, torch)
                impls["torch"] = lambda: tfn(tz)
            return impls

        return setup

    for name in ("relu_derivative", "sigmoid_derivative", "tanh_derivative"):
        ROWS.append(Row(f"{name} 1M f32", "activations", derivative(name), bytes=8.0 * n))

    rows, cols = 256, 1000

    def softmax_setup(torch: Any) -> dict[str, Impl]:
        z = _rng().standard_normal((rows, cols), dtype=np.float32)
        dst = np.empty_like(z)
        impls: dict[str, Impl] = {
            "nnfast": lambda: F.softmax(z),
            "numpy": lambda: ref.softmax(z),
            "copy": lambda: np.copyto(dst, z),
        }
        if torch is not None:
            tz = torch.from_numpy(z)
            impls["torch"] = lambda: torch.softmax(tz, dim=-1)
        return impls

    ROWS.append(Row("softmax 256x1000 f32", "activations", softmax_setup, bytes=8.0 * rows * cols))


_rows_activations()


def _rows_dense() -> None:
    from . import reference as ref

    def _torch_wt(torch: Any, w: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(w.T))  # torch.nn.functional.linear layout

    def fwd(
        batch: int, fin: int, fout: int, act: str, dtype: Any
    ) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            x = r.standard_normal((batch, fin)).astype(dtype)
            w = (r.standard_normal((fin, fout)) / np.sqrt(fin)).astype(dtype)
            b = r.standard_normal(fout).astype(dtype)
            impls: dict[str, Impl] = {
                "nnfast": lambda: F.dense(x, w, b, act),
                "numpy": lambda: ref.dense(x, w, b, act),
            }
            if torch is not None:
                tx, tw, tb = torch.from_numpy(x), _torch_wt(torch, w), torch.from_numpy(b)
                tact = {"relu": torch.relu, "sigmoid": torch.sigmoid}[act]
                impls["torch"] = lambda: tact(torch.nn.functional.linear(tx, tw, tb))
            return impls

        return setup

    def fwd_bwd(batch: int, fin: int, fout: int) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            x = r.standard_normal((batch, fin), dtype=np.float32)
            w = (r.standard_normal((fin, fout)) / np.sqrt(fin)).astype(np.float32)
            b = r.standard_normal(fout, dtype=np.float32)
            g = r.standard_normal((batch, fout), dtype=np.float32)

            def nnfast_step() -> Any:
                a = F.dense(x, w, b, "relu")
                return F.dense_backward(x, w, a, g, "relu")

            def numpy_step() -> Any:
                a = ref.dense(x, w, b, "relu")
                return ref.dense_backward(x, w, a, g, "relu")

            impls: dict[str, Impl] = {"nnfast": nnfast_step, "numpy": numpy_step}
            if torch is not None:
                tx, tw, tb, tg = (
                    torch.from_numpy(x),
                    _torch_wt(torch, w),
                    torch.from_numpy(b),
                    torch.from_numpy(g),
                )

                def torch_step() -> Any:
                    # Explicit ops, no autograd bookkeeping: torch's fastest route.
                    a = torch.relu(torch.nn.functional.linear(tx, tw, tb))
                    dz = tg * (a > 0)
                    return dz @ tw, tx.t() @ dz, dz.sum(0)

                impls["torch"] = torch_step
            return impls

        return setup

    def mm(n: int) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            a = r.standard_normal((n, n), dtype=np.float32)
            b = r.standard_normal((n, n), dtype=np.float32)
            impls: dict[str, Impl] = {"nnfast": lambda: F.matmul(a, b), "numpy": lambda: a @ b}
            if torch is not None:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                impls["torch"] = lambda: torch.mm(ta, tb)
            return impls

        return setup

    for batch, fin, fout in [(256, 784, 512), (64, 784, 128)]:
        flops = 2.0 * batch * fin * fout
        shape = f"{batch}x{fin}x{fout}"
        ROWS.append(
            Row(
                f"dense fwd+relu {shape} f32",
                "dense",
                fwd(batch, fin, fout, "relu", np.float32),
                flops=flops,
            )
        )
        ROWS.append(
            Row(
                f"dense fwd+bwd relu {shape} f32",
                "dense",
                fwd_bwd(batch, fin, fout),
                flops=3 * flops,
            )
        )
    for n in (256, 1024, 2048):
        ROWS.append(Row(f"matmul {n}^3 f32", "dense", mm(n), flops=2.0 * n**3, quick=n < 2048))
    ROWS.append(
        Row(
            "dense tutorial XOR 8x2x4 sigmoid f64",
            "dense",
            fwd(8, 2, 4, "sigmoid", np.float64),
            flops=2.0 * 8 * 2 * 4,
        )
    )


_rows_dense()


def _rows_losses() -> None:
    from . import reference as ref

    rows, cols = 256, 1000

    def ce_setup(torch: Any) -> dict[str, Impl]:
        r = _rng()
        z = r.standard_normal((rows, cols), dtype=np.float32)
        y = r.integers(0, cols, rows)
        dst = np.empty_like(z)
        impls: dict[str, Impl] = {
            "nnfast": lambda: F.softmax_cross_entropy(z, y),
            "numpy": lambda: ref.softmax_cross_entropy(z, y),
            "copy": lambda: np.copyto(dst, z),
        }
        if torch is not None:
            tz, ty = torch.from_numpy(z), torch.from_numpy(y)
            idx = torch.arange(rows)

            def torch_ce() -> Any:
                # Loss and gradient without autograd bookkeeping: torch's fastest route.
                lsm = torch.log_softmax(tz, dim=1)
                loss = -lsm[idx, ty].mean()
                g = lsm.exp_()
                g[idx, ty] -= 1
                return loss, g.div_(rows)

            impls["torch"] = torch_ce
        return impls

    ROWS.append(
        Row("softmax cross-entropy 256x1000 f32", "losses", ce_setup, bytes=8.0 * rows * cols)
    )

    n = 1 << 20

    def pair_setup(kind: str) -> Callable[[Any], dict[str, Impl]]:
        # Loss value and gradient w.r.t. the prediction, as one training step needs them.
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            if kind == "mse":
                pred = r.standard_normal(n, dtype=np.float32)
                target = r.standard_normal(n, dtype=np.float32)
                loss, grad = F.mse_loss, F.mse_loss_grad
                np_loss, np_grad = ref.mse_loss, ref.mse_loss_grad
            else:
                pred = r.uniform(0.01, 0.99, n).astype(np.float32)
                target = (r.random(n) < 0.5).astype(np.float32)
                loss, grad = F.binary_cross_entropy, F.binary_cross_entropy_grad
                np_loss, np_grad = ref.binary_cross_entropy, ref.binary_cross_entropy_grad
            impls: dict[str, Impl] = {
                "nnfast": lambda: (loss(pred, target), grad(pred, target)),
                "numpy": lambda: (np_loss(pred, target), np_grad(pred, target)),
            }
            if torch is not None:
                tp, tt = torch.from_numpy(pred), torch.from_numpy(target)
                if kind == "mse":
                    mse = torch.nn.functional.mse_loss

                    def torch_pair() -> Any:
                        return mse(tp, tt).item(), (tp - tt).mul_(2.0 / n)
                else:
                    bce = torch.nn.functional.binary_cross_entropy

                    def torch_pair() -> Any:
                        # torch's own backward formula, (p - t) / max(p (1 - p), eps) / n.
                        den = (tp * (1 - tp)).clamp_(min=1e-12)
                        return bce(tp, tt).item(), (tp - tt).div_(den).div_(n)

                impls["torch"] = torch_pair
            return impls

        return setup

    # Bytes: the loss reads pred and target; the gradient reads them again and writes one array.
    ROWS.append(Row("mse loss + grad 1M f32", "losses", pair_setup("mse"), bytes=20.0 * n))
    ROWS.append(
        Row("binary cross-entropy + grad 1M f32", "losses", pair_setup("bce"), bytes=20.0 * n)
    )


_rows_losses()


# (issue 3: _rows_losses; issue 5: _rows_conv, _rows_pool; issue 6: _rows_training go below,
# each a function followed by its call)


def _rows_optim() -> None:
    from . import optim

    n = 1 << 20
    lr, mom = 0.01, 0.9

    def opt_setup(kind: str) -> Callable[[Any], dict[str, Impl]]:
        # One optimizer step over one 1M-element float32 parameter, updated in place.
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            p0 = r.standard_normal(n, dtype=np.float32)
            g = (r.standard_normal(n) * 1e-3).astype(np.float32)
            p, q = p0.copy(), p0.copy()
            opt = optim.SGD(lr, mom) if kind == "sgd" else optim.Adam(lr)
            s1, s2, tmp = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
            t = [0]

            def numpy_step() -> Any:
                # NumPy's best: every update in place, one scratch array, no allocation.
                if kind == "sgd":
                    np.multiply(s1, mom, out=s1)
                    np.add(s1, g, out=s1)
                    np.multiply(s1, lr, out=tmp)
                else:
                    t[0] += 1
                    b1, b2, eps = opt.beta1, opt.beta2, opt.eps
                    np.multiply(s1, b1, out=s1)
                    np.multiply(g, 1 - b1, out=tmp)
                    np.add(s1, tmp, out=s1)
                    np.multiply(s2, b2, out=s2)
                    np.multiply(g, g, out=tmp)
                    np.multiply(tmp, 1 - b2, out=tmp)
                    np.add(s2, tmp, out=s2)
                    np.sqrt(s2, out=tmp)
                    np.multiply(tmp, 1.0 / np.sqrt(1 - b2 ** t[0]), out=tmp)
                    np.add(tmp, eps, out=tmp)
                    np.divide(s1, tmp, out=tmp)
                    np.multiply(tmp, lr / (1 - b1 ** t[0]), out=tmp)
                np.subtract(q, tmp, out=q)
                return q

            impls: dict[str, Impl] = {
                "nnfast": lambda: (opt.step([(p, g)]), p)[1],
                "numpy": numpy_step,
            }
            if torch is not None:
                tp = torch.from_numpy(p0.copy())
                tp.grad = torch.from_numpy(g)
                topt = (
                    torch.optim.SGD([tp], lr=lr, momentum=mom)
                    if kind == "sgd"
                    else torch.optim.Adam([tp], lr=lr)
                )
                impls["torch"] = lambda: (topt.step(), tp)[1]
            return impls

        return setup

    # Bytes per step: SGD reads p, g, v, writes p, v; Adam reads p, g, m, v, writes p, m, v.
    ROWS.append(Row("SGD momentum step 1M f32", "optim", opt_setup("sgd"), bytes=20.0 * n))
    ROWS.append(Row("Adam step 1M f32", "optim", opt_setup("adam"), bytes=28.0 * n))


_rows_optim()


def _rows_training() -> None:
    from . import datasets, nn, optim, tutorial

    def xor_setup(torch: Any) -> dict[str, Impl]:
        X, y = datasets.xor()

        def run(cls: Any) -> Impl:
            def train() -> Any:
                np.random.seed(42)  # noqa: NPY002  (the tutorial's seed and global RNG)
                model = cls(2, 4, 1)
                model.train(X, y, 1000, 0.5, verbose=False)
                return model

            return train

        return {
            "nnfast": run(tutorial.SimpleNeuralNetwork),
            "numpy": run(_tutorial_seed.SimpleNeuralNetwork),
        }

    ROWS.append(
        Row(
            "tutorial XOR train 1000 epochs (NumPy = tutorial's loops, seed)",
            "training",
            xor_setup,
            notes="numpy column: the tutorial's own SimpleNeuralNetwork code",
        )
    )

    def cnn_setup(torch: Any) -> dict[str, Impl]:
        rng = _rng()
        x = rng.random((64, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, 64)
        model = nn.Sequential(nn.tutorial_cnn(1, 28, 28, activation="softmax"), seed=0)
        opt = optim.SGD(0.01, momentum=0.9)
        model.fit(x, y, epochs=1, batch_size=64, optimizer=opt, shuffle=False, verbose=0)
        impls: dict[str, Impl] = {"nnfast": model._train_step_fn(x, y, "cross_entropy", opt)}
        if torch is not None:
            tnet = torch.nn.Sequential(
                torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10),
            )  # fmt: skip
            topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            lossf = torch.nn.CrossEntropyLoss()

            def torch_step() -> None:
                topt.zero_grad()
                lossf(tnet(tx), ty).backward()
                topt.step()

            impls["torch"] = torch_step
        return impls

    # forward + backward MACs: 3x the forward's convolutions and dense layer
    macs = 64 * (8 * 28 * 28 * 9 + 16 * 14 * 14 * 8 * 9 + 784 * 10)
    ROWS.append(
        Row(
            "CNN train step batch 64, 1->8->16 ch, 28x28 (tutorial pipeline, SGD momentum)",
            "training",
            cnn_setup,
            flops=3 * 2 * macs,
        )
    )


_rows_training()


def _rows_conv() -> None:
    from . import reference as ref

    def conv_setup(n: int, c: int, hw: int, o: int, k: int, pad: int, backward: bool):
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            x = r.standard_normal((n, c, hw, hw), dtype=np.float32)
            w = (r.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
            b = r.standard_normal(o, dtype=np.float32)
            g = r.standard_normal((n, o, hw + 2 * pad - k + 1, hw + 2 * pad - k + 1), np.float32)
            if not backward:
                impls: dict[str, Impl] = {
                    "nnfast": lambda: F.conv2d(x, w, b, 1, pad),
                    "numpy": lambda: ref.conv2d(x, w, b, 1, pad),
                }
            else:

                def nnfast_step() -> Any:
                    F.conv2d(x, w, b, 1, pad)
                    return F.conv2d_backward(x, w, g, 1, pad)

                def numpy_step() -> Any:
                    ref.conv2d(x, w, b, 1, pad)
                    return ref.conv2d_backward(x, w, g, 1, pad)

                impls = {"nnfast": nnfast_step, "numpy": numpy_step}
            if torch is not None:
                tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
                conv = torch.nn.functional.conv2d
                if not backward:
                    impls["torch"] = lambda: conv(tx, tw, tb, 1, pad)
                else:

                    def torch_step() -> Any:
                        # Explicit ops, no autograd bookkeeping: torch's fastest route.
                        conv(tx, tw, tb, 1, pad)
                        return torch.ops.aten.convolution_backward(
                            tg,
                            tx,
                            tw,
                            [o],
                            [1, 1],
                            [pad, pad],
                            [1, 1],
                            False,
                            [0, 0],
                            1,
                            [True, True, True],
                        )

                    impls["torch"] = torch_step
            return impls

        return setup

    for n, c, hw, o, k, pad in [(64, 1, 28, 32, 3, 1), (64, 32, 14, 64, 3, 1)]:
        kernels = _core_kernels(n, c, hw, o, k, pad)
        flops = 2.0 * n * o * hw * hw * c * k * k
        shape = f"{n}x{c}x{hw}x{hw} * {o}x{c}x{k}x{k} pad {pad} f32"
        ROWS.append(
            Row(
                f"conv2d fwd {shape}",
                "conv2d",
                conv_setup(n, c, hw, o, k, pad, False),
                flops=flops,
                notes=kernels.split(";")[0],
            )
        )
        ROWS.append(
            Row(
                f"conv2d fwd+bwd {shape}",
                "conv2d",
                conv_setup(n, c, hw, o, k, pad, True),
                flops=3 * flops,
                notes=kernels,
            )
        )

    def tutorial_setup(torch: Any) -> dict[str, Impl]:
        # The tutorial's inputs: a float64 image and an integer kernel (converted by the policy).
        image = _rng().uniform(0, 255, (28, 28))
        kernel = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])
        impls: dict[str, Impl] = {
            "nnfast": lambda: F.conv2d(image, kernel),
            "numpy": lambda: _tutorial_seed.convolve2d(image, kernel),
        }
        if torch is not None:
            ti = torch.from_numpy(image)[None, None]
            tk = torch.from_numpy(kernel.astype(np.float64))[None, None]
            impls["torch"] = lambda: torch.nn.functional.conv2d(ti, tk)[0, 0]
        return impls

    ROWS.append(
        Row(
            "conv2d tutorial 28x28 image * 3x3 int kernel f64 (NumPy column = SEED: the "
            "tutorial's convolve2d loops)",
            "conv2d",
            tutorial_setup,
            flops=2.0 * 26 * 26 * 9,
            notes="direct row-wise; NumPy column is the tutorial's own Python loops",
        )
    )


def _core_kernels(n: int, c: int, hw: int, o: int, k: int, pad: int) -> str:
    from . import _core

    x = np.zeros((n, c, hw, hw), np.float32)
    return _core._conv2d_kernels(x, np.zeros((o, c, k, k), np.float32), 1, pad)


_rows_conv()


def _rows_pool() -> None:
    from . import reference as ref

    def pool_setup(indices: bool):
        def setup(torch: Any) -> dict[str, Impl]:
            x = _rng().standard_normal((64, 32, 28, 28), dtype=np.float32)
            g = _rng().standard_normal((64, 32, 14, 14), dtype=np.float32)
            dst = np.empty_like(x)
            if not indices:
                impls: dict[str, Impl] = {
                    "nnfast": lambda: F.max_pool2d(x, 2),
                    "numpy": lambda: ref.max_pool2d(x, 2),
                    "copy": lambda: np.copyto(dst, x),
                }
            else:

                def nnfast_step() -> Any:
                    _, i = F.max_pool2d(x, 2, return_indices=True)
                    return F.max_pool2d_backward(g, i, x.shape, 2)

                def numpy_step() -> Any:
                    _, i = ref.max_pool2d(x, 2, return_indices=True)
                    return ref.max_pool2d_backward(g, i, x.shape)

                impls = {
                    "nnfast": nnfast_step,
                    "numpy": numpy_step,
                    "copy": lambda: np.copyto(dst, x),
                }
            if torch is not None:
                tx, tg = torch.from_numpy(x), torch.from_numpy(g)
                if not indices:
                    impls["torch"] = lambda: torch.nn.functional.max_pool2d(tx, 2)
                else:

                    def torch_step() -> Any:
                        y, i = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
                        return torch.ops.aten.max_pool2d_with_indices_backward(
                            tg, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, i
                        )

                    impls["torch"] = torch_step
            return impls

        return setup

    nbytes = 64 * 32 * 28 * 28 * 4 * 1.25
    ROWS.append(Row("max_pool2d 2x2 64x32x28x28 f32", "pool", pool_setup(False), bytes=nbytes))
    ROWS.append(
        Row(
            "max_pool2d 2x2 fwd (indices) + bwd 64x32x28x28 f32",
            "pool",
            pool_setup(True),
            bytes=nbytes + 64 * 32 * 14 * 14 * (8 + 8 + 4) + 64 * 32 * 28 * 28 * 4,
        )
    )


    def avg_setup(backward: bool):
        def setup(torch: Any) -> dict[str, Impl]:
            x = _rng().standard_normal((64, 32, 28, 28), dtype=np.float32)
            g = _rng().standard_normal((64, 32, 14, 14), dtype=np.float32)
            dst = np.empty_like(x)
            if not backward:
                impls: dict[str, Impl] = {
                    "nnfast": lambda: F.avg_pool2d(x, 2),
                    "numpy": lambda: ref.avg_pool2d(x, 2),
                    "copy": lambda: np.copyto(dst, x),
                }
            else:

                def nnfast_step() -> Any:
                    return F.avg_pool2d(x, 2), F.avg_pool2d_backward(g, x.shape, 2)

                def numpy_step() -> Any:
                    return ref.avg_pool2d(x, 2), ref.avg_pool2d_backward(g, x.shape, 2)

                impls = {
                    "nnfast": nnfast_step,
                    "numpy": numpy_step,
                    "copy": lambda: np.copyto(dst, x),
                }
            if torch is not None:
                tx, tg = torch.from_numpy(x), torch.from_numpy(g)
                avg = torch.nn.functional.avg_pool2d
                if not backward:
                    impls["torch"] = lambda: avg(tx, 2)
                else:

                    def torch_step() -> Any:
                        # Explicit ops, no autograd bookkeeping: torch's fastest route.
                        return avg(tx, 2), torch.ops.aten.avg_pool2d_backward(
                            tg, tx, [2, 2], [2, 2], [0, 0], False, True, None
                        )

                    impls["torch"] = torch_step
            return impls

        return setup

    # Bytes: the forward reads x and writes a quarter of it; the backward reads grad_y (a quarter)
    # and writes grad_x.
    ROWS.append(
        Row("avg_pool2d 2x2 64x32x28x28 f32", "pool", avg_setup(False), bytes=nbytes)
    )
    ROWS.append(
        Row("avg_pool2d 2x2 fwd + bwd 64x32x28x28 f32", "pool", avg_setup(True), bytes=2 * nbytes)
    )


_rows_pool()


def _rows_norm() -> None:
    """Batch norm (issue 17's 64x32x28x28), GELU and LeakyReLU on 1M floats."""
    from . import reference as ref

    shape = (64, 32, 28, 28)
    nbytes = 4.0 * np.prod(shape)

    def bn_setup(training: bool) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            x = r.standard_normal(shape, dtype=np.float32)
            g = r.standard_normal(shape, dtype=np.float32)
            gamma = r.uniform(0.5, 1.5, 32).astype(np.float32)
            beta = r.standard_normal(32).astype(np.float32)
            rm, rv = np.zeros(32, np.float32), np.ones(32, np.float32)
            dst = np.empty_like(x)
            if training:

                def nnfast_step() -> Any:
                    y, mean, invstd = F.batch_norm_train(x, gamma, beta, rm, rv)
                    return (y, *F.batch_norm_backward(g, x, gamma, mean, invstd))

                def numpy_step() -> Any:
                    y, mean, invstd, _, _ = ref.batch_norm_train(x, gamma, beta, rm, rv)
                    return (y, *ref.batch_norm_backward(g, x, gamma, mean, invstd))

                impls: dict[str, Impl] = {"nnfast": nnfast_step, "numpy": numpy_step}
            else:
                impls = {
                    "nnfast": lambda: F.batch_norm_eval(x, gamma, beta, rm, rv),
                    "numpy": lambda: ref.batch_norm_eval(x, gamma, beta, rm, rv),
                }
            impls["copy"] = lambda: np.copyto(dst, x)
            if torch is not None:
                tx, tg = torch.from_numpy(x), torch.from_numpy(g)
                tw, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
                trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
                aten = torch.ops.aten
                if training:

                    def torch_step() -> Any:
                        # torch's own kernels without autograd bookkeeping.
                        y, sm, si = aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5)
                        gx, gw, gb = aten.native_batch_norm_backward(
                            tg, tx, tw, trm, trv, sm, si, True, 1e-5, [True, True, True]
                        )
                        return y, gx, gw, gb

                    impls["torch"] = torch_step
                else:
                    impls["torch"] = lambda: torch.nn.functional.batch_norm(
                        tx, trm, trv, tw, tb, False, 0.1, 1e-5
                    )
            return impls

        return setup

    # Bytes: each pass over memory the operation needs at least (the statistics' passes re-read
    # a channel from cache): forward x in, y out; backward grad_y and x in, grad_x out.
    ROWS.append(Row("batch_norm2d train fwd + bwd 64x32x28x28 f32", "norm", bn_setup(True),
                    bytes=5 * nbytes))
    ROWS.append(Row("batch_norm2d eval 64x32x28x28 f32", "norm", bn_setup(False),
                    bytes=2 * nbytes))

    n = 1 << 20

    def act_setup(name: str, backward: bool) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            z = r.standard_normal(n, dtype=np.float32)
            g = r.standard_normal(n, dtype=np.float32)
            dst = np.empty_like(z)
            args = (0.01,) if name == "leaky_relu" else ()
            fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
            rfwd, rbwd = getattr(ref, name), getattr(ref, name + "_backward")
            if backward:
                impls: dict[str, Impl] = {
                    "nnfast": lambda: (fwd(z, *args), bwd(g, z, *args)),
                    "numpy": lambda: (rfwd(z, *args), rbwd(g, z, *args)),
                }
            else:
                impls = {"nnfast": lambda: fwd(z, *args), "numpy": lambda: rfwd(z, *args)}
            impls["copy"] = lambda: np.copyto(dst, z)
            if torch is not None:
                tz, tg = torch.from_numpy(z), torch.from_numpy(g)
                tf = getattr(torch.nn.functional, name)
                if name == "gelu":
                    tb = lambda: torch.ops.aten.gelu_backward(tg, tz)  # noqa: E731
                else:
                    tb = lambda: torch.ops.aten.leaky_relu_backward(tg, tz, 0.01, False)  # noqa: E731
                impls["torch"] = (lambda: (tf(tz, *args), tb())) if backward else (
                    lambda: tf(tz, *args))
            return impls

        return setup

    # NumPy has no erf: its GELU column is math.erfc element by element (the reference).
    for name in ("gelu", "leaky_relu"):
        ROWS.append(Row(f"{name} 1M f32", "activations", act_setup(name, False), bytes=8.0 * n))
        ROWS.append(Row(f"{name} fwd + bwd 1M f32", "activations", act_setup(name, True),
                        bytes=20.0 * n))


_rows_norm()


def _rows_dropout() -> None:
    from . import reference as ref

    n, p, seed = 1 << 20, 0.2, 1234

    def setup_for(backward: bool) -> Callable[[Any], dict[str, Impl]]:
        def setup(torch: Any) -> dict[str, Impl]:
            r = _rng()
            x = r.standard_normal(n, dtype=np.float32)
            g = r.standard_normal(n, dtype=np.float32)
            dst = np.empty_like(x)
            if not backward:
                impls: dict[str, Impl] = {
                    "nnfast": lambda: F.dropout(x, p, seed),
                    "numpy": lambda: ref.dropout(x, p, seed),
                    "copy": lambda: np.copyto(dst, x),
                }
            else:
                impls = {
                    "nnfast": lambda: (F.dropout(x, p, seed), F.dropout_backward(g, p, seed)),
                    "numpy": lambda: (ref.dropout(x, p, seed), ref.dropout_backward(g, p, seed)),
                    "copy": lambda: np.copyto(dst, x),
                }
            if torch is not None:
                tx, tg = torch.from_numpy(x), torch.from_numpy(g)
                if not backward:
                    impls["torch"] = lambda: torch.nn.functional.dropout(tx, p, training=True)
                else:

                    def torch_step() -> Any:
                        # torch's own kernels without autograd: the forward keeps its mask, the
                        # backward multiplies by it.
                        y, mask = torch.ops.aten.native_dropout(tx, p, True)
                        return y, torch.ops.aten.native_dropout_backward(tg, mask, 1 / (1 - p))

                    impls["torch"] = torch_step
            return impls

        return setup

    # torch draws its own mask (another generator): its column is checked for shape and kept
    # fraction only (tests/test_bench_rows.py); NumPy's is nnfast's rule, bit for bit.
    random = {"random_mask": True}
    ROWS.append(
        Row(f"dropout p={p} 1M f32", "dropout", setup_for(False), bytes=8.0 * n, extra=random)
    )
    ROWS.append(
        Row(
            f"dropout p={p} fwd + bwd 1M f32",
            "dropout",
            setup_for(True),
            bytes=16.0 * n,
            extra=random,
        )
    )


_rows_dropout()


def _time_once(fn: Impl, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _calibrate(fn: Impl, target_s: float) -> int:
    fn()  # warm up (page faults, thread start, caches)
    t = _time_once(fn, 1)
    return max(1, min(10_000, int(target_s / max(t, 1e-7))))


# torch is timed in its best state: warmed up until the median of rounds of 3 calls moves by less
# than this fraction from one round to the next (at most _SETTLE_ROUNDS rounds).
_SETTLE_TOL = 0.05
# Pause after each torch sample: at its default settings torch's OpenMP workers spin-wait after
# each op and would otherwise take the cores from the implementation timed next (matmul 1024^3:
# nnfast 17.9 ms right after torch, 10.8 ms after the pause).
_TORCH_PAUSE_S = 0.05
_SETTLE_ROUNDS = 30


def _settle(fn: Impl) -> int:
    """Calls fn until its times settle; returns the number of calls made."""
    prev, calls = None, 0
    for _ in range(_SETTLE_ROUNDS):
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        calls += 3
        med = statistics.median(ts)
        if prev is not None and abs(med - prev) <= _SETTLE_TOL * prev:
            break
        prev = med
    return calls


def run_rows(
    rows: list[Row],
    repeats: int = 15,
    sample_s: float = 0.02,
    torch: Any = None,
    only: tuple[str, ...] | None = None,
    skip: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Times every row; returns one dict per row with median seconds per implementation
    (``only``/``skip``: which implementations to time)."""
    results = []
    for row in rows:
        impls = {k: f for k, f in row.setup(torch).items()
                 if k not in skip and (only is None or k in only)}  # fmt: skip
        warm = {k: _settle(f) for k, f in impls.items() if k == "torch"}
        inner = {k: _calibrate(f, sample_s) for k, f in impls.items()}
        if "torch" in impls:
            time.sleep(_TORCH_PAUSE_S)
        samples: dict[str, list[float]] = {k: [] for k in impls}
        for _ in range(repeats):
            for k, f in impls.items():
                samples[k].append(_time_once(f, inner[k]))
                if k == "torch":
                    time.sleep(_TORCH_PAUSE_S)  # let its spinning OpenMP workers go idle
        med = {k: statistics.median(v) for k, v in samples.items()}
        res: dict[str, Any] = {"name": row.name, "family": row.family, "seconds": med}
        if warm:
            res["torch_warmup_calls"] = warm["torch"]
        if "nnfast" not in med:
            results.append(res)
            continue
        finish_row(res, row)
        results.append(res)
    return results


def finish_row(res: dict[str, Any], row: Row) -> None:
    """The ratios and rates of a row from its medians (again after a column is merged in)."""
    med = res["seconds"]
    if "nnfast" in med:
        t = med["nnfast"]
        if "numpy" in med:
            res["speedup_vs_numpy"] = med["numpy"] / t
        if "torch" in med:
            res["speedup_vs_torch"] = med["torch"] / t
        if "copy" in med:
            res["time_vs_copy"] = t / med["copy"]
        if row.flops:
            res["gflops"] = row.flops / t / 1e9
        if row.bytes:
            res["gbytes_per_s"] = row.bytes / t / 1e9
    if row.notes:
        res["notes"] = row.notes


def machine_limits(repeats: int = 5) -> dict[str, float]:
    """The machine's limits, measured now: f32 FMA GFLOP/s on one core and on every pool thread
    (register-only FMA chains on the active ISA, best of ``repeats``), and copy bandwidth in GB/s
    (``np.copyto`` of 64 MiB, median)."""
    iters = 5_000_000
    one = max(_core._fma_peak(np.float32, iters, 1) for _ in range(repeats))
    threads = _runtime.get_num_threads()
    every = max(_core._fma_peak(np.float32, iters, threads) for _ in range(repeats))
    src = np.ones(1 << 24, dtype=np.float32)
    dst = np.empty_like(src)
    copy_s = statistics.median(_time_once(lambda: np.copyto(dst, src), 1) for _ in range(repeats))
    return {
        "fma_gflops_f32_one_core": one,
        "fma_gflops_f32_all_threads": every,
        "copy_gbytes_per_s": 2.0 * src.nbytes / copy_s / 1e9,
    }


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.3f}"


def format_table(results: list[dict[str, Any]], limits: dict[str, float] | None = None) -> str:
    """A Markdown table of the results; with ``limits``, GFLOP/s also as a share of FMA peak."""
    lines = [
        "| workload | nnfast ms | NumPy ms | torch ms | vs NumPy | vs torch | rate | vs copy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r["seconds"]
        rate = ""
        if "gflops" in r:
            rate = f"{r['gflops']:.1f} GFLOP/s"
            if limits:
                peak = limits["fma_gflops_f32_all_threads"]
                rate += f" ({100 * r['gflops'] / peak:.0f} % of peak)"
        elif "gbytes_per_s" in r:
            rate = f"{r['gbytes_per_s']:.1f} GB/s"
            if limits:
                bw = limits["copy_gbytes_per_s"]
                rate += f" ({100 * r['gbytes_per_s'] / bw:.0f} % of copy)"
        vs_np = f"{r['speedup_vs_numpy']:.2f}x" if "speedup_vs_numpy" in r else "-"
        vs_t = f"{r['speedup_vs_torch']:.2f}x" if "speedup_vs_torch" in r else "-"
        vs_c = f"{r['time_vs_copy']:.2f}" if "time_vs_copy" in r else "-"
        lines.append(
            f"| {r['name']} | {_fmt_ms(s['nnfast'])} | {_fmt_ms(s.get('numpy'))} | "
            f"{_fmt_ms(s.get('torch'))} | {vs_np} | {vs_t} | {rate} | {vs_c} |"
        )
    return "\n".join(lines)


# Environment variables that force NumPy's BLAS onto another kernel or cache size than the one it
# would pick for this CPU (this project's host sets the first two).
BLAS_OVERRIDES = (
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GOTO_L2_SIZE", "MKL_DEBUG_CPU_TYPE",
    "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
)  # fmt: skip


def blas_overrides(env: Any = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: env[k] for k in BLAS_OVERRIDES if k in env}


def blas_info() -> list[dict[str, Any]]:
    """NumPy's BLAS as threadpoolctl reports it (library, version, kernel architecture, threads);
    empty without threadpoolctl (the ``bench`` extra)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: d.get(k) for k in keep} for d in threadpool_info() if d.get("user_api") == "blas"]


def _blas_str(blas: list[dict[str, Any]]) -> str:
    if not blas:
        return "BLAS unknown (pip install threadpoolctl)"
    return ", ".join(
        f"{b['internal_api']} {b['version']} kernel {b['architecture']} {b['num_threads']} threads"
        for b in blas
    )


def machine_info(torch: Any) -> dict[str, Any]:
    """What the numbers were measured on."""
    info = dict(_runtime.config())
    info["cpu"] = _cpu_model()
    info["platform"] = platform.platform()
    info["numpy_blas"] = blas_info()
    info["torch"] = None if torch is None else torch.__version__
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _import_torch(disabled: bool) -> Any:
    if disabled:
        return None
    # NOTE: torch runs at its own default threading: OMP_WAIT_POLICY=PASSIVE, which an earlier
    # version set here, slowed torch's small ops (the CNN train step 3.1 -> 5.8 ms) and so
    # flattered nnfast.
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return None
    return torch


def _numpy_in_child(args: Any, rows: list[Row], repeats: int, results: list[dict[str, Any]],
                    info: dict[str, Any]) -> str:
    """Times the NumPy column of ``rows`` in a child process whose environment lacks the BLAS
    overrides, merges it into ``results`` and returns how it was timed."""
    import subprocess
    import tempfile

    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    with tempfile.TemporaryDirectory() as tmp:
        names, out = os.path.join(tmp, "rows.json"), os.path.join(tmp, "numpy.json")
        cmd = [sys.executable, "-m", "nnfast.bench", "--numpy-column", out, "--no-torch",
               "--repeats", str(repeats)] + (["--quick"] if args.quick else [])  # fmt: skip
        if args.filter:
            cmd += ["--filter", args.filter]
        subprocess.run(cmd, env=env, check=True, timeout=3600)
        with open(out, encoding="utf-8") as f:
            child = json.load(f)
        del names
    by_name = {r.name: r for r in rows}
    for res in results:
        sec = child["seconds"].get(res["name"])
        if sec is not None:
            res["seconds"]["numpy"] = sec
            finish_row(res, by_name[res["name"]])
    info["numpy_blas"] = child["numpy_blas"]
    return "a child process without " + ", ".join(sorted(blas_overrides()))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nnfast bench``."""
    p = argparse.ArgumentParser(prog="nnfast bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, quick rows only")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--filter", metavar="TEXT", help="only rows whose name contains TEXT")
    p.add_argument("--repeats", type=int, default=None, help="samples per implementation")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--plot", metavar="FILE", help="also draw the speed-ups as a bar chart (PNG)")
    p.add_argument(
        "--keep-blas-env",
        action="store_true",
        help="time NumPy in this process even when a variable forces its BLAS kernel "
        f"({', '.join(BLAS_OVERRIDES[:2])}, ...); by default a child process without them does",
    )
    p.add_argument("--numpy-column", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 15)
    if repeats < 1:
        p.error("--repeats must be >= 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401

            from . import plot
        except ImportError:
            p.error('--plot needs matplotlib: pip install "nnfast[viz]"')
    rows = [r for r in ROWS if (r.quick or not args.quick)]
    if args.filter:
        rows = [r for r in rows if args.filter in r.name]
    if not rows:
        p.error(f"no benchmark row matches --filter {args.filter!r}")
    sample_s = 0.01 if args.quick else 0.02
    if args.numpy_column:  # the child of a run whose environment forces NumPy's BLAS kernel
        res = run_rows(rows, repeats=repeats, sample_s=sample_s, only=("numpy",))
        out = {r["name"]: r["seconds"].get("numpy") for r in res}
        with open(args.numpy_column, "w", encoding="utf-8") as f:
            json.dump({"seconds": out, "numpy_blas": blas_info()}, f)
        return 0
    overrides = blas_overrides()
    child_numpy = bool(overrides) and not args.keep_blas_env
    torch = _import_torch(args.no_torch)
    info = machine_info(torch)
    info["blas_env_overrides"] = overrides
    limits = machine_limits()
    torch_str = "not installed"
    if torch is not None:
        torch_str = f"{info['torch']} ({info['torch_threads']} threads, its default settings)"
    print(
        f"nnfast {info['version']} | isa {info['isa']} | threads {info['num_threads']} | "
        f"{info['cpu']} | numpy {info['numpy']} | torch {torch_str}"
    )
    results = run_rows(rows, repeats=repeats, sample_s=sample_s, torch=torch,
                       skip=("numpy",) if child_numpy else ())  # fmt: skip
    numpy_where = "this process, interleaved"
    if child_numpy:
        numpy_where = _numpy_in_child(args, rows, repeats, results, info)
    info["numpy_timed_in"] = numpy_where
    print(f"NumPy's BLAS: {_blas_str(info['numpy_blas'])} (NumPy timed in {numpy_where})")
    if overrides:
        print(
            "warning: "
            + ", ".join(f"{k}={v}" for k, v in overrides.items())
            + " forces NumPy's BLAS kernel or cache size; "
            + ("NumPy was timed in a child process without it (--keep-blas-env keeps it)"
               if child_numpy else "kept (--keep-blas-env): NumPy's column is held back")
        )  # fmt: skip
    if torch is not None:
        print(
            f"torch warmed up until the median of 3 calls moved by <= {_SETTLE_TOL:.0%} between "
            f"rounds (at most {_SETTLE_ROUNDS} rounds)"
        )
    print(
        f"limits measured now: FMA f32 {limits['fma_gflops_f32_one_core']:.0f} GFLOP/s on one "
        f"core, {limits['fma_gflops_f32_all_threads']:.0f} on {info['num_threads']} threads; "
        f"copy {limits['copy_gbytes_per_s']:.1f} GB/s"
    )
    print(f"median of {repeats} interleaved samples per implementation")
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        # NOTE: NumPy's OpenBLAS workers busy-wait ~0.1 s after each call, so in interleaved
        # timing they occupy the cores the next implementation needs (measured: matmul 1024^3
        # 26.6 ms instead of 17.1 ms). The variable is read only when NumPy loads OpenBLAS.
        print(
            "note: OPENBLAS_THREAD_TIMEOUT is unset, so NumPy's BLAS threads busy-wait between "
            "samples and slow the multi-threaded rows timed after them; for kernel-vs-kernel "
            "figures run `OPENBLAS_THREAD_TIMEOUT=4 nnfast bench` or `python benchmarks/run.py`"
        )
    print(format_table(results, limits))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"machine": info, "limits": limits, "repeats": repeats, "results": results},
                f,
                indent=2,
            )
    if args.plot:
        fig = plot.benchmark(
            results, f"nnfast speed-up ({info['isa']}, {info['num_threads']} threads)"
        )
        try:
            fig.savefig(args.plot, dpi=100)
        except OSError as exc:
            print(f"nnfast bench: error: --plot {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"bar chart written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
