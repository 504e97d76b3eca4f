"""Utility of the audited models, from their stored logits (pure functions on arrays).

A membership audit is read next to what the models are worth: each model's accuracy on its
members (its training rows: train accuracy) and on its non-members (test accuracy), and the
generalisation gap train - test, which is what the simplest attack (LOSS) exploits. Computed under
the identity query (query 0 of ``logits [M, n, A, C]``); over a population as mean, min and max over
models.
"""

from __future__ import annotations

import numpy as np

from privaudit.evaluation.results import Spread, Utility


def predictions(logits: np.ndarray) -> np.ndarray:
    """Predicted classes ``int[..., n]`` under query 0 of ``logits [..., n, A, C]``."""
    return np.asarray(logits[..., 0, :]).argmax(axis=-1)


def accuracies(logits: np.ndarray, keep: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per model: accuracy on its members (``keep[m]``) and on its non-members, ``float64[M]`` each
    (NaN for a model without members or without non-members). One model at a time, so a
    memory-mapped ``logits`` is never read whole."""
    keep = np.asarray(keep, dtype=bool)
    labels = np.asarray(labels)
    train, test = np.empty(len(keep)), np.empty(len(keep))
    for m in range(len(keep)):
        correct = predictions(logits[m]) == labels
        train[m] = correct[keep[m]].mean() if keep[m].any() else np.nan
        test[m] = correct[~keep[m]].mean() if (~keep[m]).any() else np.nan
    return train, test


def spread(values: np.ndarray) -> Spread:
    values = np.asarray(values, dtype=np.float64)
    return Spread(float(np.mean(values)), float(np.min(values)), float(np.max(values)))


def utility(logits: np.ndarray, keep: np.ndarray, labels: np.ndarray) -> Utility:
    """Train / test accuracy and gap over the models of ``logits [M, n, A, C]`` with membership
    ``keep [M, n]`` (the target: ``logits [1, n, A, C]`` and ``members[None]``)."""
    train, test = accuracies(logits, keep, labels)
    return Utility(len(train), spread(train), spread(test), spread(train - test))


def chance_accuracy(labels: np.ndarray) -> float:
    """The accuracy of always predicting the most frequent class of ``labels``."""
    labels = np.asarray(labels)
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0


def skill(accuracy: float, chance: float) -> float:
    """Accuracy rescaled so that ``chance`` is 0 and perfect is 1 (Cohen's kappa against a
    constant predictor)."""
    return (accuracy - chance) / (1.0 - chance) if chance < 1.0 else 0.0
