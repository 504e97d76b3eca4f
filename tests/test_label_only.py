"""Label-only attacks (Choquette-Choo et al., ICML 2021; the gap attack of Yeom et al., CSF 2018):
they see predicted labels only (argmax-invariance, boolean signals), the gap attack and the noise
bisection match hand computations, a leaking population is detected and shuffled membership stays
at chance, and the ``label_noise`` stage runs end to end (also for a user's own target model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from privaudit.attacks import ATTACKS, gap, label_augmentation, run_attack
from privaudit.attacks.label_only import sample_balanced_weights
from privaudit.attacks.registry import AttackSpec
from privaudit.data.datasets import load_dataset
from privaudit.errors import PrivauditError, SignalError
from privaudit.evaluation import metrics
from privaudit.evaluation.protocol import score_targets, summarize
from privaudit.models.architectures import ArchSpec
from privaudit.models.group import ModuleList
from privaudit.signals.label_noise import boundary_distance, input_scale, noise
from privaudit.signals.query import query_logits
from privaudit.signals.transforms import LABEL_ONLY_SIGNALS, derive
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

GRID = [(False, 0, 0), (True, 0, 0), (False, 1, 0), (False, 0, 1), (False, -1, 0), (False, 0, -1)]
TARGETS = [0, 1, 2, 3]


def leaky_digits(n: int = 600, flip: float = 0.2, seed: int = 5):
    """The first ``n`` digits with a fraction ``flip`` of labels replaced at random: models memorise
    their own mislabelled rows, so membership leaks through the predicted label."""
    ds = load_dataset("digits")
    x, y = ds.x[:n], ds.y[:n].copy()
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < flip
    y[flipped] = rng.integers(0, 10, flipped.sum())
    return x, y


@pytest.fixture(scope="module")
def population():
    """8 MLPs, each trained on a random half (balanced design) of the leaky pool: their logits
    under 6 queries, their label-only noise distances, and the group itself."""
    x, y = leaky_digits()
    m = 8
    keep = np.random.default_rng(0).random((m, len(y))).argsort(axis=0) < m // 2
    group = train_group(torch.from_numpy(x), torch.from_numpy(y), keep, list(range(m)), spec=ArchSpec("mlp", (128,)),
                        recipe=Recipe(epochs=40, batch_size=32, lr=0.003), n_classes=10, root_seed=0,
                        steps=steps_per_epoch(keep, 32)).eval()
    logits = query_logits(group, torch.from_numpy(x), GRID)
    dist = boundary_distance(group.forward_each, torch.from_numpy(x), torch.from_numpy(y), n_models=m, seed=0,
                             scale=input_scale(x), draws=8, steps=8)[..., None]
    return {"x": x, "y": y, "keep": keep, "group": group, "logits": logits, "distance": dist}


def signal_of(pop, name: str) -> np.ndarray:
    return pop["distance"] if name == "label_noise_distance" else derive(name, pop["logits"], pop["y"])


def _shuffled(keep: np.ndarray, seed: int = 9) -> np.ndarray:
    """Each sample's IN models permuted: the design kept, membership unrelated to the training."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(col) for col in keep.T]).T


# -- the signals are label-only --------------------------------------------------------------------

def _monotone_per_row(logits: np.ndarray) -> list[np.ndarray]:
    """Strictly increasing transforms of each row of logits (over classes), row-dependent: what a
    model exposing other confidences but the same predicted labels would give."""
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.1, 10.0, logits.shape[:-1] + (1,))
    shift = rng.normal(0.0, 100.0, logits.shape[:-1] + (1,))
    return [scale * logits + shift, np.exp(np.clip(logits, -50, 50)), logits ** 3 + shift,
            derive("probs", logits, np.zeros(logits.shape[-3], dtype=int))]


@pytest.mark.parametrize("name", ["gap", "label_augmentation"])
def test_label_only_attacks_read_predicted_labels_only(name, population):
    spec = ATTACKS[name]
    assert spec.label_only and spec.signal in LABEL_ONLY_SIGNALS
    y, keep = population["y"], population["keep"]
    base = score_targets(spec, derive(spec.signal, population["logits"], y), keep, y, TARGETS)
    for other in _monotone_per_row(population["logits"]):
        sig = derive(spec.signal, other, y)
        assert sig.dtype == bool
        np.testing.assert_array_equal(score_targets(spec, sig, keep, y, TARGETS), base)


def test_every_label_only_attack_is_registered_on_a_label_only_signal():
    names = {n for n, s in ATTACKS.items() if s.label_only}
    assert names == {"gap", "label_augmentation", "label_noise"}
    assert all(ATTACKS[n].signal in LABEL_ONLY_SIGNALS for n in names)


def test_label_only_attacks_receive_booleans_and_refuse_confidences(population):
    seen = {}

    def spy(target, ref, ref_keep, *, labels):
        """Records what a label-only attack function is handed."""
        seen["target"], seen["ref"] = target.dtype, ref.dtype
        return np.zeros(len(labels))

    y, keep = population["y"], population["keep"]
    corr = derive("correct", population["logits"], y)
    run_attack(AttackSpec("spy", spy, "correct", "online"), corr[0], corr[1:], keep[1:], y)
    assert seen == {"target": np.dtype(bool), "ref": np.dtype(bool)}
    conf = derive("conf", population["logits"], y)          # confidences in [0, 1]: refused
    for name in ("gap", "label_augmentation"):
        with pytest.raises(SignalError, match="label-only"):
            run_attack(name, conf[0], conf[1:], keep[1:], y)
        with pytest.raises(SignalError, match="label-only"):
            ATTACKS[name].fn(conf[0], conf[1:], keep[1:], labels=y)


def test_noise_distance_reads_predicted_labels_only(population):
    x, y, group = torch.from_numpy(population["x"][:64]), torch.from_numpy(population["y"][:64]), population["group"]
    kw = dict(n_models=group.n_models, seed=3, scale=1.0, draws=4, steps=6)
    base = boundary_distance(group.forward_each, x, y, **kw)
    squashed = lambda inputs: torch.softmax(group.forward_each(inputs) * 0.1, dim=-1) ** 3 + 7.0
    np.testing.assert_array_equal(boundary_distance(squashed, x, y, **kw), base)


def test_config_refuses_a_confidence_signal_for_a_label_only_attack():
    from privaudit.config import parse_config

    with pytest.raises(PrivauditError, match="label-only"):
        parse_config({"attacks": [{"name": "gap", "signal": "phi"}]})
    assert parse_config({"attacks": [{"name": "loss", "signal": "label_noise_distance"}]}).attacks[0].signal


# -- formulas by hand -----------------------------------------------------------------------------

def test_gap_attack_on_four_samples():
    logits = np.array([[[3.0, 1.0, 0.0]], [[0.0, 1.0, 2.0]], [[0.0, 0.0, 5.0]], [[1.0, 2.0, 0.0]]])
    labels = np.array([0, 1, 2, 0])
    correct = derive("correct", logits, labels)                # predictions 0, 2, 2, 1
    np.testing.assert_array_equal(correct[:, 0], [True, False, True, False])
    score = gap(correct, None, None, labels=labels)
    np.testing.assert_array_equal(score, [1.0, 0.0, 1.0, 0.0])
    members = np.array([True, True, True, False])
    # pairs (member, non-member): (1 vs 0) win, (0 vs 0) tie, (1 vs 0) win -> (1 + 1/2 + 1) / 3;
    # also (1 + TPR - FPR) / 2 with TPR = 2/3 (train accuracy), FPR = 0 (test accuracy)
    assert metrics.auc(members, score) == pytest.approx(5 / 6)
    assert metrics.auc(members, score) == pytest.approx((1 + 2 / 3 - 0) / 2)


def test_label_augmentation_formulas():
    target = np.array([[True, True, False], [False, False, False], [True, False, True]])
    labels = np.zeros(3, dtype=int)
    np.testing.assert_allclose(label_augmentation(target, None, None, labels=labels, classifier="count"),
                               [2 / 3, 0.0, 2 / 3])
    # one class, one query: IN rows mostly correct, OUT rows mostly wrong -> correct scores higher
    ref = np.array([[[True]] * 3, [[True]] * 3, [[False]] * 3, [[False]] * 3])
    keep = np.array([[True] * 3, [True] * 3, [False] * 3, [False] * 3])
    ref[0, 0, 0] = False
    ref[2, 0, 0] = True
    s = label_augmentation(np.array([[True], [False], [True]]), ref, keep, labels=labels)
    assert s[0] == s[2] > 0 > s[1]
    w = sample_balanced_weights(np.array([[True, False], [True, True], [False, True], [False, True]]))
    np.testing.assert_allclose(w, [[0.5, 1.0], [0.5, 1 / 3], [0.5, 1 / 3], [0.5, 1 / 3]])


def _abs_classifier(bounds: list[float]):
    """K 1-d classifiers: class 0 iff |x| < b_k (logits [b - |x|, |x| - b])."""
    b = torch.tensor(bounds, dtype=torch.float32).view(-1, 1)

    def forward_each(x: torch.Tensor) -> torch.Tensor:
        r = x.reshape(x.shape[0], x.shape[1]).abs()
        return torch.stack([b - r, r - b], dim=-1)
    return forward_each


def test_noise_bisection_finds_a_known_boundary_distance():
    draws, steps, sigma_max, scale, seed = 9, 12, 8.0, 0.5, 4
    bounds = [1.0, 0.3, 1e6]                                   # the last model never flips
    x = torch.zeros(3, 1)
    y = torch.tensor([0, 0, 1])                                # sample 2 is misclassified at x = 0
    d = boundary_distance(_abs_classifier(bounds), x, y, n_models=3, seed=seed, scale=scale, sigma_max=sigma_max,
                          draws=draws, steps=steps)
    tol = sigma_max / 2 ** (steps + 1)
    for i in range(2):
        z = np.sort(np.abs(noise(seed, np.array([i]), draws, (1,))[0, :, 0]))[::-1]
        q = z[draws // 2]                                      # the (D//2 + 1)-th largest |z|
        for k, b in enumerate(bounds[:2]):                     # wrong for a majority iff sigma > b / (scale q)
            expected = b / (scale * q)
            assert abs(d[k, i] - min(expected, sigma_max)) <= tol + 1e-6, (k, i, d[k, i], expected)
        assert d[2, i] == sigma_max                            # censored
    assert (d[:, 2] == 0).all()                                # misclassified: distance 0


def test_noise_depends_only_on_seed_sample_and_draw(population):
    a = noise(7, np.array([5]), 4, (1, 8, 8))
    b = noise(7, np.array([3, 5]), 8, (1, 8, 8))
    np.testing.assert_array_equal(a[0], b[1, :4])
    # a model's distances do not depend on the group it is computed in, nor on the chunking
    x, y = torch.from_numpy(population["x"][:40]), torch.from_numpy(population["y"][:40])
    models = list(population["group"].models())
    kw = dict(seed=1, scale=1.0, draws=4, steps=6)
    whole = boundary_distance(ModuleList(models[:4]).forward_each, x, y, n_models=4, **kw)
    pair = boundary_distance(ModuleList(models[2:4]).forward_each, x, y, n_models=2, **kw)
    np.testing.assert_array_equal(whole[2:4], pair)
    tail = boundary_distance(ModuleList(models[2:4]).forward_each, x[10:], y[10:], n_models=2,
                             sample_ids=np.arange(10, 40), **kw)
    np.testing.assert_array_equal(pair[:, 10:], tail)


# -- a leaking population, and chance on shuffled membership --------------------------------------

@pytest.mark.parametrize("name", ["gap", "label_augmentation", "label_noise"])
def test_label_only_attacks_detect_members_and_not_shuffled_ones(name, population):
    spec = ATTACKS[name]
    sig, y, keep = signal_of(population, spec.signal), population["y"], population["keep"]
    scores = score_targets(spec, sig, keep, y, TARGETS)
    _, summary = summarize(scores, keep[TARGETS], fprs=(0.01,), n_boot=100)
    shuffled = _shuffled(keep)
    null = score_targets(spec, sig, shuffled, y, TARGETS)
    _, null_summary = summarize(null, shuffled[TARGETS], fprs=(0.01,), n_boot=100)
    print(f"{name}: AUC {summary['auc']}, shuffled {null_summary['auc']}")
    assert summary["auc"]["lo"] > 0.52
    assert null_summary["auc"]["lo"] <= 0.5 <= null_summary["auc"]["hi"]


# -- end to end --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_run_reports_the_new_attacks_with_intervals(tmp_path):
    """``privaudit run configs/digits.yaml --attacks qmia,gap,label_augmentation,label_noise
    --models 8 --epochs 5``: every attack reported with its interval, QMIA's public rows NaN."""
    from typer.testing import CliRunner

    from privaudit.cli import app

    repo = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(app, ["run", str(repo / "configs" / "digits.yaml"), "--attacks",
                                      "qmia,gap,label_augmentation,label_noise", "--models", "8", "--epochs", "5",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output[-3000:]
    run = tmp_path / "digits"
    doc = json.loads((run / "results" / "metrics.json").read_text())
    for name in ("qmia", "gap", "label_augmentation", "label_noise"):
        auc = doc["attacks"][name]["summary"]["auc"]
        assert auc["lo"] <= auc["mean"] <= auc["hi"], (name, auc)
        assert name in result.output
    dist = np.load(run / "signals" / "epoch_0005" / "label_noise_distance.npy")
    keep = np.load(run / "keep.npy")
    assert dist.shape == (8, keep.shape[1], 1) and (dist >= 0).all()
    qmia = np.load(run / "results" / "epoch_0005" / "scores_qmia.npy")
    assert not np.isnan(qmia).any()                 # cross-fitted: every row scored out of fold
    assert doc["attacks"]["qmia"]["n_nonmembers_per_target"] == int((~keep[:8]).sum(axis=1).min())


@pytest.mark.slow
def test_own_target_model_gets_label_only_and_qmia_attacks(tmp_path):
    """A user's model (safetensors): its noise distance from its labels, QMIA on half its
    non-members (their scores NaN), the label-only attacks in ``results/target/metrics.json``."""
    from safetensors.torch import save_file

    from privaudit.config import load_config
    from privaudit.pipeline import run_all
    from privaudit.runtime.run import Layout, Run

    ds = load_dataset("digits")
    members = np.random.default_rng(123).random(len(ds.y)) < 0.5
    model = next(iter(train_group(torch.from_numpy(ds.x), torch.from_numpy(ds.y), members[None], [0],
                                  spec=ArchSpec("mlp", (64,)), recipe=Recipe(epochs=10, batch_size=32, lr=0.003),
                                  n_classes=10, root_seed=999, steps=steps_per_epoch(members[None], 32)).models()))
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    np.save(tmp_path / "members.npy", members)
    cfg = {"name": "own", "out": str(tmp_path / "runs"), "data": {"name": "digits"},
           "population": {"n_models": 4, "models_per_group": 4}, "model": {"arch": "mlp", "hidden": [64]},
           "training": {"epochs": 5, "batch_size": 64, "lr": 0.003, "workers": 1},
           "attacks": ["qmia", "gap", "label_noise"], "evaluation": {"targets": 1, "bootstrap": 20},
           "target": {"model": str(tmp_path / "model.safetensors"), "members": str(tmp_path / "members.npy")}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_all(load_config(tmp_path / "cfg.yaml"))
    run = Run(tmp_path / "runs" / "own")
    doc = run.load_json(Layout.target_metrics)
    assert set(doc["attacks"]) == {"qmia", "gap", "label_noise"}
    dist = run.load_npy(Layout.signal("target_label_noise_distance", 5))
    assert dist.shape == (1, len(members), 1)
    qmia = run.load_npy(Layout.target_scores("qmia"))
    assert qmia.shape == members.shape and not np.isnan(qmia).any()
