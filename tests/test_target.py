"""Auditing a user's own trained model (``target:``): the population is the reference set; the
target leaks when it trained on its members and stays at chance when the members mask is wrong;
a target fed inputs it was not trained on is refused before training; the target's utility,
reference-architecture note and black-box curvature attacks reach metrics.json and the report;
bad files get one-line errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from privaudit.config import load_config
from privaudit.data.datasets import load_dataset
from privaudit.errors import ConfigError, DataError
from privaudit.models.architectures import ArchSpec
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

REPO = Path(__file__).resolve().parents[1]
POP = {"seed": 0, "data": {"name": "digits"},
       "population": {"n_models": 16, "models_per_group": 16},
       "model": {"arch": "mlp", "hidden": [256]},
       "training": {"epochs": 30, "batch_size": 32, "lr": 0.003, "workers": 1},
       "attacks": ["loss", "lira_online", "rmia_online"], "evaluation": {"targets": 2, "bootstrap": 50}}


def _train_mlp(x: np.ndarray, y: np.ndarray, members: np.ndarray, hidden=(256,), epochs: int = 30) -> torch.nn.Module:
    """The "user's" MLP, trained outside the population (another seed) on ``members``."""
    keep = members[None]
    group = train_group(torch.from_numpy(x), torch.from_numpy(y), keep, [0], spec=ArchSpec("mlp", tuple(hidden)),
                        recipe=Recipe(epochs=epochs, batch_size=32, lr=0.003), n_classes=10, root_seed=999,
                        steps=steps_per_epoch(keep, 32))
    return next(iter(group.models()))


def _export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), str(path))


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """The "user's" model on its own random half of digits (as privaudit prepares digits), saved
    with ``torch.export`` (dynamic batch), plus its members mask."""
    folder = tmp_path_factory.mktemp("user")
    ds = load_dataset("digits")
    members = np.random.default_rng(123).random(len(ds.y)) < 0.5
    _export(_train_mlp(ds.x, ds.y, members), torch.from_numpy(ds.x[:4]), folder / "model.pt2")
    np.save(folder / "members.npy", members)
    np.save(folder / "shuffled.npy", np.random.default_rng(7).permutation(members))
    return folder


def _config(tmp_path: Path, user: Path, members: str = "members.npy", extra: dict | None = None, **target) -> Path:
    doc = POP | {"name": "audit", "out": str(tmp_path / "runs"),
                 "target": {"model": str(user / "model.pt2"), "members": str(user / members)} | target} | (extra or {})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_target_model_leaks_its_members_and_not_a_wrong_mask(tmp_path, user_model):
    run_all(load_config(_config(tmp_path, user_model)))
    run = Run(tmp_path / "runs" / "audit")
    doc = run.load_json(Layout.target_metrics)
    lira = doc["attacks"]["lira_online"]["summary"]
    loss = doc["attacks"]["loss"]["summary"]
    assert lira["auc"]["lo"] > 0.55, lira["auc"]
    assert lira["tpr@0.01"]["mean"] > loss["tpr@0.01"]["mean"]
    assert run.load_npy(Layout.target_scores("lira_online")).shape == (1797,)
    assert "Your target model" in run.read_text(Layout.report)
    # a .pt2 hides its architecture: the run says the reference models must match it
    assert any("cannot see the architecture inside model.pt2" in n for n in doc["notes"])

    # the same model judged against a shuffled membership mask: nothing to find
    (tmp_path / "b").mkdir()
    run_all(load_config(_config(tmp_path / "b", user_model, members="shuffled.npy")))
    doc = Run(tmp_path / "b" / "runs" / "audit").load_json(Layout.target_metrics)
    assert abs(doc["attacks"]["lira_online"]["summary"]["auc"]["mean"] - 0.5) < 0.04


def test_target_files_are_checked_with_clear_errors(tmp_path, user_model):
    from privaudit.models.loading import read_model_file
    from privaudit.stages.target import read_members

    with pytest.raises(DataError, match=r"has shape \[5\]; expected \[1797\]"):
        np.save(tmp_path / "short.npy", np.ones(5, dtype=bool))
        read_members(tmp_path / "short.npy", 1797)
    with pytest.raises(DataError, match="marks every row as a member"):
        np.save(tmp_path / "all.npy", np.ones(1797, dtype=bool))
        read_members(tmp_path / "all.npy", 1797)
    with pytest.raises(DataError, match="missing file"):
        read_members(tmp_path / "nope.npy", 1797)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"junk.pt is not a .safetensors or .pt2 file.*can run code"):
        read_model_file(tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="data.n would change them"):
        doc = yaml.safe_load(_config(tmp_path, user_model).read_text())
        doc["data"]["n"] = 500
        (tmp_path / "n.yaml").write_text(yaml.safe_dump(doc))
        load_config(tmp_path / "n.yaml")


def _linear_program(path: Path, seed: int, outputs: int = 10) -> None:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, outputs)).eval()
    _export(model, torch.zeros(4, 1, 8, 8), path)


def test_a_target_with_the_wrong_output_is_refused_before_training(tmp_path, user_model):
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target

    _linear_program(tmp_path / "m3.pt2", seed=0, outputs=3)
    cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / "m3.pt2")))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        with pytest.raises(DataError, match=r"must return finite logits \[B, 10\]"):
            prepare_target(run, cfg)   # the target is queried before any training
    assert not run.path("models").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_is_refused_because_loading_it_runs_its_code(tmp_path, user_model):
    """TorchScript archives run TorchScript code when loaded; neither the suffix nor a renamed
    archive gets one through."""
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target

    script = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    script.save(str(tmp_path / "m.pt"))
    script.save(str(tmp_path / "renamed.pt2"))
    for name, needle in (("m.pt", "not a .safetensors or .pt2 file"),
                         ("renamed.pt2", "torch.export.save does not write")):
        cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / name)))
        run = Run(cfg.run_dir)
        with run.writer():
            prepare(run, cfg)
            with pytest.raises(DataError, match=needle):
                prepare_target(run, cfg)


def test_a_target_at_chance_on_its_members_is_refused_before_training(tmp_path, user_model):
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target

    cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / "linear.pt2")))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        with pytest.raises(DataError, match="target.model: missing file"):
            prepare_target(run, cfg)
        assert not run.path("models").exists()   # nothing trained
        _linear_program(tmp_path / "linear.pt2", seed=0)
        # an untrained linear model is at chance on its "members": refused, naming the likely cause
        with pytest.raises(DataError, match=r"hardly above the .* most frequent class.*data.normalize: none"):
            prepare_target(run, cfg)
        assert not run.has(Layout.signal("target_logits", cfg.training.epochs))


def test_target_is_requeried_when_its_file_changes(tmp_path, user_model, monkeypatch):
    from privaudit.stages import target as stage
    from privaudit.stages.prepare import prepare

    monkeypatch.setattr(stage, "check_inputs", lambda *a, **k: None)   # random linear models: not trained
    cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / "linear.pt2")))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        _linear_program(tmp_path / "linear.pt2", seed=0)
        stage.prepare_target(run, cfg)
        first = stage.query_target(run, cfg)
        assert first.shape == (1, 1797, 1, 10)
        logits = Layout.signal("target_logits", cfg.training.epochs)
        written = run.path(logits).stat().st_mtime_ns
        np.testing.assert_array_equal(stage.query_target(run, cfg), first)      # cached: not queried again
        assert run.path(logits).stat().st_mtime_ns == written
        _linear_program(tmp_path / "linear.pt2", seed=1)                        # a new model in the same file
        assert not np.allclose(stage.query_target(run, cfg), first)
        np.testing.assert_array_equal(run.load_npy(logits), stage.query_target(run, cfg))


def test_members_and_target_section_must_have_the_right_form(tmp_path, user_model):
    from privaudit.stages.target import read_members

    np.savez(tmp_path / "m.npz", members=np.ones(10, dtype=bool))
    with pytest.raises(DataError, match="not a .npy file holding one array"):
        read_members(tmp_path / "m.npz", 10)
    doc = yaml.safe_load(_config(tmp_path, user_model).read_text())
    doc["target"] = "model.pt2"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="target must be a section of keys"):
        load_config(tmp_path / "s.yaml")


# -- preprocessing made explicit: data.normalize ----------------------------------------------------

@pytest.fixture(scope="module")
def scaled_digits(tmp_path_factory):
    """The README's own-model audit: digits scaled to [0, 1] (x / 16) stored in an npz, a digits
    MLP trained by the user on its members as stored, saved as a safetensors state dict."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("scaled")
    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
    members = np.random.default_rng(1).random(len(y)) < 0.5
    save_file(_train_mlp(x, y, members).state_dict(), str(folder / "model.safetensors"))
    np.save(folder / "members.npy", members)
    np.savez(folder / "digits.npz", x=x, y=y)
    return folder, x


def _own_config(folder: Path, normalize: str) -> Path:
    doc = {"name": f"own_{normalize}", "out": str(folder / "runs"),
           "data": {"name": "npz", "root": "digits.npz", "normalize": normalize},
           "model": {"arch": "mlp", "hidden": [256]},
           "training": {"epochs": 30, "batch_size": 32, "lr": 0.003, "workers": 1},
           "population": {"n_models": 16, "models_per_group": 16},
           "target": {"model": "model.safetensors", "members": "members.npy"},
           "attacks": ["loss", "lira_online"], "evaluation": {"targets": 2, "bootstrap": 50}}
    path = folder / f"audit_{normalize}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_target_fed_other_preprocessing_is_refused_with_the_fix(scaled_digits):
    """Standardising inputs the model saw in [0, 1] still leaves it ~90% right on its members, but
    it is 100% right without the normalisation: refused before any training, naming the fix."""
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target

    folder, _ = scaled_digits
    cfg = load_config(_own_config(folder, "per_channel"))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        with pytest.raises(DataError, match=r"fits its own training rows better without privaudit's normalisation"
                                            r".*data.normalize: per_channel.*data.normalize: none"):
            prepare_target(run, cfg)
    assert not run.path("models").exists()


@pytest.mark.slow
def test_own_model_audit_with_data_as_stored_reports_accuracy_and_leaks(scaled_digits, capsys):
    """``normalize: auto`` passes a user's npz exactly as stored: the target's accuracy is printed
    and saved, and the attack finds its members."""
    from rich.console import Console

    from privaudit.stages.prepare import prepare

    folder, x = scaled_digits
    cfg = load_config(_own_config(folder, "auto"))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
    if not np.allclose(run.pool()[0], x):
        pytest.xfail("awaits data.normalize in privaudit/data (auto must keep a user's npz exactly as stored)")
    run_all(cfg, console=Console(width=200, force_terminal=False))
    out = capsys.readouterr()
    assert "target model: accuracy" in out.err and "your target model" in out.out
    doc = run.load_json(Layout.target_metrics)
    assert doc["utility"]["train_accuracy"]["mean"] > 0.95 and doc["utility"]["test_accuracy"]["mean"] > 0.9
    lira = doc["attacks"]["lira_online"]["summary"]["auc"]
    assert lira["mean"] > 0.58 and lira["lo"] > 0.53, lira


# -- references default to the target's architecture ------------------------------------------------

MYNETS = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def make_resnet(width=8, n_classes=10):
    """A tiny ResNet (one residual block, BatchNorm) for 1-channel images."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         Block(width), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))
'''


@pytest.mark.slow
def test_a_factory_resnet_target_gives_the_references_its_architecture(tmp_path):
    """``target: {model: net.safetensors, factory: mynets:make_resnet}`` with the factory in a file
    next to the config and no ``model:`` section: the CLI, run from another folder with relative
    paths, trains the references with the factory's architecture and audits the target."""
    from sklearn.datasets import load_digits

    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "mynets.py").write_text(MYNETS)
    sys.path.insert(0, str(folder))
    try:
        import mynets
    finally:
        sys.path.remove(str(folder))
    d = load_digits()
    x, y = (d.images[:300] / 16.0).astype(np.float32)[:, None], d.target[:300].astype(np.int64)
    members = np.random.default_rng(0).random(300) < 0.5
    torch.manual_seed(0)
    net = mynets.make_resnet(width=8)
    opt = torch.optim.Adam(net.parameters(), 0.01)
    xm, ym = torch.from_numpy(x[members]), torch.from_numpy(y[members])
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xm), ym).backward()
        opt.step()
    save_file(net.state_dict(), str(folder / "net.safetensors"))
    np.save(folder / "members.npy", members)
    # stored with mean 0 / std 1: the images are used exactly as stored by any normalisation rule
    np.savez(folder / "images.npz", x=x, y=y, mean=np.zeros(1), std=np.ones(1))
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "name": "resnet", "out": "runs", "data": {"name": "npz", "root": "images.npz"},
        "population": {"n_models": 8}, "training": {"epochs": 2, "batch_size": 32, "lr": 0.01, "workers": 1},
        "target": {"model": "net.safetensors", "factory": "mynets:make_resnet", "kwargs": {"width": 8},
                   "members": "members.npy"},
        "attacks": ["loss", "lira_online"], "evaluation": {"targets": 2, "bootstrap": 10}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "privaudit.cli", "run", "../audit/config.yaml"], cwd=elsewhere,
                            capture_output=True, text=True, env=os.environ | {"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "target model: accuracy" in result.stderr and "differ" not in result.stderr
    run = Run(elsewhere / "runs" / "resnet")
    state = torch.load(run.path(Layout.group_models(list(range(8)))), weights_only=True)["state"]
    expected = mynets.make_resnet(width=8).state_dict()
    assert set(state) == set(expected)   # parameters and BatchNorm buffers of the factory's model
    assert all(state[k].shape[1:] == expected[k].shape for k in expected)
    doc = run.load_json(Layout.target_metrics)
    assert set(doc["attacks"]) == {"loss", "lira_online"} and doc["model"]["architecture"]["arch"] == "factory"
    assert "notes" not in doc   # the references match the target


# -- black-box curvature for the target -------------------------------------------------------------

def test_target_curvature_uses_the_population_settings(user_model):
    """The target's zero-order curvature is the curvature stage's for the same model: same
    queries, seeds, sample ids, h, rounds and loss."""
    from privaudit.models.group import ModuleList
    from privaudit.stages import curvature as population
    from privaudit.stages import target

    cfg = load_config(_config(user_model.parent, user_model, extra={
        "curvature": {"estimator": "zero_order", "rounds": 3, "mirror": True}}))
    for name in ("curvature_settings", "curvature_queries", "zo_batch_size"):   # one definition, shared
        assert getattr(target, name) is getattr(population, name)
    ds = load_dataset("digits")
    model = _train_mlp(ds.x[:200], ds.y[:200], np.ones(200, dtype=bool), hidden=(32,), epochs=2).eval()
    x, y = torch.from_numpy(ds.x[:200]), torch.from_numpy(ds.y[:200])
    mine = target.zero_order_of(cfg, model, x, y)
    theirs = population.curvature_of_group(cfg, ModuleList([model]), x, y)
    assert mine.shape == theirs.shape == (1, 200, 2)
    np.testing.assert_allclose(mine, theirs, rtol=1e-5)


@pytest.mark.slow
def test_curvature_attacks_score_the_target(tmp_path, user_model, capsys):
    from rich.console import Console

    extra = {"population": {"n_models": 8, "models_per_group": 8}, "training": POP["training"] | {"epochs": 15},
             "curvature": {"estimator": "zero_order", "rounds": 2, "mirror": False},
             "attacks": ["loss", "curv_zo_nll", "curv_zo_lr"], "evaluation": {"targets": 2, "bootstrap": 10}}
    run_all(load_config(_config(tmp_path, user_model, extra=extra)))
    run = Run(tmp_path / "runs" / "audit")
    doc = run.load_json(Layout.target_metrics)
    assert {"curv_zo_nll", "curv_zo_lr"} <= set(doc["attacks"])
    for attack in ("curv_zo_nll", "curv_zo_lr"):
        scores = run.load_npy(Layout.target_scores(attack))
        assert scores.shape == (1797,) and np.isfinite(scores).all()
    curvature = run.load_npy(Layout.signal("target_curvature", 15))
    assert curvature.shape == (1, 1797, 1) and (curvature >= 0).all()

    # a white-box population estimator: the target's curvature attacks are skipped, and it says why
    extra["curvature"] = {"estimator": "hutchinson", "rounds": 2, "mirror": False}
    run_all(load_config(_config(tmp_path, user_model, extra=extra)), console=Console(width=200))
    doc = run.load_json(Layout.target_metrics)
    note = [n for n in doc["notes"] if "white-box estimator hutchinson" in n]
    assert note and "curvature.estimator: zero_order" in note[0]
    assert note[0] in " ".join(capsys.readouterr().out.split())
