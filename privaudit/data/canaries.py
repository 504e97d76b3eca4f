"""Audit canaries and privacy poisons, built from the pool as arrays.

* Canaries (Nasr et al. 2021; Jagielski et al. 2020; ML Privacy Meter's DP audit): pool samples
  replaced by worst-case audit targets — natural samples given a random wrong label, blank inputs,
  uniform-noise inputs — that then follow the membership design like every other sample.
* Truth Serum poisons (Tramer, Shokri, San Joaquin, Le, Jagielski, Hong, Carlini, "Truth Serum:
  Poisoning Machine Learning Models to Reveal Their Secrets", CCS 2022; official code:
  tensorflow/privacy, ``research/mi_poison_2022/train_poison.py``): for each chosen target,
  ``copies`` copies of its input with one random wrong label, added to the training set of every
  model.
"""

from __future__ import annotations

import numpy as np

from privaudit.errors import ConfigError

KINDS = {"ordinary": 0, "mislabeled": 1, "blank": 2, "noise": 3, "natural": 4}


def wrong_labels(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random label different from ``y`` (``(y + U{1..C-1}) mod C``, as Truth Serum)."""
    return (y + rng.integers(1, n_classes, size=len(y))) % n_classes


def insert_canaries(x: np.ndarray, y: np.ndarray, n_classes: int, *, mislabeled: int = 0, blank: int = 0,
                    noise: int = 0, natural: int = 0, seed: int = 0, mean=None, std=None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace randomly chosen pool samples by canaries; returns ``(x, y, kind int8[n])`` with
    ``kind`` from :data:`KINDS`. Blank and noise inputs are built in pixel space [0, 1] and then
    normalised with ``mean``/``std`` (per channel) so they look like real inputs to the model."""
    total = mislabeled + blank + noise + natural
    if total > len(y):
        raise ConfigError(f"{total} canaries requested but the pool has only {len(y)} samples")
    rng = np.random.default_rng([seed, 0x63616E])
    x, y = x.copy(), y.copy()
    kind = np.zeros(len(y), dtype=np.int8)
    chosen = rng.permutation(len(y))[:total]
    parts = np.split(chosen, np.cumsum([mislabeled, blank, noise]))
    m = np.asarray(mean if mean is not None else 0.0, dtype=np.float32)
    s = np.asarray(std if std is not None else 1.0, dtype=np.float32)
    shape = (-1,) + (1,) * (x.ndim - 2) if x.ndim == 4 else (1,)
    m, s = (m.reshape(shape) if m.ndim else m), (s.reshape(shape) if s.ndim else s)
    for name, idx in zip(("mislabeled", "blank", "noise", "natural"), parts):
        kind[idx] = KINDS[name]
        if name == "mislabeled":
            y[idx] = wrong_labels(y[idx], n_classes, rng)
        elif name in ("blank", "noise"):
            pixels = np.zeros((len(idx), *x.shape[1:]), np.float32) if name == "blank" else \
                rng.random((len(idx), *x.shape[1:]), dtype=np.float32)
            x[idx] = (pixels - m) / s
            y[idx] = rng.integers(0, n_classes, size=len(idx))
    return x, y, kind


def make_poisons(x: np.ndarray, y: np.ndarray, n_classes: int, *, targets: int, copies: int, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth Serum poisons: ``(x_extra [targets*copies, ...], y_extra, target_idx [targets])``;
    every copy of a target carries the same random wrong label."""
    if targets > len(y):
        raise ConfigError(f"poison.targets={targets} exceeds the pool size {len(y)}")
    rng = np.random.default_rng([seed, 0x706F69])
    target_idx = np.sort(rng.choice(len(y), size=targets, replace=False))
    noisy = wrong_labels(y[target_idx], n_classes, rng)
    return (np.repeat(x[target_idx], copies, axis=0), np.repeat(noisy, copies).astype(y.dtype), target_idx)
