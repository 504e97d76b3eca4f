"""Scalar membership signals derived from logits (NumPy, float64 inside).

All functions take ``logits: float[..., C]`` and ``labels: int[n]`` where the sample axis of
``logits`` is the one just before the augmentation axis, i.e. logits have shape ``[..., n, A, C]``
(``[M, n, A, C]`` for a population, ``[n, A, C]`` for one model).
"""

from __future__ import annotations

import warnings

import numpy as np

from privaudit.errors import SignalError

SIGNALS = ("logits", "probs", "loss", "conf", "phi", "hinge", "mentr", "taylor_conf", "correct")

#: Signals a run stores as computed (by their own stage), not derived from the logits.
STORED_SIGNALS = ("curvature", "label_noise_distance")
#: Label-only signals: functions of the predicted label (argmax) alone, never of the logits' values
#: (Choquette-Choo et al., "Label-Only Membership Inference Attacks", ICML 2021). ``correct`` is
#: ``bool [..., n, A]``; ``label_noise_distance`` is computed from predicted labels under noise
#: (:mod:`privaudit.signals.label_noise`).
LABEL_ONLY_SIGNALS = ("correct", "label_noise_distance")


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim < 3:
        raise SignalError(f"logits must have shape [..., n, A, C], got {logits.shape}")
    n, _, c = logits.shape[-3:]
    if labels.shape != (n,):
        raise SignalError(f"labels must have shape ({n},) to match logits {logits.shape}, got {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= c:
        raise SignalError(f"labels must lie in 0..{c - 1}")
    if not np.isfinite(logits).all():
        raise SignalError("logits contain NaN or inf")
    return logits, labels


def _true_class(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """values[..., i, a, labels[i]] -> [..., n, A]."""
    index = np.broadcast_to(labels[:, None, None], values.shape[:-1] + (1,))
    return np.take_along_axis(values, index, axis=-1)[..., 0]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def probs(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64)))


def loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy ``-log p_y`` (Yeom et al. 2018), stable log-softmax."""
    logits, labels = _check(logits, labels)
    return -_true_class(log_softmax(logits), labels)


def conf(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """True-class confidence ``p_y``."""
    return np.exp(-loss(logits, labels))


def phi(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence (Carlini et al. 2022, Sec. VI-A), stable form
    ``phi = log p_y - log sum_{y' != y} p_{y'}``, computed in log space so that it does not
    saturate at p_y -> 1 (the unstable ``log(p/(1-p))`` does)."""
    logits, labels = _check(logits, labels)
    logp = log_softmax(logits)
    logp_y = _true_class(logp, labels)
    masked = logp.copy()
    index = np.broadcast_to(labels[:, None, None], logp.shape[:-1] + (1,))
    np.put_along_axis(masked, index, -np.inf, axis=-1)
    m = masked.max(axis=-1, keepdims=True)
    log_rest = (m + np.log(np.exp(masked - m).sum(axis=-1, keepdims=True)))[..., 0]
    return logp_y - log_rest


def hinge(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``z_y - max_{y' != y} z_{y'}`` (LiRA's hinge, equivalent to phi up to LogSumExp ~ max)."""
    logits, labels = _check(logits, labels)
    z_y = _true_class(logits, labels)
    masked = logits.copy()
    index = np.broadcast_to(labels[:, None, None], logits.shape[:-1] + (1,))
    np.put_along_axis(masked, index, -np.inf, axis=-1)
    return z_y - masked.max(axis=-1)


def mentr(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Modified entropy of Song & Mittal 2021 (Eq. 4):
    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``; lower = more member.
    Computed with log-probabilities so that p_y -> 1 stays finite."""
    logits, labels = _check(logits, labels)
    logp = log_softmax(logits)
    p = np.exp(logp)
    log1m = np.log1p(-np.minimum(p, 1 - 1e-16))
    p_y = _true_class(p, labels)
    first = -(1.0 - p_y) * _true_class(logp, labels)
    terms = -p * log1m
    rest = terms.sum(axis=-1) - _true_class(terms, labels)
    return first + rest


def taylor_conf(logits: np.ndarray, labels: np.ndarray, *, temperature: float = 2.0,
                order: int = 4, margin: float = 0.6) -> np.ndarray:
    """Soft-margin Taylor softmax of the true class, RMIA's reference-configuration signal
    (ml_privacy_meter ``sm_taylor_softmax_relative``): with z = logits / T,
    ``p_y = t(z_y - m) / (sum_{j != y} t(z_j) + t(z_y - m))``, ``t(u) = sum_{i<order} u^i / i!``."""
    logits, labels = _check(logits, labels)
    z = logits / temperature
    index = np.broadcast_to(labels[:, None, None], z.shape[:-1] + (1,))
    shifted = z.copy()
    np.put_along_axis(shifted, index, np.take_along_axis(z, index, -1) - margin, axis=-1)
    t = sum(shifted**i / np.prod(np.arange(1, i + 1)) for i in range(order))
    bad = float((t <= 0).mean())
    if bad > 0.01:
        warnings.warn(f"the taylor_conf signal is unreliable for these models: its order-{order} Taylor "
                      f"polynomial is <= 0 for {bad:.0%} of the logits (logits / temperature below about -1.6); "
                      f"use rmia_online (the plain softmax signal) instead", stacklevel=2)
    return _true_class(t, labels) / t.sum(axis=-1)


def correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``bool [..., n, A]``: the top-1 prediction of each query is the true label,
    ``argmax_c logits[..., i, a, c] == labels[i]`` (first maximum on ties). A label-only signal:
    any strictly increasing per-row transform of the logits (softmax, temperature, a shift) gives
    the same array, so an attack on it sees the predicted labels and nothing else."""
    logits, labels = _check(logits, labels)
    return logits.argmax(axis=-1) == labels[:, None]


def derive(name: str, logits: np.ndarray, labels: np.ndarray, **params) -> np.ndarray:
    """Named signal from logits ``[..., n, A, C]``: one of :data:`SIGNALS`."""
    if name == "logits":
        return np.asarray(logits)
    if name == "probs":
        return probs(_check(logits, labels)[0])
    functions = {"loss": loss, "conf": conf, "phi": phi, "hinge": hinge, "mentr": mentr,
                 "taylor_conf": taylor_conf, "correct": correct}
    if name not in functions:
        raise SignalError(f"unknown signal {name!r}; choose one of {', '.join(SIGNALS)}")
    return functions[name](logits, labels, **params)
