"""Membership designs: which samples each model of a population trains on.

``keep: bool[M, n]`` with ``keep[m, i]`` True when sample i is in model m's training set.
"""

from __future__ import annotations

import numpy as np

from privaudit.errors import ConfigError

DESIGNS = ("balanced", "bernoulli", "paired")


def make_keep(n_models: int, n_samples: int, *, pkeep: float = 0.5, design: str = "balanced",
              seed: int = 0) -> np.ndarray:
    """Seeded membership matrix ``bool[M, n]``.

    * ``balanced`` (LiRA's "experiment-id" design: Carlini et al., "Membership Inference Attacks
      From First Principles", IEEE S&P 2022; official code: tensorflow/privacy,
      ``research/mi_lira_2021/train.py``): for every sample draw a random ranking of the M models
      and put the sample IN the first ``round(pkeep * M)`` of them, so each sample is IN for
      exactly that many models.
    * ``bernoulli``: every (model, sample) pair IN independently with probability ``pkeep``.
      Row m depends only on (seed, m), so a population can grow later without changing the
      models already trained.
    * ``paired``: complementary pairs (the official code of Ravikumar, Soufleri & Roy, "Curvature
      Clues: Decoding Deep Learning Privacy with Input Loss Curvature", NeurIPS 2024,
      ``generate_save_subsamples.ipynb``; ML Privacy Meter): models 2j and 2j+1 split the data
      into complementary random halves, so every sample is IN for exactly half of any even number
      of models and the population can grow by pairs.
      Requires ``pkeep = 0.5`` and an even number of models.
    """
    if n_models < 2:
        raise ConfigError(f"a population needs at least 2 models, got n_models={n_models}")
    if not 0.0 < pkeep < 1.0:
        raise ConfigError(f"pkeep must lie strictly between 0 and 1, got {pkeep}")
    if n_samples < 1:
        raise ConfigError(f"the dataset is empty (n_samples={n_samples})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B656570]))
    if design == "balanced":
        n_in = int(round(pkeep * n_models))
        if not 0 < n_in < n_models:
            raise ConfigError(f"pkeep={pkeep} with {n_models} models puts every sample IN for "
                              f"{n_in} models; need between 1 and {n_models - 1}")
        ranks = rng.random((n_models, n_samples)).argsort(axis=0).argsort(axis=0)
        return ranks < n_in
    if design == "bernoulli":
        return np.stack([np.random.default_rng([seed, 0x6B656570, m]).random(n_samples) < pkeep
                         for m in range(n_models)])
    if design == "paired":
        if pkeep != 0.5 or n_models % 2:
            raise ConfigError(f"the paired design needs pkeep=0.5 and an even number of models, "
                              f"got pkeep={pkeep}, n_models={n_models}")
        halves = [np.random.default_rng([seed, 0x6B656570, j]).random(n_samples) < 0.5
                  for j in range(n_models // 2)]
        return np.stack([row for h in halves for row in (h, ~h)])
    raise ConfigError(f"unknown membership design {design!r}; choose one of {', '.join(DESIGNS)}")


def check_keep(keep: np.ndarray, n_samples: int) -> np.ndarray:
    """Validate a stored or user-given membership matrix."""
    keep = np.asarray(keep)
    if keep.dtype != bool or keep.ndim != 2 or keep.shape[1] != n_samples:
        raise ConfigError(f"keep must be a bool array [M, {n_samples}], got {keep.dtype} {keep.shape}")
    if keep.shape[0] < 2:
        raise ConfigError(f"a population needs at least 2 models, got {keep.shape[0]}")
    if not keep.any(axis=1).all():
        raise ConfigError("some model has an empty training set in keep")
    return keep
