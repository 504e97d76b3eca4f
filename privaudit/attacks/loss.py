"""LOSS attack (Yeom, Giacomelli, Fredrikson, Jha, "Privacy Risk in Machine Learning:
Analyzing the Connection to Overfitting", CSF 2018)."""

from __future__ import annotations

import numpy as np

from privaudit.attacks._common import query_mean, validate


def loss_attack(target, ref=None, ref_keep=None, *, labels) -> np.ndarray:
    """Yeom et al. 2018, the loss-threshold membership adversary:
    predict *member* when the target model's loss is below a threshold tau, i.e.
    ``score(x) = -loss(x)``; the evaluation sweeps the single global threshold (Yeom's own tau is
    the average training loss).

    Signal ``loss`` ``[n, A]``; multiple queries are averaged: ``score = -mean_a loss_a``.
    ``ref``/``ref_keep`` are accepted for the common calling convention and only shape-checked.
    """
    target, _, _, _ = validate(target, ref, ref_keep, labels, name="loss_attack", need_ref=False)
    return -query_mean(target)
