"""A BatchNorm + residual CNN, 5 epochs on MNIST train5k, tested on t10k: nnfast vs PyTorch.

``python benchmarks/mnist_bn_resnet.py [--data DIR] [--epochs 5] [--runs 1] [--no-torch]``

Model (issue 17): Conv2D(1,16,3,p=1)-BN-ReLU-Residual(Conv16-BN-ReLU-Conv16-BN)-ReLU-MaxPool2-
Conv2D(16,32,3,p=1)-BN-ReLU-MaxPool2-Flatten-Dropout(0.2)-Dense(1568,10); cross-entropy, Adam lr
1e-3, batch 64, shuffled every epoch, float32. Both frameworks train in this process, alternating
per seed, timed from the first batch to the last update (data loading excluded); torch runs at its
own default threading (no OMP_WAIT_POLICY override); NumPy's BLAS is not in the timed loop.
"""

from __future__ import annotations

import os
import sys

from nnfast.nn import (BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Residual,
                       Sequential)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_cnn import compare, train_nnfast, train_torch  # noqa: E402  (the shared command line and torch loop)


def nnfast_model(seed: int) -> Sequential:
    return Sequential([
        Conv2D(1, 16, 3, padding=1), BatchNorm2D(16), ReLU(),
        Residual(Sequential([Conv2D(16, 16, 3, padding=1), BatchNorm2D(16), ReLU(),
                             Conv2D(16, 16, 3, padding=1), BatchNorm2D(16)])),
        ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1), BatchNorm2D(32), ReLU(), MaxPool2D(2),
        Flatten(), Dropout(0.2), Dense(32 * 7 * 7, 10),
    ], seed=seed)  # fmt: skip


def run_nnfast(x, y, xt, yt, epochs, batch, lr, seed):
    return train_nnfast(nnfast_model(seed), x, y, xt, yt, epochs, batch, lr)


def run_torch(torch, x, y, xt, yt, epochs, batch, lr, seed):
    nn = torch.nn
    torch.manual_seed(seed)

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16),
                                       nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                       nn.BatchNorm2d(16))

        def forward(self, h):
            return self.block(h) + h

    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), Res(), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip
    return train_torch(torch, net, x, y, xt, yt, epochs, batch, lr, seed)


if __name__ == "__main__":
    compare(__doc__, run_nnfast, run_torch, epochs=5, lr=1e-3)
