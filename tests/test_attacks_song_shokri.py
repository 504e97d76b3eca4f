"""Song & Mittal metrics and class thresholds; Shokri attack classifier."""

from __future__ import annotations

from math import log

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privaudit.attacks import run_attack, shokri, song_mittal
from privaudit.attacks.song_mittal import entropy, fit_thresholds, modified_entropy
from privaudit.errors import ConfigError, SignalError
from privaudit.signals.transforms import derive


def test_modified_entropy_hand_computed():
    p = np.array([[[0.7, 0.2, 0.1]], [[0.7, 0.2, 0.1]], [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    y = np.array([0, 1, 0, 0])
    expected = [
        -(1 - 0.7) * log(0.7) - 0.2 * log(1 - 0.2) - 0.1 * log(1 - 0.1),    # ~0.16217
        -(1 - 0.2) * log(0.2) - 0.7 * log(1 - 0.7) - 0.1 * log(1 - 0.1),    # ~2.14087
        0.0,                                                                  # certain, correct
        -1.0 * log(1e-30) - 1.0 * log(1e-30),                                # certain, wrong
    ]
    got = modified_entropy(p, y)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got[:2], [0.162167, 2.140867], atol=1e-6)
    np.testing.assert_allclose(entropy(p[:1])[0, 0],
                               -(0.7 * log(0.7) + 0.2 * log(0.2) + 0.1 * log(0.1)), rtol=1e-12)


def test_modified_entropy_agrees_with_signal_transform():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4, 50, 2, 7))
    y = rng.integers(0, 7, 50)
    np.testing.assert_allclose(modified_entropy(derive("probs", logits, y), y),
                               derive("mentr", logits, y), rtol=1e-9, atol=1e-12)


def test_class_thresholds_toy():
    # class 0: IN {0.9, 0.8, 0.6}, OUT {0.7, 0.5, 0.4}; balanced accuracy of "value >= t":
    #   t=0.4: .5, 0.5: .667, 0.6: .833, 0.7: .667, 0.8: .833, 0.9: .667 -> smallest best: 0.6
    # class 1: IN {0.3, 0.35}, OUT {0.1, 0.2, 0.32}: t=0.3: (1 + 2/3)/2 = .833 (best), 0.35: .75
    # all together (per_class=False): t=0.6 gives (3/5 + 5/6)/2 = .717, the maximum
    values = np.array([0.9, 0.8, 0.6, 0.7, 0.5, 0.4, 0.3, 0.35, 0.1, 0.2, 0.32])
    member = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0], dtype=bool)
    classes = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    thr, fitted = fit_thresholds(values, member, classes, 3)
    np.testing.assert_array_equal(thr[:2], [0.6, 0.3])
    assert fitted.tolist() == [True, True, False]
    thr, _ = fit_thresholds(values, member, np.zeros_like(classes), 1)
    assert thr[0] == 0.6

    # the same through song_mittal with metric="conf": references R=1 hold these values as p_y
    c = 2
    n = values.size
    probs = np.stack([values, 1 - values], axis=-1)        # p[:, 0] = value
    labels = np.zeros(n, dtype=int)
    probs[classes == 1] = probs[classes == 1][:, ::-1]      # class-1 samples: p_1 = value
    labels[classes == 1] = 1
    ref = probs[None, :, None, :]
    keep = member[None, :]
    target = np.full((n, 1, c), 0.5)
    score = song_mittal(target, ref, keep, labels=labels, metric="conf")
    np.testing.assert_allclose(score, 0.5 - np.where(classes == 0, 0.6, 0.3))
    score = song_mittal(target, ref, keep, labels=labels, metric="conf", per_class=False)
    np.testing.assert_allclose(score, np.full(n, 0.5 - 0.6))


def test_class_without_out_reference_uses_global_threshold():
    values = np.array([0.9, 0.8, 0.6, 0.7, 0.5, 0.4, 0.95])
    member = np.array([1, 1, 1, 0, 0, 0, 1], dtype=bool)
    classes = np.array([0, 0, 0, 0, 0, 0, 1])
    probs = np.stack([values, 1 - values], axis=-1)
    labels = classes.copy()
    probs[classes == 1] = probs[classes == 1][:, ::-1]
    score = song_mittal(np.full((7, 1, 2), 0.5), probs[None, :, None, :], member[None],
                        labels=labels, metric="conf")
    # class 0 (as above): 0.6; class 1 has no OUT value and falls back to the global threshold:
    # IN {.9, .8, .6, .95}, OUT {.7, .5, .4}: t=0.6 -> (1 + 2/3)/2 = .833, t=0.8 -> (3/4 + 1)/2
    # = .875 (best)
    np.testing.assert_allclose(score, 0.5 - np.where(classes == 0, 0.6, 0.8))


def population(seed, m=9, n=4000, a=2, c=10, effect=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    keep = rng.random((m, n)).argsort(axis=0) < m // 2
    logits = rng.normal(0, 1, (n, c))[None, :, None, :] + rng.normal(0, 0.3, (m, n, a, c))
    boost = 2.0 + rng.normal(0, 1.5, n)[None, :, None] + effect * keep[..., None]
    logits = logits + boost[..., None] * np.eye(c)[labels][None, :, None, :]
    return derive("probs", logits, labels), labels, keep


@pytest.mark.parametrize("metric", ["mentr", "entropy", "conf"])
def test_song_mittal_detects_members(metric):
    p, labels, keep = population(1)
    for per_class in (True, False):
        score = song_mittal(p[0], p[1:], keep[1:], labels=labels, metric=metric,
                            per_class=per_class)
        assert roc_auc_score(keep[0], score) > 0.55


def test_shokri_detects_members_and_is_deterministic():
    p, labels, keep = population(2, effect=2.0)
    s1 = run_attack("shokri", p[0], p[1:], keep[1:], labels)
    s2 = shokri(p[0], p[1:], keep[1:], labels=labels)
    np.testing.assert_array_equal(s1, s2)
    assert roc_auc_score(keep[0], s1) > 0.6
    assert np.unique(s1).size > 0.9 * s1.size               # log-odds: practically no ties
    s3 = shokri(p[0], p[1:], keep[1:], labels=labels, per_class=True, top_k=3, max_train=5000)
    assert roc_auc_score(keep[0], s3) > 0.6


def test_shokri_and_song_errors():
    p, labels, keep = population(3, n=200)
    with pytest.raises(ConfigError):
        shokri(p[0], p[1:], keep[1:], labels=labels, top_k=50)
    with pytest.raises(ConfigError):
        song_mittal(p[0], p[1:], keep[1:], labels=labels, metric="loss")
    with pytest.raises(SignalError):
        song_mittal(p[0], p[1:], np.zeros_like(keep[1:]), labels=labels)
    with pytest.raises(SignalError):
        shokri(p[0], p[1:], np.ones_like(keep[1:]), labels=labels)
    with pytest.raises(SignalError):
        song_mittal(p[0] * 3, p[1:], keep[1:], labels=labels)   # not probabilities
    with pytest.raises(SignalError):
        song_mittal(p[0], p[1:], keep[1:], labels=labels + 10)  # label out of range


def _leaking_population(m=12, n=400, c=5, seed=0):
    rng = np.random.default_rng(seed)
    keep = rng.random((m, n)) < 0.5
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, 1, c))
    logits[:, np.arange(n), 0, labels] += 1.0 + 2.0 * keep
    return derive("probs", logits, labels), keep, labels


def test_shokri_is_fitted_once_on_the_models_that_are_never_targets():
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import score_targets

    probs, keep, labels = _leaking_population()
    spec = get_attack("shokri")
    fits, real = [], spec.fit
    counted = type(spec)(**{**spec.__dict__, "fit": lambda *a, **k: fits.append(a[0].shape[0]) or real(*a, **k)})
    scores = score_targets(counted, probs, keep, labels, [0, 1, 2, 3])
    assert fits == [8]                                    # once, on models 4..11
    assert all(roc_auc_score(keep[t], scores[t]) > 0.8 for t in range(4))
    flipped = keep.copy()
    flipped[:4] = ~flipped[:4]                           # the targets' own membership never enters the fit
    np.testing.assert_array_equal(score_targets(spec, probs, flipped, labels, [0, 1, 2, 3]), scores)
    direct = shokri(probs[2], probs[4:], keep[4:], labels=labels)
    np.testing.assert_array_equal(scores[2], direct)     # the same classifier as one plain call


def test_shokri_with_every_model_a_target_fits_each_on_the_others():
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import score_targets

    probs, keep, labels = _leaking_population(m=6)
    scores = score_targets(get_attack("shokri"), probs, keep, labels, list(range(6)))
    np.testing.assert_array_equal(scores[0], shokri(probs[0], probs[1:], keep[1:], labels=labels))


def test_song_mittal_thresholds_are_fitted_once_on_the_models_that_are_never_targets():
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import score_targets

    probs, keep, labels = _leaking_population()
    spec = get_attack("song_mittal")
    scores = score_targets(spec, probs, keep, labels, [0, 1, 2])
    assert all(roc_auc_score(keep[t], scores[t]) > 0.8 for t in range(3))
    flipped = keep.copy()
    flipped[:3] = ~flipped[:3]
    np.testing.assert_array_equal(score_targets(spec, probs, flipped, labels, [0, 1, 2]), scores)
    np.testing.assert_array_equal(scores[1], song_mittal(probs[1], probs[3:], keep[3:], labels=labels))
