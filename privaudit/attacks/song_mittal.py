"""Metric-based threshold attacks of Song & Mittal, "Systematic Evaluation of Privacy Risks of
Machine Learning Models", USENIX Security 2021: confidence, entropy and modified entropy
(Mentr, the paper's Eq. (4)) with class-dependent thresholds.

Signal ``probs``: ``target [n, A, C]``, ``ref [R, n, A, C]`` (probability vectors). The metric is
computed per query and averaged over the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privaudit.attacks._common import choice, validate
from privaudit.errors import SignalError

#: Song & Mittal's code clips probabilities at 1e-30 before taking logs (``_log_value``).
LOG_FLOOR = 1e-30

METRICS = ("mentr", "entropy", "conf")


def _true(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = np.broadcast_to(labels[:, None, None], p.shape[:-1] + (1,))
    return np.take_along_axis(p, index, axis=-1)[..., 0]


def modified_entropy(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal 2021, Eq. (4), from probabilities ``p [..., n, A, C]``:
    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)`` -> ``[..., n, A]``.
    Lower = more likely member. Logs of arguments below 1e-30 are clipped (as their code)."""
    p = np.asarray(p, dtype=np.float64)
    p_y = _true(p, labels)
    terms = np.subtract(1.0, p)                             # in place: p is large
    np.maximum(terms, LOG_FLOOR, out=terms)
    np.log(terms, out=terms)
    terms *= p
    rest = _true(terms, labels) - terms.sum(axis=-1)        # = -sum_{i != y} p_i log(1 - p_i)
    return -(1.0 - p_y) * np.log(np.maximum(p_y, LOG_FLOOR)) + rest


def entropy(p: np.ndarray) -> np.ndarray:
    """Prediction entropy ``-sum_i p_i log p_i`` (Song & Mittal 2021's entropy metric)."""
    p = np.asarray(p, dtype=np.float64)
    logp = np.maximum(p, LOG_FLOOR)
    np.log(logp, out=logp)
    logp *= p
    return -logp.sum(axis=-1)


def _oriented(p: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """Query-averaged metric, oriented so that higher = member: conf, -entropy, -mentr."""
    if metric == "conf":
        v = _true(p, labels)
    elif metric == "entropy":
        v = -entropy(p)
    else:
        v = -modified_entropy(p, labels)
    return v.mean(axis=-1)


def fit_thresholds(values: np.ndarray, member: np.ndarray, classes: np.ndarray,
                   n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class threshold maximising balanced accuracy of the rule ``value >= t`` => member.

    values, member (bool), classes: flat arrays of the reference observations. Candidate
    thresholds are the observed values of the class (as Song & Mittal's ``_thre_setting``);
    among equally good ones the smallest is taken. Returns ``(thresholds [n_classes],
    fitted [n_classes] bool)``; a class without both IN and OUT observations is not fitted
    (threshold NaN).
    """
    by_value = np.argsort(values, kind="stable")
    order = by_value[np.argsort(classes[by_value], kind="stable")]   # by class, then value
    v, m, c = values[order], member[order], classes[order]
    size = v.size
    n_in = np.bincount(c, weights=m, minlength=n_classes)
    n_out = np.bincount(c, weights=~m, minlength=n_classes)
    start_of = np.zeros(n_classes + 1, dtype=np.int64)
    start_of[1:] = np.cumsum(np.bincount(c, minlength=n_classes))
    cum_in = np.concatenate(([0], np.cumsum(m)))            # IN count before position j
    seg = start_of[c]
    pos = np.arange(size)
    in_before = cum_in[pos] - cum_in[seg]
    out_before = pos - seg - in_before
    with np.errstate(invalid="ignore", divide="ignore"):
        ba = 0.5 * ((n_in[c] - in_before) / n_in[c] + out_before / n_out[c])
    first = np.ones(size, dtype=bool)
    first[1:] = (v[1:] != v[:-1]) | (c[1:] != c[:-1])
    ba = np.where(first & np.isfinite(ba), ba, -1.0)
    present = np.flatnonzero(start_of[1:] > start_of[:-1])
    best_ba = np.full(n_classes, -np.inf)
    best_ba[present] = np.maximum.reduceat(ba, start_of[present])
    hit = np.flatnonzero(ba == best_ba[c])                  # per class: max BA ...
    _, head = np.unique(c[hit], return_index=True)          # ... at the smallest threshold
    winners = hit[head]
    thresholds = np.full(n_classes, np.nan)
    thresholds[c[winners]] = v[winners]
    fitted = (n_in > 0) & (n_out > 0)
    thresholds[~fitted] = np.nan
    return thresholds, fitted


def song_mittal(target, ref, ref_keep, *, labels, metric: str = "mentr",
                per_class: bool = True) -> np.ndarray:
    """Song & Mittal 2021, metric-based attacks: thresholds on the true-class confidence
    (``metric="conf"``), the prediction entropy (``"entropy"``) or the modified entropy
    (``"mentr"``, Eq. (4), the default and the paper's strongest metric).

    With ``per_class=True`` (the paper), a threshold tau_y per class y is fitted on the reference
    ("shadow") models: over all reference observations of samples of class y, the threshold that
    maximises balanced accuracy between IN and OUT values. ``per_class=False`` fits one global
    threshold; classes without both IN and OUT reference observations also use it.

    Score (higher = member): ``tau_y - Mentr(x)`` (mentr), ``tau_y - H(x)`` (entropy),
    ``p_y(x) - tau_y`` (conf), i.e. the signed margin to the class threshold (>= 0: member).
    """
    target, ref, ref_keep, labels = validate(target, ref, ref_keep, labels, name="song_mittal", vector=True,
                                             kind="prob")
    return fit_song_mittal(ref, ref_keep, labels=labels, metric=metric, per_class=per_class).score(target, labels)


@dataclass
class SongMittalThresholds:
    """The fitted class thresholds of :func:`song_mittal` (they depend on the references only)."""
    metric: str
    thresholds: np.ndarray        # [n_classes]

    def score(self, target: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``tau_y - Mentr(x)`` (or the metric's margin) of the samples ``target [n, A, C]``."""
        return _oriented(np.asarray(target, dtype=np.float64), labels, self.metric) - self.thresholds[labels]


def fit_song_mittal(ref, ref_keep, *, labels, metric: str = "mentr", per_class: bool = True) -> SongMittalThresholds:
    """The thresholds of :func:`song_mittal`, fitted on the reference models alone (one fit
    serves every target whose references include these models)."""
    name = "song_mittal"
    choice(name, "metric", metric, METRICS)
    _, ref, keep, labels = validate(ref[0], ref, ref_keep, labels, name=name, vector=True, kind="prob")
    n_classes = ref.shape[-1]
    v_ref = _oriented(ref, labels, metric)                    # [R, n]
    cls = np.broadcast_to(labels, v_ref.shape).ravel()
    flat_v, flat_m = v_ref.ravel(), keep.ravel()
    glob, ok = fit_thresholds(flat_v, flat_m, np.zeros_like(cls), 1)
    if not ok[0]:
        raise SignalError(f"{name}: the reference models need both IN and OUT observations")
    thresholds = np.full(n_classes, glob[0])
    if per_class:
        per, fitted = fit_thresholds(flat_v, flat_m, cls, n_classes)
        thresholds = np.where(fitted, per, glob[0])
    return SongMittalThresholds(metric, thresholds)
