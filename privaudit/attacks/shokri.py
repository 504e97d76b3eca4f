"""Shadow-model attack classifier of Shokri, Stronati, Song, Shmatikov, "Membership Inference
Attacks Against Machine Learning Models", IEEE S&P 2017 (Sec. V: shadow models, attack model).

Signal ``probs``: ``target [n, A, C]``, ``ref [R, n, A, C]``; the reference models play the
shadow models, their IN/OUT observations are the attack model's training set.
"""

from __future__ import annotations

import warnings

import numpy as np

from privaudit.attacks._common import validate
from privaudit.errors import ConfigError, SignalError


def _features(p: np.ndarray, labels: np.ndarray, *, sort: bool, top_k: int | None,
              one_hot: bool) -> np.ndarray:
    """p [N, A, C] (already gathered rows), labels [N] -> features [N, k (+C)]."""
    v = p.mean(axis=1)                                     # mean over queries: [N, C]
    if sort:
        v = -np.sort(-v, axis=-1)
    if top_k is not None:
        v = v[:, :top_k]
    if one_hot:
        v = np.concatenate([v, np.eye(p.shape[-1])[labels]], axis=1)
    return v


def _logit(clf, x: np.ndarray) -> np.ndarray:
    """Pre-sigmoid output of a binary MLPClassifier (log-odds of ``classes_[1]``), computed from
    its weights so that saturated probabilities do not tie."""
    h = x
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ w + b, 0.0) if clf.activation == "relu" else np.tanh(h @ w + b)
    out = (h @ clf.coefs_[-1] + clf.intercepts_[-1])[:, 0]
    return out if clf.classes_[1] else -out


def _fit(x: np.ndarray, y: np.ndarray, *, hidden, max_iter: int, early_stopping: bool,
         seed: int):
    from sklearn.exceptions import ConvergenceWarning   # imported here: scikit-learn's import is slow
    from sklearn.neural_network import MLPClassifier

    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-12
    # early stopping needs a validation split holding both classes
    early = early_stopping and min(y.sum(), (~y).sum()) >= 20
    clf = MLPClassifier(hidden_layer_sizes=tuple(hidden), max_iter=max_iter, random_state=seed,
                        early_stopping=early)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((x - mu) / sd, y)
    return clf, mu, sd


def shokri(target, ref, ref_keep, *, labels, per_class: bool = False, sort: bool = True,
           top_k: int | None = None, max_train: int = 20000, hidden: tuple = (64,),
           max_iter: int = 200, early_stopping: bool = True, seed: int = 0) -> np.ndarray:
    """Shokri et al. 2017, Sec. V (shadow models, attack model): an attack classifier g(f(x), y)
    trained on the shadow (here: reference) models' outputs labelled IN / OUT.

    Features per (model, sample): the probability vector averaged over the augmented queries,
    sorted in descending order (``sort=True``, label-agnostic as in Salem et al. 2019 / Choi et
    al.; ``sort=False`` keeps class order as in Shokri et al.), optionally truncated to the
    ``top_k`` largest, plus the one-hot label. The classifier is scikit-learn's
    ``MLPClassifier(hidden_layer_sizes=(64,))`` (one hidden layer of 64 ReLU units, as Choi et
    al. App. C) on standardised features, trained with Adam for at most ``max_iter`` epochs;
    ``early_stopping=True`` stops when the accuracy on a 10 % validation split stalls for 10
    epochs (scikit-learn's rule), which keeps fitting to about a second. ``per_class=True``
    trains one classifier per class on the rows of that class (Shokri et al.'s per-class attack
    models, without the label feature); a class lacking IN or OUT training rows uses the global
    classifier.

    The training rows are a seeded uniform subsample of at most ``max_train`` of the ``R * n``
    reference observations (per_class: the same subsample, split by class), so that fitting
    takes seconds. Score: the classifier's member log-odds (pre-sigmoid output: no ties from
    saturated probabilities). Online: uses IN and OUT reference observations.
    """
    name = "shokri"
    target, ref, keep, labels = validate(target, ref, ref_keep, labels, name=name, vector=True,
                                         kind="prob")
    r, n, _, c = ref.shape
    if top_k is not None and (not sort or not 1 <= int(top_k) <= c):
        raise ConfigError(f"{name}: top_k needs sort=True and 1 <= top_k <= {c}, got {top_k!r}")
    if int(max_train) < 2:
        raise ConfigError(f"{name}: max_train must be >= 2, got {max_train!r}")
    rng = np.random.default_rng(seed)
    total = r * n
    rows = np.arange(total) if total <= max_train else np.sort(
        rng.choice(total, size=int(max_train), replace=False))
    m_idx, s_idx = np.divmod(rows, n)
    y = keep[m_idx, s_idx]
    if y.all() or not y.any():
        raise SignalError(f"{name}: the reference observations need both IN and OUT samples")
    opts = dict(sort=sort, top_k=top_k)
    fit = dict(hidden=hidden, max_iter=int(max_iter), early_stopping=early_stopping, seed=seed)
    x_train = _features(ref[m_idx, s_idx], labels[s_idx], one_hot=not per_class, **opts)
    x_target = _features(target, labels, one_hot=not per_class, **opts)
    if not per_class:
        clf, mu, sd = _fit(x_train, y, **fit)
        return _logit(clf, (x_target - mu) / sd)
    score = np.empty(n)
    cls_train = labels[s_idx]
    fallback = None
    for k in np.unique(labels):                            # loop over classes, not samples
        at = labels == k
        sel = cls_train == k
        if y[sel].all() or not y[sel].any():
            if fallback is None:
                x_all = _features(ref[m_idx, s_idx], labels[s_idx], one_hot=True, **opts)
                fallback = _fit(x_all, y, **fit)
            clf, mu, sd = fallback
            x_k = _features(target[at], labels[at], one_hot=True, **opts)
        else:
            clf, mu, sd = _fit(x_train[sel], y[sel], **fit)
            x_k = x_target[at]
        score[at] = _logit(clf, (x_k - mu) / sd)
    return score
