"""The tutorial's CNN, 10 epochs on MNIST train5k, tested on t10k: nnfast vs PyTorch.

``python benchmarks/mnist_cnn.py [--data DIR] [--epochs 10] [--batch-size 64] [--lr 2e-3]
[--runs 1] [--no-torch]``

Pipeline (tutorial Part 3): Conv(1->8, 3x3, pad 1)+ReLU -> MaxPool 2 -> Conv(8->16, 3x3, pad 1)
+ReLU -> MaxPool 2 -> Flatten -> Dense(784->10) softmax, cross-entropy, Adam (lr 2e-3 for both:
1e-3 left both under 96 % after 10 epochs of 5k images), batch 64, shuffled every epoch, float32.
Both frameworks train in this process one after the other (timed from the first batch to the
last update; data loading excluded); torch runs at its own default threading.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import nnfast as nf
import numpy as np
from nnfast.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def tutorial_cnn(seed: int) -> Sequential:
    return Sequential(
        [
            Conv2D(1, 8, 3, padding=1), ReLU(), MaxPool2D(2),
            Conv2D(8, 16, 3, padding=1), ReLU(), MaxPool2D(2),
            Flatten(), Dense(16 * 7 * 7, 10, activation="softmax"),
        ],
        seed=seed,
    )  # fmt: skip


def run_nnfast(x, y, xt, yt, epochs, batch, lr, seed):
    return train_nnfast(tutorial_cnn(seed), x, y, xt, yt, epochs, batch, lr)


def train_nnfast(model, x, y, xt, yt, epochs, batch, lr):
    """fit with Adam (timed), then t10k accuracy (evaluate runs in eval mode)."""
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch, optimizer=nf.Adam(lr), verbose=0)
    seconds = time.perf_counter() - t0
    return seconds, model.evaluate(xt, yt)["accuracy"]


def run_torch(torch, x, y, xt, yt, epochs, batch, lr, seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10),
    )  # fmt: skip
    return train_torch(torch, net, x, y, xt, yt, epochs, batch, lr, seed)


def train_torch(torch, net, x, y, xt, yt, epochs, batch, lr, seed):
    """Adam + cross-entropy on shuffled batches (timed), then t10k accuracy in eval mode."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    lossf = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(tx), generator=gen)
        for s in range(0, len(tx), batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            lossf(net(tx[idx]), ty[idx]).backward()
            opt.step()
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xt)).argmax(1).numpy()
    return seconds, float(np.mean(pred == yt))


def compare(doc, run_nn, run_th, epochs: int, lr: float) -> None:
    """The command line shared by the MNIST benchmarks: both frameworks per seed, alternating,
    a pause between them, medians and the time ratio."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--runs", type=int, default=1, help="seeds 0..runs-1; medians reported")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args()
    x, y = nf.datasets.load_mnist(a.data, "train5k")
    xt, yt = nf.datasets.load_mnist(a.data, "t10k")
    torch = None
    if not a.no_torch:
        try:
            import torch  # at its own default threading (no OMP_WAIT_POLICY override)
        except ImportError:
            torch = None
    cfg = nf.config()
    print(
        f"nnfast {cfg['version']} isa {cfg['isa']} threads {cfg['num_threads']}; "
        f"torch {torch.__version__ if torch else '-'} threads "
        f"{torch.get_num_threads() if torch else '-'}; load {os.getloadavg()[0]:.1f}"
    )
    res: dict[str, list[tuple[float, float]]] = {"nnfast": [], "torch": []}
    for seed in range(a.runs):
        res["nnfast"].append(run_nn(x, y, xt, yt, a.epochs, a.batch_size, a.lr, seed))
        if torch is not None:
            time.sleep(1.0)  # let idle worker threads settle between libraries
            res["torch"].append(run_th(torch, x, y, xt, yt, a.epochs, a.batch_size, a.lr, seed))
        for k, v in res.items():
            if len(v) > seed:
                print(f"  seed {seed} {k:6s}: {v[seed][0]:.2f} s, t10k accuracy {v[seed][1]:.2%}")
    print(f"| framework | {a.epochs} epochs train5k (median s) | t10k accuracy (median) |")
    print("|---|---|---|")
    for k, v in res.items():
        if v:
            med_s = statistics.median(s for s, _ in v)
            med_a = statistics.median(acc for _, acc in v)
            print(f"| {k} | {med_s:.2f} | {med_a:.2%} |")
    if res["torch"]:
        ratio = statistics.median(s for s, _ in res["torch"]) / statistics.median(
            s for s, _ in res["nnfast"]
        )
        print(f"nnfast speed-up over torch (median time ratio): {ratio:.2f}x")


def main() -> None:
    compare(__doc__, run_nnfast, run_torch, epochs=10, lr=2e-3)


if __name__ == "__main__":
    main()
