"""Testing helpers for users writing their own layers: :func:`gradcheck`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GradcheckError", "gradcheck"]


class GradcheckError(AssertionError):
    """A backward disagrees with finite differences (the message names the worst entry)."""


def gradcheck(
    module: Any, x: Any, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
    seed: int = 0,
) -> bool:
    """Checks ``module.backward`` against central finite differences in float64.

    The scalar checked is ``sum(forward(x) * r)`` for a fixed random ``r``; the analytic
    gradients are ``backward(r)`` (input) and ``named_gradients()`` (parameters). Every entry of
    ``x`` and of every parameter is perturbed by ``+-eps``; buffers (BatchNorm's running
    statistics, Dropout's step counter) are restored before each forward, so a training-mode
    forward sees the same state every time. The module runs in the mode it is in.

    An unbuilt module is built in float64 for ``x``'s sample shape; a built one must be float64.

    Returns True; raises :class:`GradcheckError` with the worst entry (``|analytic - numeric| >
    atol + rtol * |numeric|``), or ``TypeError`` for a module or input that is not float64.
    """
    x = np.array(x, dtype=np.float64)
    if x.ndim < 1:
        raise ValueError(f"gradcheck: x must have a leading batch axis, got shape {x.shape}")
    if not module.built:
        module.dtype = np.dtype(np.float64)
        module.build(x.shape[1:])
    bad = [n for n, p in module.named_parameters() if p.dtype != np.float64]
    if bad:
        raise TypeError(f"gradcheck: parameters must be float64, {bad[0]!r} is not")
    saved = {k: v.copy() for k, v in module.named_buffers()}
    bufs = dict(module.named_buffers())

    def restore() -> None:
        for k, v in saved.items():
            bufs[k][...] = v

    restore()
    y = np.array(module.forward(x), dtype=np.float64)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    gx = np.array(module.backward(r.copy()), dtype=np.float64)
    analytic = [("input", x, gx)]
    for (name, p), (_, g) in zip(module.named_parameters(), module.named_gradients()):
        if g is None:
            raise GradcheckError(f"gradcheck: no gradient for parameter {name!r} after backward")
        analytic.append((name, p, np.array(g, dtype=np.float64)))

    def loss() -> float:
        restore()
        return float(np.sum(np.asarray(module.forward(x), dtype=np.float64) * r))

    worst = None
    for name, arr, ana in analytic:
        if ana.shape != arr.shape:
            raise GradcheckError(
                f"gradcheck: gradient of {name} has shape {ana.shape}, expected {arr.shape}"
            )
        flat = arr.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            num = (up - down) / (2 * eps)
            a = ana.reshape(-1)[i]
            err = abs(a - num) - (atol + rtol * abs(num))
            if worst is None or err > worst[0]:
                worst = (err, name, np.unravel_index(i, arr.shape), a, num)
    restore()
    if worst is not None and worst[0] > 0:
        _, name, idx, a, num = worst
        raise GradcheckError(
            f"gradcheck: gradient of {name} at index {tuple(int(i) for i in idx)}: backward gives "
            f"{float(a)!r}, finite differences {float(num)!r} (rtol {rtol}, atol {atol})"
        )
    return True
