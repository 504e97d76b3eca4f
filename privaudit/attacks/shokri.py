"""Shadow-model attack classifier of Shokri, Stronati, Song, Shmatikov, "Membership Inference
Attacks Against Machine Learning Models", IEEE S&P 2017 (Sec. V: shadow models, attack model).

Signal ``probs``: ``target [n, A, C]``, ``ref [R, n, A, C]``; the reference models play the
shadow models, their IN/OUT observations are the attack model's training set.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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
    target, ref, ref_keep, labels = validate(target, ref, ref_keep, labels, name="shokri", vector=True, kind="prob")
    return fit_shokri(ref, ref_keep, labels=labels, per_class=per_class, sort=sort, top_k=top_k,
                      max_train=max_train, hidden=hidden, max_iter=max_iter, early_stopping=early_stopping,
                      seed=seed).score(target, labels)


@dataclass
class ShokriClassifier:
    """A fitted attack classifier: the global one, and per class (``per_class``) those of the
    classes with IN and OUT training rows."""
    options: dict
    per_class: bool
    global_fit: tuple | None
    class_fits: dict[int, tuple]

    def score(self, target: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Member log-odds of the samples ``target [n, A, C]`` with ``labels [n]``."""
        if not self.per_class:
            clf, mu, sd = self.global_fit
            return _logit(clf, (_features(target, labels, one_hot=True, **self.options) - mu) / sd)
        score = np.empty(len(labels))
        for k in np.unique(labels):                        # loop over classes, not samples
            at = labels == k
            fit = self.class_fits.get(int(k))
            clf, mu, sd = fit if fit is not None else self.global_fit
            x = _features(target[at], labels[at], one_hot=fit is None, **self.options)
            score[at] = _logit(clf, (x - mu) / sd)
        return score


def fit_shokri(ref, ref_keep, *, labels, per_class: bool = False, sort: bool = True, top_k: int | None = None,
               max_train: int = 20000, hidden: tuple = (64,), max_iter: int = 200, early_stopping: bool = True,
               seed: int = 0) -> ShokriClassifier:
    """The attack classifier of :func:`shokri`, fitted on the reference models alone (it does not
    see the target, so one fit serves every target whose references include these models)."""
    name = "shokri"
    _, ref, keep, labels = validate(ref[0], ref, ref_keep, labels, name=name, vector=True, kind="prob")
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
    rows_x, rows_label = ref[m_idx, s_idx], labels[s_idx]
    if not per_class:
        return ShokriClassifier(opts, False, _fit(_features(rows_x, rows_label, one_hot=True, **opts), y, **fit), {})
    classes: dict[int, tuple] = {}
    fallback = None
    x_train = _features(rows_x, rows_label, one_hot=False, **opts)
    for k in np.unique(labels):
        sel = rows_label == k
        if y[sel].all() or not y[sel].any():
            if fallback is None:
                fallback = _fit(_features(rows_x, rows_label, one_hot=True, **opts), y, **fit)
        else:
            classes[int(k)] = _fit(x_train[sel], y[sel], **fit)
    return ShokriClassifier(opts, True, fallback, classes)
