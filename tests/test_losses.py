"""Losses: mse, binary cross-entropy, fused softmax cross-entropy, and their gradients."""

from __future__ import annotations

import nnfast as nf
import numpy as np
import pytest
from conftest import THREAD_COUNTS, with_num_threads
from nnfast import reference as ref

SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 65, 127, 1021, 8191, 8193, 40001]
GRAD_TOL = {np.float32: dict(rtol=2e-6, atol=1e-30), np.float64: dict(rtol=1e-14, atol=1e-300)}
# Loss values are summed in double whatever the input dtype.
LOSS_RTOL = 1e-12


def _probs(rng: np.random.Generator, shape, dtype) -> tuple[np.ndarray, np.ndarray]:
    p = rng.uniform(0.001, 0.999, shape).astype(dtype)
    t = (rng.random(shape) > 0.5).astype(dtype)
    return p, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_matches_reference_on_every_isa(isa, dtype, rng):
    for n in SIZES:
        p = rng.standard_normal(n).astype(dtype)
        t = rng.standard_normal(n).astype(dtype)
        p64, t64 = p.astype(np.float64), t.astype(np.float64)
        loss = nf.mse_loss(p, t)
        assert isinstance(loss, float)
        assert loss == pytest.approx(ref.mse_loss(p64, t64), rel=LOSS_RTOL)
        g = nf.mse_loss_grad(p, t)
        assert g.dtype == dtype and g.shape == p.shape
        np.testing.assert_allclose(g, ref.mse_loss_grad(p64, t64), **GRAD_TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_matches_reference_on_every_isa(isa, dtype, rng):
    for n in SIZES:
        p, t = _probs(rng, n, dtype)
        p64, t64 = p.astype(np.float64), t.astype(np.float64)
        assert nf.binary_cross_entropy(p, t) == pytest.approx(
            ref.binary_cross_entropy(p64, t64), rel=LOSS_RTOL
        )
        g = nf.binary_cross_entropy_grad(p, t)
        assert g.dtype == dtype
        np.testing.assert_allclose(g, ref.binary_cross_entropy_grad(p64, t64), **GRAD_TOL[dtype])


def test_bce_clamps_like_torch():
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-30, 1e-300, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.5])
    # log terms are clamped at -100: wrong confident predictions cost 100 each.
    assert nf.binary_cross_entropy(p, t) == pytest.approx(
        (100 + 100 + 30 * np.log(10) + 100 + np.log(2)) / 7, rel=1e-14
    )
    g = nf.binary_cross_entropy_grad(p, t)
    assert np.isfinite(g).all()
    eps = float(np.float32(1e-12))  # PyTorch's clamp
    np.testing.assert_allclose(g[:4], np.array([0, 0, -1 / eps, 1 / eps]) / 7, rtol=1e-15)
    assert np.isnan(nf.binary_cross_entropy(np.array([np.nan, 0.5]), np.array([1.0, 0.0])))


def test_losses_match_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    p, t = _probs(rng, (6, 5), np.float64)
    p[0, :2] = [0.0, 1.0]
    tp = torch.tensor(p, requires_grad=True)
    loss = tf.binary_cross_entropy(tp, torch.from_numpy(t))
    loss.backward()
    assert nf.binary_cross_entropy(p, t) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(nf.binary_cross_entropy_grad(p, t), tp.grad.numpy(), rtol=1e-13)
    x = rng.standard_normal((6, 5))
    tx = torch.tensor(x, requires_grad=True)
    loss = tf.mse_loss(tx, torch.from_numpy(t))
    loss.backward()
    assert nf.mse_loss(x, t) == pytest.approx(loss.item(), rel=1e-14)
    np.testing.assert_allclose(nf.mse_loss_grad(x, t), tx.grad.numpy(), rtol=1e-14)
    z = rng.standard_normal((7, 4)) * 5
    y = rng.integers(0, 4, 7)
    for labels, tlabels in (
        (y, torch.from_numpy(y)),
        (np.eye(4)[y], torch.from_numpy(np.eye(4)[y])),
    ):
        tz = torch.tensor(z, requires_grad=True)
        loss = tf.cross_entropy(tz, tlabels)
        loss.backward()
        got, grad = nf.softmax_cross_entropy(z, labels)
        assert got == pytest.approx(loss.item(), rel=1e-14)
        np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-13, atol=1e-17)


def test_gradients_match_central_differences(rng):
    h = 1e-6

    def check(loss_fn, grad_fn, x, *rest):
        g = grad_fn(x, *rest)
        fd = np.empty_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            fd[i] = (loss_fn(xp, *rest) - loss_fn(xm, *rest)) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)

    x = rng.standard_normal((3, 4))
    t = rng.standard_normal((3, 4))
    check(nf.mse_loss, nf.mse_loss_grad, x, t)
    p, tb = _probs(rng, (3, 4), np.float64)
    p = np.clip(p, 0.05, 0.95)
    tb[0] = [0.2, 0.7, 0.0, 1.0]  # soft targets too
    check(nf.binary_cross_entropy, nf.binary_cross_entropy_grad, p, tb)
    z = rng.standard_normal((5, 3)) * 2
    y = rng.integers(0, 3, 5)
    soft = rng.dirichlet(np.ones(3), 5)
    for labels in (y, np.eye(3)[y], soft):
        check(
            lambda v, lab: nf.softmax_cross_entropy(v, lab)[0],
            lambda v, lab: nf.softmax_cross_entropy(v, lab)[1],
            z,
            labels,
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_matches_reference_on_every_isa(isa, dtype, rng):
    for n, k in [(1, 1), (1, 2), (3, 5), (4, 15), (4, 16), (5, 17), (2, 33), (64, 10), (7, 1021)]:
        z = (rng.standard_normal((n, k)) * 4).astype(dtype)
        y = rng.integers(0, k, n)
        want_loss, want_grad = ref.softmax_cross_entropy(z.astype(np.float64), y)
        for labels in (y, np.eye(k, dtype=dtype)[y]):
            loss, grad = nf.softmax_cross_entropy(z, labels)
            assert isinstance(loss, float) and grad.dtype == dtype and grad.shape == (n, k)
            # float32: the loss is exact up to float32 exp/log of the row (a few ulps of the terms)
            assert loss == pytest.approx(want_loss, rel=1e-6 if dtype == np.float32 else 1e-13)
            np.testing.assert_allclose(
                grad,
                want_grad,
                rtol=GRAD_TOL[dtype]["rtol"] * 4,
                atol=1e-9 if dtype == np.float32 else 1e-17,
            )
            np.testing.assert_allclose(
                grad.sum(axis=1), 0, atol=1e-6 if dtype == np.float32 else 1e-15
            )


def test_softmax_cross_entropy_stability_and_label_forms(rng):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [0.0, 0.0, -np.inf]])
    loss, grad = nf.softmax_cross_entropy(z, np.array([0, 2, 1]))
    assert loss == pytest.approx(np.log(3) / 3 + np.log(2) / 3, rel=1e-15)
    np.testing.assert_allclose(
        grad, [[0, 0, 0], [1 / 9, 1 / 9, -2 / 9], [1 / 6, -1 / 6, 0]], atol=1e-17
    )
    # one-hot rows with a -inf logit under a zero target add nothing (no 0 * inf)
    loss2, grad2 = nf.softmax_cross_entropy(z, np.eye(3)[[0, 2, 1]])
    assert loss2 == loss
    np.testing.assert_array_equal(grad2, grad)
    z = rng.standard_normal((4, 3))
    want = nf.softmax_cross_entropy(z, np.array([0, 1, 2, 1]))
    for labels in (
        [0, 1, 2, 1],
        np.array([0, 1, 2, 1], dtype=np.int32),
        np.array([0, 1, 2, 1], dtype=np.uint8),
        np.eye(3, dtype=int)[[0, 1, 2, 1]],
    ):
        got = nf.softmax_cross_entropy(z, labels)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
    got = nf.softmax_cross_entropy(z.astype(np.float32), np.array([0, 1, 2, 1]))
    assert got[1].dtype == np.float32
    np.testing.assert_array_equal(
        nf.softmax_cross_entropy(np.asfortranarray(z), [0, 1, 2, 1])[1], want[1]
    )
    loss, grad = nf.softmax_cross_entropy(np.empty((0, 3)), np.empty(0, dtype=np.int64))
    assert np.isnan(loss) and grad.shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_every_shift_path_on_every_isa(isa, dtype, rng):
    # Row maxima below 0, in [0, ~80], above, and beyond +-16384 (see vmath::row_softmax_exp).
    offsets = np.array([-3e4, -1e4, -100.0, -7.5, 0.0, 2.5, 60.0, 90.0, 700.0, 1e4, 3e4])
    for k in [1, 2, 7, 16, 17, 33, 1000]:
        z = (rng.standard_normal((len(offsets), k)) * 4 + offsets[:, None]).astype(dtype)
        y = rng.integers(0, k, len(offsets))
        want_loss, want_grad = ref.softmax_cross_entropy(z.astype(np.float64), y)
        loss, grad = nf.softmax_cross_entropy(z, y)
        loss2, grad2 = nf.softmax_cross_entropy(z, np.eye(k, dtype=dtype)[y])
        assert loss2 == loss
        np.testing.assert_array_equal(grad2, grad)
        if k == 1:
            assert loss == 0 and not grad.any()
        else:
            assert loss == pytest.approx(want_loss, rel=1e-6 if dtype == np.float32 else 1e-13)
        # p - 1 at the label cancels when p is near 1: allow p's own few ulps of 1 there.
        atol = 4 * np.finfo(dtype).eps / 2 / len(offsets)
        np.testing.assert_allclose(grad, want_grad, rtol=GRAD_TOL[dtype]["rtol"] * 4, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_large_unshifted_sums_on_every_isa(isa, dtype, rng):
    # Row maxima just below the largest unshifted one (~84 for 10 float32 classes, ~705 for
    # float64): the sum of exponentials is near the dtype's max, so scale / sum would be
    # subnormal for a batch of 1000 and the gradient must not be computed through it.
    top = 84.0 if dtype == np.float32 else 705.0
    z = (top - rng.uniform(0, 3, (1000, 10))).astype(dtype)
    y = rng.integers(0, 10, 1000)
    want_loss, want_grad = ref.softmax_cross_entropy(z.astype(np.float64), y)
    loss, grad = nf.softmax_cross_entropy(z, y)
    loss2, grad2 = nf.softmax_cross_entropy(z, np.eye(10, dtype=dtype)[y])
    assert loss2 == loss
    np.testing.assert_array_equal(grad2, grad)
    assert loss == pytest.approx(want_loss, rel=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(grad, want_grad, **GRAD_TOL[dtype])


def test_losses_bit_identical_across_thread_counts(rng):
    p, t = _probs(rng, 300_001, np.float32)
    z = rng.standard_normal((500, 300)).astype(np.float32)
    y = rng.integers(0, 300, 500)

    def run():
        ce = nf.softmax_cross_entropy(z, y)
        return (
            nf.mse_loss(p, t),
            nf.binary_cross_entropy(p, t),
            nf.mse_loss_grad(p, t),
            nf.binary_cross_entropy_grad(p, t),
            ce[0],
            ce[1],
        )

    with with_num_threads(1):
        want = run()
    for n in THREAD_COUNTS:
        with with_num_threads(n):
            for a, b in zip(run(), want):
                np.testing.assert_array_equal(a, b)


def test_loss_inputs_layouts_out_and_promotion(rng):
    p, t = _probs(rng, (4, 5), np.float64)
    want = nf.mse_loss_grad(p, t)
    np.testing.assert_array_equal(nf.mse_loss_grad(np.asfortranarray(p), t), want)
    assert nf.mse_loss(p.T, t.T) == nf.mse_loss(p.T.copy(), t.T.copy())
    out = np.empty_like(p)
    assert nf.mse_loss_grad(p, t, out=out) is out
    np.testing.assert_array_equal(out, want)
    same = p.copy()
    assert nf.binary_cross_entropy_grad(same, t, out=same) is same
    np.testing.assert_array_equal(same, nf.binary_cross_entropy_grad(p, t))
    assert nf.mse_loss_grad(p.astype(np.float32), t).dtype == np.float64  # promoted
    assert nf.mse_loss([1, 2], [1, 4]) == 2.0
    assert np.isnan(nf.mse_loss(np.empty(0), np.empty(0)))
    np.testing.assert_array_equal(nf.mse_loss_grad([[3.0]], [[1.0]]), [[4.0]])


def test_loss_bad_input():
    a = np.ones((2, 3))
    with pytest.raises(
        ValueError, match=r"mse_loss: target must have the shape of pred \(2, 3\), got \(3, 2\)"
    ):
        nf.mse_loss(a, np.ones((3, 2)))
    with pytest.raises(
        ValueError,
        match=r"binary_cross_entropy_grad: target must have the shape of prob \(2, 3\), got \(3,\)",
    ):
        nf.binary_cross_entropy_grad(a, np.ones(3))
    with pytest.raises(
        TypeError,
        match=r"mse_loss: target must be a float32 or float64 array, got dtype complex128",
    ):
        nf.mse_loss(a, a.astype(complex))
    with pytest.raises(
        TypeError, match=r"binary_cross_entropy: prob must be an array of numbers, got str"
    ):
        nf.binary_cross_entropy("abc", a)
    with pytest.raises(TypeError, match=r"mse_loss_grad: out must have dtype float64, got float32"):
        nf.mse_loss_grad(a, a, out=np.empty((2, 3), np.float32))
    with pytest.raises(
        ValueError, match=r"mse_loss_grad: out must have shape \(2, 3\), got \(6,\)"
    ):
        nf.mse_loss_grad(a, a, out=np.empty(6))


@pytest.mark.parametrize(
    "labels, exc, msg",
    [
        ("abc", TypeError, r"softmax_cross_entropy: labels must be an array of integers, got str"),
        (
            np.array(["a", "b"]),
            TypeError,
            r"softmax_cross_entropy: labels must be integer class indices \(N,\) or one-hot rows \(N, K\), got dtype <U1",
        ),
        (
            np.array([0, None], dtype=object),
            TypeError,
            r"labels must be integer class indices .*got dtype object",
        ),
        (
            np.array([0, 1j]),
            TypeError,
            r"labels must be integer class indices .*got dtype complex128",
        ),
        (
            np.array([0, 3]),
            ValueError,
            r"softmax_cross_entropy: labels must be class indices in \[0, 3\) \(K = logits.shape\[1\]\), got 3 at index 1",
        ),
        (
            np.array([-1, 0]),
            ValueError,
            r"labels must be class indices in \[0, 3\) .*got -1 at index 0",
        ),
        (
            [0, 2**70],
            ValueError,
            r"labels must be class indices in \[0, 3\) .*got 1180591620717411303424 at index 1",
        ),
        (
            np.array([2**64 - 1, 0], dtype=np.uint64),
            ValueError,
            r"labels must be class indices in \[0, 3\) .*got 18446744073709551615 at index 0",
        ),
        (
            np.array([0, 1, 2]),
            ValueError,
            r"softmax_cross_entropy: labels must have N = 2 entries \(one class index per row of logits\), got shape \(3,\)",
        ),
        (
            np.array([[0, 1]]),
            ValueError,
            r"softmax_cross_entropy: one-hot labels must have the shape of logits \(2, 3\) \(N, K\), got \(1, 2\)",
        ),
        (
            np.array([0.0, 1.0]),
            ValueError,
            r"softmax_cross_entropy: float labels must be one-hot rows of shape \(N, K\) = \(2, 3\), got shape \(2,\)",
        ),
    ],
)
def test_softmax_cross_entropy_bad_labels(labels, exc, msg):
    with pytest.raises(exc, match=msg):
        nf.softmax_cross_entropy(np.zeros((2, 3)), labels)


def test_softmax_cross_entropy_bad_logits():
    with pytest.raises(
        ValueError,
        match=r"softmax_cross_entropy: logits must have 2 dims \(N, K\), got shape \(3,\)",
    ):
        nf.softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(
        ValueError,
        match=r"softmax_cross_entropy: logits must have at least 1 class \(K >= 1\), got shape \(2, 0\)",
    ):
        nf.softmax_cross_entropy(np.zeros((2, 0)), np.array([0, 0]))
    with pytest.raises(
        TypeError,
        match=r"softmax_cross_entropy: logits must be a float32 or float64 array, got dtype complex128",
    ):
        nf.softmax_cross_entropy(np.zeros((2, 3), complex), np.array([0, 0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_log_accuracy_over_the_range(isa, dtype, rng):
    # The vectorised log/log1p in double: each term within a few ulps, tiny p and 1 - p included.
    p = np.exp(-rng.uniform(0, 99, 4001)).astype(dtype)
    for t in (np.ones_like(p), np.zeros_like(p)):
        for i in range(0, p.size, 97):
            got = nf.binary_cross_entropy(p[i : i + 1], t[i : i + 1])
            want = ref.binary_cross_entropy(p[i : i + 1].astype(np.float64), t[i : i + 1])
            assert got == pytest.approx(want, rel=4e-16, abs=1e-300)
    bad = np.array([np.nan, 1.5, -0.5, 0.5], dtype)
    for i in range(3):
        assert np.isnan(nf.binary_cross_entropy(bad[i : i + 1], np.ones(1, dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("labels_form", ["int", "onehot"])
def test_softmax_cross_entropy_out_receives_the_gradient(dtype, labels_form, rng):
    z = rng.standard_normal((7, 5)).astype(dtype)
    lab = rng.integers(0, 5, 7)
    labels = lab if labels_form == "int" else np.eye(5, dtype=dtype)[lab]
    want_loss, want_grad = nf.softmax_cross_entropy(z, labels)
    out = np.full_like(z, np.nan)
    for _ in range(2):  # reused across calls
        loss, grad = nf.softmax_cross_entropy(z, labels, out=out)
        assert grad is out
        assert loss == want_loss
        np.testing.assert_array_equal(out, want_grad)
    # converted (non-ndarray) inputs take the same out=
    loss, grad = nf.softmax_cross_entropy(z.tolist(), lab.tolist(), out=out.astype(np.float64))
    assert grad.dtype == np.float64


def _ce_out_misuse(kind, z):
    if kind == "dtype":
        return np.zeros(z.shape, np.float32), TypeError, "out must have dtype float64, got float32"
    if kind == "shape":
        return np.zeros((z.shape[0], z.shape[1] + 1)), ValueError, r"out must have shape \(6, 4\)"
    if kind == "fortran":
        return np.zeros(z.shape, order="F"), ValueError, "out must be C-contiguous"
    if kind == "readonly":
        out = np.zeros(z.shape)
        out.flags.writeable = False
        return out, ValueError, "out must be writeable, got a read-only array"
    if kind == "list":
        return [0.0] * z.size, TypeError, "out must be a numpy.ndarray or None, got list"
    return z, ValueError, "out must not overlap an input"  # in place: refused


@pytest.mark.parametrize("kind", ["dtype", "shape", "fortran", "readonly", "list", "inplace"])
def test_softmax_cross_entropy_bad_out(kind, rng):
    z = rng.standard_normal((6, 4))
    lab = rng.integers(0, 4, 6)
    z_before = z.copy()
    out, exc, msg = _ce_out_misuse(kind, z)
    before = np.array(out, copy=True)
    with pytest.raises(exc, match="^softmax_cross_entropy: " + msg):
        nf.softmax_cross_entropy(z, lab, out=out)
    np.testing.assert_array_equal(np.asarray(out), before)  # nothing written
    np.testing.assert_array_equal(z, z_before)
