"""Label-only membership inference: attacks that see the audited model's *predicted label* only
(Choquette-Choo, Tramer, Carlini, Papernot, "Label-Only Membership Inference Attacks", ICML 2021;
the gap attack of Yeom, Giacomelli, Fredrikson, Jha, CSF 2018).

Their signals are label-only by construction (:data:`privaudit.signals.transforms.LABEL_ONLY_SIGNALS`):

* ``correct``, ``bool [n, A]``: the top-1 prediction of augmented query a is the true label
  (``argmax`` of the logits, computed in :func:`privaudit.signals.transforms.correct`);
* ``label_noise_distance``, ``float [n, 1]``: the smallest Gaussian-noise level that flips the
  predicted label, found from predicted labels only (:mod:`privaudit.signals.label_noise`).

:func:`privaudit.attacks._common.validate` with ``kind="bool"`` refuses any ``correct`` input
that is not exactly 0/1 and hands the attack ``bool`` arrays, so these functions cannot see
logits or confidences.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logit

from privaudit.attacks._common import choice, query_mean, single_threaded, validate

PROB_CLIP = 1e-6     # a classifier's membership probability, clipped before its log-odds


def gap(target, ref=None, ref_keep=None, *, labels) -> np.ndarray:
    """The gap attack (Yeom et al. 2018: the adversary whose advantage is the generalisation gap;
    the label-only baseline of Choquette-Choo et
    al. 2021): predict *member* iff the model classifies the sample correctly under the identity
    query. ``score = correct[:, 0]`` (1.0 or 0.0; query 0 is the identity, see
    ``privaudit.training.augment.query_grid``). Its ROC has one inner point,
    ``(FPR, TPR) = (test accuracy, train accuracy)``: AUC = (1 + train acc - test acc) / 2."""
    target, _, _, _ = validate(target, ref, ref_keep, labels, name="gap", kind="bool", need_ref=False)
    return target[:, 0].astype(np.float64)


def sample_balanced_weights(keep: np.ndarray) -> np.ndarray:
    """``float [R, m]``: weight of reference row (r, i) = 1 / (number of rows of sample i on its
    side), so that every sample weighs the same on the IN side and on the OUT side. Pooled
    unweighted, a sample with more IN rows pulls the IN side towards its pattern; in a balanced
    design leaving the target out, the target's *non-members* are the samples with more IN
    reference rows (4 of 7 against 3 of 7 with 8 models), which would score its members lower."""
    n_in = keep.sum(axis=0, keepdims=True)
    n_out = keep.shape[0] - n_in
    with np.errstate(divide="ignore"):
        return np.where(keep, 1.0 / n_in, 1.0 / n_out)


def _pattern_weights(x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Distinct correctness patterns of ``x [N, A]`` with their IN and OUT weights (rows ``y``,
    weights ``w [N]``): the rows a classifier on binary inputs needs, as (patterns [P, A], y [2P],
    weights [2P]). The two sides are scaled to equal totals (``class_weight="balanced"``), so the
    classifier's log-odds estimate the likelihood ratio ``log P(pattern | IN) / P(pattern | OUT)``
    and carry no base rate (which the design, not the target, sets)."""
    patterns, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    w_in = np.bincount(inverse[y], weights=w[y], minlength=len(patterns))
    w_out = np.bincount(inverse[~y], weights=w[~y], minlength=len(patterns))
    half = len(y) / 2.0
    weights = np.r_[w_in * half / w_in.sum(), w_out * half / w_out.sum()]
    rows = np.vstack([patterns, patterns]).astype(np.float64)
    return rows, np.r_[np.ones(len(patterns), bool), np.zeros(len(patterns), bool)], weights


def class_scores(x: np.ndarray, y: np.ndarray, w: np.ndarray, x_target: np.ndarray, *, classifier: str,
                 C: float, seed: int) -> np.ndarray:
    """One class's attack model: fitted on reference rows (correctness vectors ``x [N, A]``,
    membership ``y bool [N]``, weights ``w [N]``), it returns the log-odds of membership of
    ``x_target [m, A]``."""
    if y.all() or not y.any():
        return np.zeros(len(x_target))
    rows, labels, weights = _pattern_weights(x, y, w)
    keep = weights > 0
    if classifier == "logistic":
        from sklearn.linear_model import LogisticRegression   # here: scikit-learn's import is slow

        model = LogisticRegression(C=C, max_iter=1000)
    else:
        from sklearn.neural_network import MLPClassifier

        model = MLPClassifier(hidden_layer_sizes=(10, 10), alpha=1.0 / C, max_iter=500, random_state=seed)
    model.fit(rows[keep], labels[keep], sample_weight=weights[keep])
    p = model.predict_proba(x_target.astype(np.float64))[:, list(model.classes_).index(True)]
    return logit(np.clip(p, PROB_CLIP, 1.0 - PROB_CLIP))


def label_augmentation(target, ref, ref_keep, *, labels, classifier: str = "logistic", C: float = 1.0,
                       seed: int = 0) -> np.ndarray:
    """The data-augmentation attack of Choquette-Choo et al. 2021 (Sec. "Data Augmentation"): the
    model is queried on the run's augmented copies of each sample (``queries:``: mirror and
    shifts), and the correctness vector ``correct [A]`` is classified *member / non-member* by an
    attack model trained on shadow models, one attack model per class (the official code,
    cchoquette/membership-inference ``attacks.py``, trains one small network per class).

    Here the shadow models are the reference models: per class c, a classifier is fitted on the
    rows ``(ref[r, i], ref_keep[r, i])`` of every reference model r and every sample i of class c
    (each sample weighing the same on each side, :func:`sample_balanced_weights`; IN and OUT
    scaled to equal totals), and ``score(i)`` is its log-odds of membership for the target's
    vector ``target[i]``: an estimate of the log-likelihood ratio IN vs OUT of that vector.
    ``classifier="logistic"`` (default; a linear attack model, deterministic, a fraction of a
    second), ``"mlp"`` (the official code's per-class network: two hidden layers of 10 units) or
    ``"count"`` (no attack model: the fraction of correct queries, ``mean_a correct[i, a]``).
    ``C``: inverse regularisation (``alpha = 1 / C`` for the network); ``seed``: the network's.
    With one query the attack reduces to the gap attack calibrated per class."""
    name = "label_augmentation"
    choice(name, "classifier", classifier, ("logistic", "mlp", "count"))
    target, ref, keep, labels = validate(target, ref, ref_keep, labels, name=name, kind="bool",
                                         need_ref=classifier != "count")
    if classifier == "count":
        return query_mean(target.astype(np.float64))
    score = np.zeros(len(labels))
    weight = sample_balanced_weights(keep)
    with single_threaded():
        for c in np.unique(labels):                        # loop over classes, not samples
            cols = labels == c
            x = ref[:, cols].reshape(-1, ref.shape[-1])
            score[cols] = class_scores(x, keep[:, cols].ravel(), weight[:, cols].ravel(), target[cols],
                                       classifier=classifier, C=C, seed=seed)
    return score


def label_noise(target, ref=None, ref_keep=None, *, labels) -> np.ndarray:
    """The decision-boundary-distance attack of Choquette-Choo et al. 2021 (Sec. "Decision
    Boundary Distance", with its label-only random-noise estimate of the distance): members lie
    farther from the boundary, so ``score = distance`` (larger = member). The distance
    (``label_noise_distance [n, 1]``, :func:`privaudit.signals.label_noise.boundary_distance`) is
    the smallest Gaussian noise std, in units of the pool's input std, at which the predicted label
    of the majority of noisy copies is wrong (0 for a misclassified sample, as in the paper).
    Several queries: their mean. The paper thresholds the distance with a threshold tuned on
    shadow models; the ROC sweeps every threshold, so no reference model is needed here."""
    target, _, _, _ = validate(target, ref, ref_keep, labels, name="label_noise", kind="nonneg", need_ref=False)
    return query_mean(target)
