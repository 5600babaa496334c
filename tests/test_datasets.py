"""nnfast.datasets: XOR, the shipped digits, MNIST IDX files (real ones when present)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import nnfast as nf
import numpy as np
import pytest
from nnfast import datasets

MNIST = Path("/work/shared/data/mnist")


def test_xor_is_the_tutorials():
    X, y = datasets.xor()
    assert X.shape == (8, 2) and X.dtype == np.float64 and y.shape == (8, 1)
    np.testing.assert_array_equal(
        y[:, 0], np.round(X[:, 0]).astype(int) ^ np.round(X[:, 1]).astype(int)
    )
    assert nf.datasets is datasets


def test_digits_shipped_with_licence():
    images, labels = datasets.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 1
    np.testing.assert_array_equal(
        np.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    )
    # First row of the UCI file: a zero.
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    np.testing.assert_array_equal(images[0, 0, :2].ravel() * 16, first)
    assert labels[0] == 0
    data = Path(datasets.__file__).parent / "data"
    digest = hashlib.sha256((data / "digits.csv.gz").read_bytes()).hexdigest()
    licence = (data / "DIGITS_LICENSE.txt").read_text()
    assert digest in licence and "CC BY 4.0" in licence and "Alpaydin" in licence


def test_digits_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_digits: no such file: .*nope.csv.gz"):
        datasets.load_digits(tmp_path / "nope.csv.gz")
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"load_digits: .*bad.csv.gz is not a gzip CSV"):
        datasets.load_digits(bad)
    short = tmp_path / "short.csv.gz"
    short.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(ValueError, match=r"short.csv.gz must have rows of 64 pixels"):
        datasets.load_digits(short)
    out = tmp_path / "range.csv.gz"
    out.write_bytes(gzip.compress((",".join(["17"] * 64) + ",3\n").encode()))
    with pytest.raises(ValueError, match="outside 0..16"):
        datasets.load_digits(out)


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True):
    magic = (0x0800 | array.ndim) if magic is None else magic
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reader_roundtrip(tmp_path, compress, rng):
    imgs = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    lbls = rng.integers(0, 10, 5, dtype=np.uint8)
    sfx = ".gz" if compress else ""
    write_idx(tmp_path / f"foo-images-idx3-ubyte{sfx}", imgs, compress=compress)
    write_idx(tmp_path / f"foo-labels-idx1-ubyte{sfx}", lbls, compress=compress)
    x, y = datasets.load_mnist(tmp_path, "foo")
    assert x.shape == (5, 1, 4, 3) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], imgs.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, lbls)


def test_mnist_reader_validation(tmp_path):
    imgs = np.zeros((3, 2, 2), np.uint8)
    lbls = np.zeros(3, np.uint8)
    ip, lp = tmp_path / "k-images-idx3-ubyte.gz", tmp_path / "k-labels-idx1-ubyte.gz"
    with pytest.raises(
        FileNotFoundError, match=r"load_mnist: no such file: .*k-images-idx3-ubyte\[.gz\]"
    ):
        datasets.load_mnist(tmp_path, "k")
    write_idx(ip, imgs)
    with pytest.raises(FileNotFoundError, match="k-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path, "k")
    write_idx(lp, np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"k-images-idx3-ubyte.gz has 3 images but .*has 4 labels"):
        datasets.load_mnist(tmp_path, "k")
    write_idx(lp, lbls, magic=0x0D01)
    with pytest.raises(
        ValueError,
        match=r"k-labels-idx1-ubyte.gz is not an IDX file of unsigned bytes: magic 00000d01",
    ):
        datasets.load_mnist(tmp_path, "k")
    write_idx(lp, lbls.reshape(3, 1))
    with pytest.raises(ValueError, match=r"k-labels-idx1-ubyte.gz must have 1 dimensions, got 2"):
        datasets.load_mnist(tmp_path, "k")
    raw = struct.pack(">I", 0x0803) + struct.pack(">3I", 3, 2, 2) + bytes(11)
    ip.write_bytes(gzip.compress(raw))
    write_idx(lp, lbls)
    with pytest.raises(
        ValueError,
        match=r"k-images-idx3-ubyte.gz is truncated: dims \(3, 2, 2\) need 28 bytes, got 27",
    ):
        datasets.load_mnist(tmp_path, "k")
    ip.write_bytes(gzip.compress(raw + bytes(2)))
    with pytest.raises(ValueError, match="longer than its header says"):
        datasets.load_mnist(tmp_path, "k")
    ip.write_bytes(gzip.compress(raw[:9]))
    with pytest.raises(ValueError, match="truncated inside its header"):
        datasets.load_mnist(tmp_path, "k")
    ip.write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(ValueError, match=r"load_mnist: cannot read .*k-images-idx3-ubyte.gz"):
        datasets.load_mnist(tmp_path, "k")
    ip.write_bytes(b"\x00\x00")
    ip.rename(tmp_path / "k-images-idx3-ubyte")
    with pytest.raises(ValueError, match=r"k-images-idx3-ubyte is truncated: 2 bytes"):
        datasets.load_mnist(tmp_path, "k")


@pytest.mark.skipif(not MNIST.exists(), reason="MNIST files not present")
def test_real_mnist():
    x, y = datasets.load_mnist(MNIST, "train5k")
    assert x.shape == (5000, 1, 28, 28) and y.shape == (5000,)
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)
    xt, yt = datasets.load_mnist(MNIST, "t10k")
    assert xt.shape == (10000, 1, 28, 28) and 0 <= xt.min() and xt.max() == 1
    assert yt[:5].tolist() == [7, 2, 1, 0, 4]
