"""Scale: the scalar-signal attacks on R=63 references x n=50000 samples x A=2 queries run in
seconds each (timings are printed, not asserted: this machine is shared)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from privaudit.attacks import ATTACKS, run_attack

NAMES = ["loss", "lira_online", "lira_offline", "lira_online_global", "sablayrolles", "watson",
         "ye_r", "rmia_online", "rmia_offline", "curv_zo_nll", "curv_zo_lr"]


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    m, n, a = 64, 50000, 2
    keep = rng.random((m, n)).argsort(axis=0) < m // 2
    z = rng.normal(0, 2, n)[None, :, None] + 0.5 * keep[..., None] + rng.normal(size=(m, n, a))
    conf = 1 / (1 + np.exp(-z))
    return {"phi": z, "loss": -np.log(conf), "conf": conf, "curvature": np.exp(-z)}, keep


@pytest.mark.parametrize("name", NAMES)
def test_attack_at_scale(name, big):
    signals, keep = big
    spec = ATTACKS[name]
    x = signals[spec.signal]
    start = time.perf_counter()
    score = run_attack(spec, x[0], x[1:], keep[1:], np.zeros(x.shape[1], dtype=int))
    print(f"{name}: {time.perf_counter() - start:.2f} s for R={x.shape[0] - 1}, "
          f"n={x.shape[1]}, A={x.shape[2]}")
    assert score.shape == (x.shape[1],) and np.isfinite(score).all()
