"""Small datasets: the tutorial's XOR points, the 8x8 digits shipped in nnfast, MNIST IDX files.

Image loaders return ``(images, labels)``: images float32 ``(n, 1, h, w)`` scaled to [0, 1], labels
int64 ``(n,)``. A missing, truncated or malformed file raises an error that names the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_mnist", "xor"]

_DATA = Path(__file__).resolve().parent / "data"


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's XOR training set: the four corners and four points near them.

    Returns
    -------
    X : numpy.ndarray, shape (8, 2), float64
    y : numpy.ndarray, shape (8, 1), int64
        ``y[i] = round(X[i, 0]) xor round(X[i, 1])``, in the tutorial's ``(n, 1)`` layout.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [0.1, 0.1], [0.1, 0.9], [0.9, 0.1], [0.9, 0.9]])
    y = np.array([[0], [1], [1], [0], [0], [1], [1], [0]], dtype=np.int64)
    return X, y


def load_digits(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits (UCI optdigits test split, 1,797 images), shipped in the package.

    Source: E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
    Learning Repository (1998), CC BY 4.0; the file is scikit-learn's copy. See
    ``nnfast/data/DIGITS_LICENSE.txt``.

    Parameters
    ----------
    path : path-like, optional
        Another file in the same format (gzip CSV, 64 pixels 0..16 then the label per row);
        defaults to the shipped ``digits.csv.gz``.

    Returns
    -------
    images : numpy.ndarray, shape (1797, 1, 8, 8), float32 in [0, 1] (pixel counts / 16)
    labels : numpy.ndarray, shape (1797,), int64 in 0..9
    """
    p = Path(path) if path is not None else _DATA / "digits.csv.gz"
    try:
        with gzip.open(p, "rt", encoding="ascii") as f:
            raw = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(f"load_digits: no such file: {p}") from None
    except (OSError, EOFError, ValueError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"load_digits: {p} is not a gzip CSV of digits: {exc}") from None
    if raw.shape[1] != 65 or raw.shape[0] == 0:
        raise ValueError(
            f"load_digits: {p} must have rows of 64 pixels and a label (65 columns), "
            f"got shape {raw.shape}"
        )
    pixels, labels = raw[:, :64], raw[:, 64]
    if not (np.all((pixels >= 0) & (pixels <= 16)) and np.all(np.isin(labels, np.arange(10)))):
        raise ValueError(f"load_digits: {p} has pixels outside 0..16 or labels outside 0..9")
    images = (pixels / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return images, labels.astype(np.int64)


_IDX_TYPES = {0x08: np.uint8}


def _read_idx(path: Path, ndim: int, fn: str) -> np.ndarray:
    """Reads an IDX file (gzip or raw) of unsigned bytes with ``ndim`` dimensions."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{fn}: no such file: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{fn}: cannot read {path}: {exc}") from None
    if len(data) < 4:
        raise ValueError(f"{fn}: {path} is truncated: {len(data)} bytes, no IDX header")
    zero, dtype_code, file_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code not in _IDX_TYPES:
        raise ValueError(
            f"{fn}: {path} is not an IDX file of unsigned bytes: magic {data[:4].hex()}, "
            f"expected 0000080{ndim}"
        )
    if file_ndim != ndim:
        raise ValueError(f"{fn}: {path} must have {ndim} dimensions, got {file_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{fn}: {path} is truncated inside its header ({len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{fn}: {path} is {what}: dims {dims} need {expected} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, name: str, fn: str) -> Path:
    for candidate in (directory / (name + ".gz"), directory / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{fn}: no such file: {directory / name}[.gz]")


def load_mnist(
    directory: str | os.PathLike[str], kind: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST IDX files ``{kind}-images-idx3-ubyte[.gz]``, ``{kind}-labels-idx1-ubyte[.gz]``.

    Parameters
    ----------
    directory : path-like
        Folder holding the files (gzip-compressed or raw; ``.gz`` is preferred when both exist).
    kind : str
        File prefix, e.g. ``"train"``, ``"t10k"``, ``"train5k"``.

    Returns
    -------
    images : numpy.ndarray, shape (n, 1, rows, cols), float32 in [0, 1] (pixel / 255)
    labels : numpy.ndarray, shape (n,), int64

    Raises
    ------
    FileNotFoundError
        A file is missing (the message names it).
    ValueError
        A file is truncated, has the wrong magic number or dimensions, or the counts differ.
    """
    fn = "load_mnist"
    d = Path(directory)
    img_path = _find(d, f"{kind}-images-idx3-ubyte", fn)
    lbl_path = _find(d, f"{kind}-labels-idx1-ubyte", fn)
    images = _read_idx(img_path, 3, fn)
    labels = _read_idx(lbl_path, 1, fn)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{fn}: {img_path} has {images.shape[0]} images but {lbl_path} has "
            f"{labels.shape[0]} labels"
        )
    x = images.astype(np.float32)
    x /= np.float32(255)
    return x.reshape(images.shape[0], 1, *images.shape[1:]), labels.astype(np.int64)
