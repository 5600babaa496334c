"""Sequential.save / nnfast.load: exact round trip, clear errors naming the file, no pickle."""

from __future__ import annotations

import json

import nnfast as nf
import numpy as np
import pytest
from nnfast.nn import Dense, Flatten, ReLU, Sequential, Softmax, Tanh


def trained(dtype="float32"):
    X, y = nf.datasets.load_digits()
    m = Sequential(
        [Flatten(), Dense(64, 12), Tanh(), Dense(12, 10), Softmax()], seed=5, dtype=dtype
    )
    m.fit(X[:200], y[:200], epochs=1, batch_size=40, verbose=0)
    return m, X[:50]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_exact(tmp_path, dtype):
    m, X = trained(dtype)
    path = tmp_path / "model.npz"
    m.save(path)
    m2 = nf.load(path)
    assert type(m2) is Sequential and m2.dtype == m.dtype and m2.loss == "cross_entropy"
    assert repr(m2) == repr(m)
    for p, q in zip(m.parameters(), m2.parameters()):
        assert p.dtype == q.dtype
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(m2.predict_proba(X), m.predict_proba(X))
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        meta = json.loads(data["__nnfast__"].tobytes())
    assert meta["format"] == "nnfast.Module" and meta["version"] == 2
    assert meta["model"]["layers"][1]["type"] == "Dense"


def test_unbuilt_model_round_trip(tmp_path):
    m = Sequential([Dense(3, 2, activation="relu")], seed=1)
    m.save(tmp_path / "m.npz")
    m2 = nf.load(tmp_path / "m.npz")
    assert not m2.built and repr(m2) == repr(m)


def test_load_errors_name_the_file(tmp_path):
    m, _ = trained()
    good = tmp_path / "good.npz"
    m.save(good)
    with pytest.raises(FileNotFoundError, match=r"nnfast.load: no such file: .*missing.npz"):
        nf.load(tmp_path / "missing.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(
        ValueError, match=r"nnfast.load: .*cut.npz is not a valid nnfast model file"
    ):
        nf.load(cut)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"text.npz is not a valid nnfast model file"):
        nf.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    with pytest.raises(ValueError, match=r"foreign.npz .*no __nnfast__ entry"):
        nf.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __nnfast__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"pickled.npz is not a valid nnfast model file"):
        nf.load(pickled)
    npy = tmp_path / "plain.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ValueError, match=r"plain.npy .*not an .npz archive"):
        nf.load(npy)
    with np.load(good) as data:
        arrays = dict(data)
    meta = json.loads(arrays["__nnfast__"].tobytes())
    for change, msg in [
        (lambda a, md: a.pop("1.W"), r"missing key '1.W'"),
        (lambda a, md: a.__setitem__("9.W", a["1.W"]), r"unexpected key '9.W'"),
        (
            lambda a, md: a.__setitem__("1.W", a["1.W"][:3]),
            r"'1.W' expected shape \(64, 12\) dtype float32, got shape \(3, 12\)",
        ),
        (lambda a, md: md.__setitem__("version", 99), "unsupported version 99"),
        (lambda a, md: md["model"]["layers"][1].__setitem__("type", "Evil"), "unknown layer type 'Evil'"),
        (lambda a, md: md["model"]["layers"][1]["config"].__setitem__("bogus", 1), "malformed description"),
    ]:
        a, md = dict(arrays), json.loads(json.dumps(meta))
        change(a, md)
        a["__nnfast__"] = np.frombuffer(json.dumps(md).encode(), np.uint8)
        bad = tmp_path / "bad.npz"
        np.savez(bad, **a)
        with pytest.raises(ValueError, match=r"bad.npz is not a valid nnfast model file: .*" + msg):
            nf.load(bad)


def test_save_rejects_custom_layers(tmp_path):
    class Mine(ReLU):
        pass

    with pytest.raises(TypeError, match=r"save: layer 0 \(Mine\) is not a built-in"):
        Sequential([Mine()]).save(tmp_path / "x.npz")
