"""QMIA, membership inference by quantile regression (Bertran, Tang, Roth, Kearns, Morgenstern, Wu,
"Scalable Membership Inference Attacks via Quantile Regression", NeurIPS 2023; official code
amazon-science/quantile-mia).

No reference models: the attacker knows the audited model's score on a *public* set of samples
that it did not train on, and fits a regressor that predicts, from a sample's input alone, the
distribution of the model's score on non-members. A sample whose score lies far above what is
predicted for it is a member.

Score ``s`` (the signal, default ``hinge``): the logit margin ``z_y - max_{y' != y} z_{y'}``, the
score of the official code (``label_logit_and_hinge_scoring_fn`` in ``image_QMIA/train_utils.py``;
``hinge`` in :mod:`privaudit.signals.transforms`), averaged over the augmented queries.

Regressor, ``loss="gaussian"`` (the paper's Gaussian parametrisation; the official code's
``gaussian_loss_fn`` and, for tabular data, CatBoost's ``RMSEWithUncertainty``): the
non-member score at x is modelled as ``N(mu(x), sigma(x)^2)``, trained by Gaussian negative
log-likelihood, and the attack score is the standardised margin

    ``score(x) = (s(x) - mu(x)) / sigma(x)``,

monotone in the implied quantile ``Phi(score)`` of s(x) among non-members like x, so one score
serves every false-positive rate: thresholding it at ``Phi^{-1}(1 - alpha)`` is the paper's test at
FPR alpha (Sec. 3, the predicted 1 - alpha quantile ``mu + sigma Phi^{-1}(1 - alpha)``).

How the Gaussian NLL is minimised here, with scikit-learn's ``HistGradientBoostingRegressor``
(gradient boosting on the flattened inputs plus the one-hot label, the official code's
``use_target_inputs``; a few seconds per target on a CPU, no GPU, and invariant to how the
inputs are scaled):

1. ``mu``: squared error on the public scores (the Gaussian NLL's maximiser in mu for any sigma);
2. ``sigma^2``: boosting with the ``gamma`` deviance and log link on the squared *out-of-fold*
   residuals ``r^2 = (s - mu_{-k}(x))^2`` (``folds``-fold cross-fitting, so that in-sample
   overfitting of mu does not shrink sigma). For fixed mu the Gaussian NLL in sigma^2 is
   ``log sigma^2 + r^2 / sigma^2``, which is exactly the gamma deviance of the observation r^2
   under mean sigma^2 (up to terms free of sigma), so this step *is* Gaussian-NLL training of
   ``log sigma(x)``.

Both use early stopping on 20% of the public set (the official code tunes its regressor on a
held-out part of the public data). ``loss="pinball"``: one quantile regressor at level
``1 - alpha`` (the paper's pinball loss, Eq. 2) and ``score = s - q_{1-alpha}(x)``: exact at that
FPR only; the ROC of other FPRs is then that of a single-quantile model.

Why gradient boosting and not a network on the inputs: the paper fine-tunes an ImageNet ConvNeXt
for images, which needs a GPU and pretrained weights; boosting needs neither, no tuning beyond
early stopping, and is fast on a CPU (measured, one core: 1.4 s per target on digits, ~450 public
rows x 74 inputs; 16 s per target on mnist5k, ~1,250 rows x 794 inputs,
``benchmarks/qmia_vs_lira.py``). On those populations its difficulty calibration reaches what the
offline attacks reach with OUT reference models only partly (the regressor sees a few hundred
non-members, the reference models see every sample), see the benchmark.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

from privaudit.attacks._common import choice, query_mean, single_threaded, validate
from privaudit.errors import SignalError

MIN_PUBLIC = 10          # fewer public rows: no regressor, the public mean/std (a global threshold)
VAR_FLOOR = 1e-12        # relative floor of the predicted variance (gamma deviance needs r^2 > 0)


def inputs(features: np.ndarray, labels: np.ndarray, n_classes: int, with_label: bool) -> np.ndarray:
    """Regressor inputs ``float32 [n, d (+ n_classes)]``: flattened features and the one-hot label."""
    x = np.asarray(features, dtype=np.float32).reshape(len(labels), -1)
    if not with_label:
        return x
    return np.hstack([x, np.eye(n_classes, dtype=np.float32)[labels]])


def _booster(loss: str, seed: int, **kw) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(loss=loss, early_stopping=True, validation_fraction=0.2,
                                         n_iter_no_change=10, random_state=seed, **kw)


def _fit(loss: str, x: np.ndarray, y: np.ndarray, seed: int, kw: dict) -> HistGradientBoostingRegressor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # tiny public sets: small-data notices are not errors
        return _booster(loss, seed, **kw).fit(x, y)


def out_of_fold(x: np.ndarray, s: np.ndarray, folds: int, seed: int, kw: dict) -> np.ndarray:
    """``mu_{-k}(x_i)`` for every row: each fold predicted by a mean model fitted on the others."""
    pred = np.empty_like(s)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        pred[test] = _fit("squared_error", x[train], s[train], seed, kw).predict(x[test])
    return pred


def gaussian_fit(x_pub: np.ndarray, s_pub: np.ndarray, *, folds: int, seed: int, kw: dict):
    """The fitted ``(mu, var)`` predictors (callables on inputs) of the non-member score."""
    if len(s_pub) < MIN_PUBLIC:
        m, v = float(s_pub.mean()), float(max(s_pub.var(), VAR_FLOOR))
        return (lambda x: np.full(len(x), m)), (lambda x: np.full(len(x), v))
    mu = _fit("squared_error", x_pub, s_pub, seed, kw)
    r2 = (s_pub - out_of_fold(x_pub, s_pub, min(folds, len(s_pub)), seed, kw)) ** 2
    floor = VAR_FLOOR * max(float(r2.mean()), VAR_FLOOR)
    var = _fit("gamma", x_pub, r2 + floor, seed, kw)
    return mu.predict, (lambda x: np.maximum(var.predict(x), floor))


def pinball_fit(x_pub: np.ndarray, s_pub: np.ndarray, quantile: float, *, seed: int, kw: dict):
    """The fitted ``quantile``-quantile predictor of the non-member score (pinball loss)."""
    if len(s_pub) < MIN_PUBLIC:
        q = float(np.quantile(s_pub, quantile))
        return lambda x: np.full(len(x), q)
    return _fit("quantile", x_pub, s_pub, seed, kw | {"quantile": quantile}).predict


def standardized_margin(s: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """QMIA's attack score ``(s - mu) / sigma``: higher = member."""
    return (np.asarray(s, np.float64) - mu) / sigma


def qmia(target, ref=None, ref_keep=None, *, labels, features, public, loss: str = "gaussian",
         alpha: float = 0.01, folds: int = 5, with_label: bool = True, max_iter: int = 200,
         learning_rate: float = 0.05, max_leaf_nodes: int = 15, min_samples_leaf: int = 10,
         seed: int = 0) -> np.ndarray:
    """QMIA (Bertran et al. 2023; module docstring): ``score = (s - mu(x)) / sigma(x)``, the
    regressor fitted on the rows ``public`` (known non-members of the target) only.

    ``target [n, A]``: the model's score (``hinge``); ``features [n, ...]``: the pool's inputs;
    ``public bool [n]``. Every row is scored (the public rows in-sample: the evaluation protocol
    excludes them from the ROC). ``ref``/``ref_keep`` are not used (no reference models).
    ``loss``: ``gaussian`` (default) or ``pinball`` at quantile ``1 - alpha``. ``with_label``: the
    one-hot label is a regressor input. Boosting: ``max_iter``, ``learning_rate``,
    ``max_leaf_nodes``, ``min_samples_leaf``; ``seed`` fixes the folds and the early-stopping split.
    """
    name = "qmia"
    choice(name, "loss", loss, ("gaussian", "pinball"))
    target, _, _, labels = validate(target, ref, ref_keep, labels, name=name, need_ref=False)
    public = np.asarray(public)
    if public.shape != labels.shape or public.dtype != bool:
        raise SignalError(f"{name}: public must be bool [{labels.size}], got {public.dtype} {public.shape}")
    if public.sum() < 2:
        raise SignalError(f"{name}: needs at least 2 public non-members to fit on, got {int(public.sum())}")
    if np.shape(features)[:1] != labels.shape or not np.isfinite(features).all():
        raise SignalError(f"{name}: features must be finite [n={labels.size}, ...], got {np.shape(features)}")
    if loss == "pinball" and not 0.0 < alpha < 1.0:
        raise SignalError(f"{name}: alpha must lie in (0, 1), got {alpha}")
    s = query_mean(target)
    x = inputs(features, labels, int(labels.max(initial=0)) + 1, with_label)
    kw = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
              min_samples_leaf=min_samples_leaf)
    with single_threaded():
        if loss == "pinball":
            return s - pinball_fit(x[public], s[public], 1.0 - alpha, seed=seed, kw=kw)(x)
        mu, var = gaussian_fit(x[public], s[public], folds=folds, seed=seed, kw=kw)
        return standardized_margin(s, mu(x), np.sqrt(var(x)))
