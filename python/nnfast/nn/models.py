"""Ready-made layer stacks: the tutorial's CNN."""

from __future__ import annotations

from .conv import Conv2D
from .dense import Dense, Flatten
from .activations import ReLU
from .module import Module, _positive_int
from .pool import MaxPool2D

__all__ = ["tutorial_cnn"]


def tutorial_cnn(
    in_channels: int = 1,
    height: int = 28,
    width: int = 28,
    classes: int = 10,
    activation: str | None = None,
) -> list[Module]:
    """The tutorial's CNN pipeline as layers: Image > [Conv+ReLU] > [Pool] > [Conv+ReLU] > [Pool] >
    [Flatten] > [Dense], with 8 and 16 channels of 3x3 kernels (padding 1) and 2x2 pooling.

    ``activation`` goes on the last ``Dense`` (``None`` gives logits, which the cross-entropy
    loss takes directly). Pass the result to :class:`Sequential`.
    """
    why = "two 2x2 poolings leave at least one pixel"
    height = _positive_int(height, "height", "tutorial_cnn", 4, why)
    width = _positive_int(width, "width", "tutorial_cnn", 4, why)
    flat = 16 * (height // 2 // 2) * (width // 2 // 2)
    return [
        Conv2D(in_channels, 8, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Conv2D(8, 16, 3, padding=1),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(flat, classes, activation=activation),
    ]
