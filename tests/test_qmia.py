"""QMIA (Bertran et al., NeurIPS 2023): the standardised score and the cross-fitting by hand on tiny
cases, a heteroscedastic Gaussian law recovered (network and boosting regressors), a leaking
population detected with no reference model (public half, and cross-fitted on all non-members),
chance on shuffled membership, and the public half of each target's non-members fitted on but
excluded from the ROC (NaN scores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privaudit.attacks import ATTACKS, qmia, run_attack
from privaudit.attacks.qmia import MIN_PUBLIC, fold_of, standardized_margin
from privaudit.config import parse_config
from privaudit.data.datasets import load_dataset
from privaudit.errors import PrivauditError, SignalError
from privaudit.evaluation import intervals, metrics
from privaudit.evaluation.protocol import (evaluate_given_target, evaluated, public_split, result_from_scores,
                                           score_targets, summarize)
from privaudit.models.architectures import ArchSpec
from privaudit.signals.query import query_logits
from privaudit.signals.transforms import derive
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

TARGETS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def population():
    """8 MLPs on random halves of 600 digits whose labels are 20% random (memorised by members)."""
    ds = load_dataset("digits")
    x, y = ds.x[:600], ds.y[:600].copy()
    rng = np.random.default_rng(5)
    flipped = rng.random(600) < 0.2
    y[flipped] = rng.integers(0, 10, flipped.sum())
    keep = np.random.default_rng(0).random((8, 600)).argsort(axis=0) < 4
    group = train_group(torch.from_numpy(x), torch.from_numpy(y), keep, list(range(8)), spec=ArchSpec("mlp", (128,)),
                        recipe=Recipe(epochs=40, batch_size=32, lr=0.003), n_classes=10, root_seed=0,
                        steps=steps_per_epoch(keep, 32))
    hinge = derive("hinge", query_logits(group, torch.from_numpy(x), [(False, 0, 0)]), y)
    return {"x": x, "y": y, "keep": keep, "hinge": hinge}


def _scores(pop, keep=None, **params):
    keep = pop["keep"] if keep is None else keep
    return score_targets(ATTACKS["qmia"], pop["hinge"], keep, pop["y"], TARGETS,
                         context={"features": pop["x"], "public_seed": 0}, **params)


# -- the score by hand ------------------------------------------------------------------------------

def test_standardised_score_on_a_hand_made_gaussian_case():
    # public non-member scores 1..5 (too few for a regressor): mu = 3, sigma^2 = 2 (ddof 0)
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 3.0])[:, None]
    public = np.array([True] * 5 + [False] * 2)
    assert public.sum() < MIN_PUBLIC
    # folds=0: one fit on every public row (no cross-fitting)
    got = qmia(s, labels=np.zeros(7, dtype=int), features=np.zeros((7, 2)), public=public, folds=0)
    np.testing.assert_allclose(got, (s[:, 0] - 3.0) / np.sqrt(2.0))
    np.testing.assert_allclose(standardized_margin(np.array([4.0]), np.array([1.0]), np.array([2.0])), [1.5])
    pin = qmia(s, labels=np.zeros(7, dtype=int), features=np.zeros((7, 2)), public=public, loss="pinball",
               alpha=0.25, folds=0)
    np.testing.assert_allclose(pin, s[:, 0] - np.quantile([1, 2, 3, 4, 5], 0.75))


def test_cross_fitting_by_hand_on_a_tiny_case():
    """folds=2 on 8 rows: each row is standardised with the mean / ddof-0 std of the public rows of
    the *other* fold (fewer than MIN_PUBLIC rows: the constant fit), never with its own score."""
    s = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0, 5.0])
    public = np.array([True, True, True, True, True, True, False, False])
    fold = fold_of(8, 2, 0)
    assert set(fold) == {0, 1} and all((public & (fold != k)).sum() >= 2 for k in (0, 1))
    want = np.empty(8)
    for k in (0, 1):
        other = s[public & (fold != k)]
        want[fold == k] = (s[fold == k] - other.mean()) / other.std()
    got = qmia(s[:, None], labels=np.zeros(8, dtype=int), features=np.zeros((8, 1)), public=public, folds=2)
    np.testing.assert_allclose(got, want)
    # a public row's own score moves its own standardised score only: its fold's fit never saw it
    i = int(np.flatnonzero(public & (fold == 0))[0])
    s2 = s.copy()
    s2[i] += 10.0
    got2 = qmia(s2[:, None], labels=np.zeros(8, dtype=int), features=np.zeros((8, 1)), public=public, folds=2)
    same = fold == 0
    same[i] = False
    np.testing.assert_allclose(got2[same], got[same])
    np.testing.assert_allclose(got2[i] - got[i], 10.0 / s[public & (fold == 1)].std())


@pytest.mark.parametrize("regressor", ["mlp", "boosting"])
def test_gaussian_regression_recovers_a_heteroscedastic_non_member_law(regressor):
    """Non-member score ~ N(3 x0, (0.3 + x1)^2); members shifted by one sigma. The fitted
    standardised score of held-out non-members is ~N(0, 1), and it ranks members as well as the
    true law does, far better than the raw score."""
    rng = np.random.default_rng(0)
    n = 6000
    x = rng.uniform(0.0, 1.0, (n, 2))
    mu, sigma = 3.0 * x[:, 0], 0.3 + x[:, 1]
    member = rng.random(n) < 0.5
    s = mu + sigma * (rng.normal(size=n) + 1.0 * member)
    public = ~member & (rng.random(n) < 0.6)
    got = qmia(s[:, None], labels=np.zeros(n, dtype=int), features=x.astype(np.float32), public=public,
               with_label=False, regressor=regressor)
    held_out = ~member & ~public
    z = got[held_out]
    assert abs(z.mean()) < 0.1 and 0.85 < z.std() < 1.15, (z.mean(), z.std())
    ev = ~public
    oracle = metrics.auc(member[ev], ((s - mu) / sigma)[ev])
    assert metrics.auc(member[ev], got[ev]) > oracle - 0.02
    assert metrics.auc(member[ev], got[ev]) > metrics.auc(member[ev], s[ev]) + 0.05


# -- population: detection, chance, exclusion -------------------------------------------------------

def test_qmia_detects_members_without_reference_models(population):
    scores = _scores(population)
    _, summary = summarize(scores, population["keep"][TARGETS], fprs=(0.01,), n_boot=100)
    print("qmia AUC", summary["auc"])
    assert summary["auc"]["lo"] > 0.55
    # no reference model is read: the scores do not change when the other models' rows do
    sig = population["hinge"].copy()
    sig[4:] = 0.0
    np.testing.assert_array_equal(
        score_targets(ATTACKS["qmia"], sig, population["keep"], population["y"], [0],
                      context={"features": population["x"], "public_seed": 0}), scores[:1])


def test_qmia_is_at_chance_on_shuffled_membership(population):
    rng = np.random.default_rng(9)
    shuffled = np.stack([rng.permutation(col) for col in population["keep"].T]).T
    scores = _scores(population, keep=shuffled)
    _, summary = summarize(scores, shuffled[TARGETS], fprs=(0.01,), n_boot=100)
    print("qmia shuffled AUC", summary["auc"])
    assert summary["auc"]["lo"] <= 0.5 <= summary["auc"]["hi"]


def _crossfit_scores(pop, keep):
    """Cross-fitted on *all* of each target's non-members: every row scored, none left out."""
    return np.stack([qmia(pop["hinge"][t], labels=pop["y"], features=pop["x"], public=~keep[t]) for t in TARGETS])


def test_cross_fitted_on_all_non_members_detects_members_and_is_at_chance_when_shuffled(population):
    keep = population["keep"]
    scores = _crossfit_scores(population, keep)
    assert np.isfinite(scores).all()
    _, summary = summarize(scores, keep[TARGETS], fprs=(0.01,), n_boot=100)
    print("qmia cross-fit AUC", summary["auc"])
    assert summary["auc"]["lo"] > 0.55
    rng = np.random.default_rng(11)
    shuffled = np.stack([rng.permutation(col) for col in keep.T]).T
    scores = _crossfit_scores(population, shuffled)
    _, summary = summarize(scores, shuffled[TARGETS], fprs=(0.01,), n_boot=100)
    print("qmia cross-fit shuffled AUC", summary["auc"])
    assert summary["auc"]["lo"] <= 0.5 <= summary["auc"]["hi"]
    assert abs(summary["auc"]["mean"] - 0.5) < 0.03


def test_regressor_options_are_checked(population):
    h, y, x = population["hinge"][0], population["y"], population["x"]
    public = ~population["keep"][0]
    with pytest.raises(PrivauditError, match="regressor"):
        qmia(h, labels=y, features=x, public=public, regressor="forest")
    with pytest.raises(SignalError, match="folds"):
        qmia(h, labels=y, features=x, public=public, folds=1)
    with pytest.raises(SignalError, match="image features"):
        qmia(h, labels=y, features=x.reshape(len(y), -1), public=public, regressor="cnn")


def test_cross_fitted_by_default_every_row_is_scored_out_of_fold(population):
    keep, scores = population["keep"], _scores(population)
    assert not np.isnan(scores).any()                       # all non-members are public, none excluded
    result = result_from_scores("qmia", "hinge", scores, keep[TARGETS], TARGETS, fprs=(0.01,), n_boot=50)
    assert result.n_nonmembers == int((~keep[TARGETS]).sum(axis=1).min())
    assert result.summary["auc"]["lo"] > 0.5
    shuffled = keep.copy()
    for t in TARGETS:                                     # membership unrelated to the model: chance
        shuffled[t] = np.random.default_rng(t).permutation(keep[t])
    chance = result_from_scores("qmia", "hinge", _scores(population, keep=shuffled), shuffled[TARGETS], TARGETS,
                                fprs=(0.01,), n_boot=50)
    assert chance.summary["auc"]["lo"] < 0.5 < chance.summary["auc"]["hi"] + 0.02


def test_public_half_is_fitted_on_and_excluded_from_the_roc(population):
    """Without cross-fitting (``folds: 0``) the public half is fitted in-sample and left out."""
    keep, scores = population["keep"], _scores(population, folds=0)
    for i, t in enumerate(TARGETS):
        public = public_split(keep[t], 0, t)
        assert not (public & keep[t]).any() and public.sum() == (~keep[t]).sum() // 2
        np.testing.assert_array_equal(np.isnan(scores[i]), public)
    # every metric ignores the NaN rows: the same as on the evaluated rows alone
    per_target, summary = summarize(scores, keep[TARGETS], fprs=(0.01,), n_boot=50)
    for i, t in enumerate(TARGETS):
        y, s = evaluated(keep[t], scores[i])
        assert per_target[i]["auc"] == pytest.approx(metrics.auc(y, s))
        assert per_target[i]["tpr@0.01"] == pytest.approx(metrics.tpr_at_fpr(y, s, 0.01))
        tpr = np.array([per_target[i]["tpr@0.01"]])         # the interval's bias term too
        assert intervals.threshold_bias(keep[t][None], scores[i][None], 0.01, tpr) == \
            pytest.approx(intervals.threshold_bias(y[None], s[None], 0.01, tpr))
    for m in ("auc", "tpr@0.01"):
        assert summary[m]["lo"] <= summary[m]["mean"] <= summary[m]["hi"] and not summary[m].get("widened"), m
    result = result_from_scores("qmia", "hinge", scores, keep[TARGETS], TARGETS, fprs=(0.01,), n_boot=0)
    n_out = (~keep[TARGETS]).sum(axis=1)
    assert result.n_nonmembers == int((n_out - n_out // 2).min())
    # the public rows' in-sample scores would flatter the attack if they counted as non-members
    # (they are fitted on); excluded, changing them changes nothing
    cheat = np.where(np.isnan(scores), -1e9, scores)
    assert summarize(cheat, keep[TARGETS], fprs=(0.01,), n_boot=0)[0] != per_target
    assert np.array_equal(np.isnan(scores), np.isnan(_scores(population, folds=0)))


def test_own_target_model_splits_its_own_non_members(population):
    keep, y = population["keep"], population["y"]
    members = keep[0]
    res = evaluate_given_target(ATTACKS["qmia"], population["hinge"][0], None, None, members, y, fprs=(0.01,),
                                n_boot=20, context={"features": population["x"], "public_seed": 3}, folds=0)
    np.testing.assert_array_equal(np.isnan(res.scores[0]), public_split(members, 3))
    assert not np.array_equal(public_split(members, 3), public_split(members, 3, 0))   # its own stream
    assert res.summary["auc"]["mean"] > 0.55


# -- wiring -------------------------------------------------------------------------------------------

def test_qmia_needs_its_context_and_hides_it_from_configs(population):
    spec = ATTACKS["qmia"]
    assert spec.mode == "none" and spec.needs_features and spec.needs_public and spec.signal == "hinge"
    assert "features" not in spec.params and "public" not in spec.params
    h, y = population["hinge"], population["y"]
    with pytest.raises(SignalError, match="features"):
        run_attack(spec, h[0], None, None, y, public=public_split(population["keep"][0], 0))
    with pytest.raises(SignalError, match="public"):
        run_attack(spec, h[0], None, None, y, features=population["x"])
    with pytest.raises(PrivauditError, match="unknown parameter"):
        parse_config({"attacks": [{"name": "qmia", "params": {"public": [1]}}]})


def test_attacks_command_lists_the_new_attacks():
    from typer.testing import CliRunner

    from privaudit.cli import app

    out = CliRunner().invoke(app, ["attacks"], env={"COLUMNS": "250"}).output
    for name in ("qmia", "gap", "label_augmentation", "label_noise"):
        assert name in out


def test_studies_refuse_attacks_that_leave_samples_unscored():
    """Memorization, dynamics and the DP audit need a score for every sample: QMIA's public half is
    unscored, and the noise distance exists for the final epoch only -- one line, before any work."""
    from privaudit.commands.common import per_sample_attack
    from privaudit.errors import ConfigError

    for study in ("memorization", "dynamics", "audit"):
        with pytest.raises(ConfigError, match="public half unscored"):
            per_sample_attack("qmia", study)
    with pytest.raises(ConfigError, match="final epoch only"):
        per_sample_attack("label_noise", "dynamics", every_checkpoint=True)
    assert per_sample_attack("label_noise", "memorization") == "label_noise"
    assert per_sample_attack("lira_online", "dynamics", every_checkpoint=True) == "lira_online"
