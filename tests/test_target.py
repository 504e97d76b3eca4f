"""Auditing a user's own trained model (``target:``): the population is the reference set; the
target leaks when it trained on its members and stays at chance when the members mask is wrong;
bad files get one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from privaudit.config import load_config
from privaudit.data.datasets import load_dataset
from privaudit.errors import ConfigError, DataError
from privaudit.models.architectures import ArchSpec
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

POP = {"seed": 0, "data": {"name": "digits"},
       "population": {"n_models": 16, "models_per_group": 16},
       "model": {"arch": "mlp", "hidden": [256]},
       "training": {"epochs": 30, "batch_size": 32, "lr": 0.003, "workers": 1},
       "attacks": ["loss", "lira_online", "rmia_online"], "evaluation": {"targets": 2, "bootstrap": 50}}


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """The "user's" model: trained outside the population (another seed) on its own random half of
    digits, saved with ``torch.export`` (dynamic batch), plus its members mask."""
    folder = tmp_path_factory.mktemp("user")
    ds = load_dataset("digits")
    members = np.random.default_rng(123).random(len(ds.y)) < 0.5
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)
    keep = members[None]
    group = train_group(x, y, keep, [0], spec=ArchSpec("mlp", (256,)),
                        recipe=Recipe(epochs=30, batch_size=32, lr=0.003), n_classes=10, root_seed=999,
                        steps=steps_per_epoch(keep, 32))
    model = next(iter(group.models()))
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x[:4],), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(folder / "model.pt2"))
    np.save(folder / "members.npy", members)
    np.save(folder / "shuffled.npy", np.random.default_rng(7).permutation(members))
    return folder


def _config(tmp_path: Path, user: Path, members: str = "members.npy", **target) -> Path:
    doc = POP | {"name": "audit", "out": str(tmp_path / "runs"),
                 "target": {"model": str(user / "model.pt2"), "members": str(user / members)} | target}
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

    # the same model judged against a shuffled membership mask: nothing to find
    (tmp_path / "b").mkdir()
    run_all(load_config(_config(tmp_path / "b", user_model, members="shuffled.npy")))
    doc = Run(tmp_path / "b" / "runs" / "audit").load_json(Layout.target_metrics)
    assert abs(doc["attacks"]["lira_online"]["summary"]["auc"]["mean"] - 0.5) < 0.04


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")   # the TorchScript path is tested on purpose
def test_target_files_are_checked_with_clear_errors(tmp_path, user_model):
    from privaudit.stages.target import load_target_model, read_members

    with pytest.raises(DataError, match=r"has shape \[5\]; expected \[1797\]"):
        np.save(tmp_path / "short.npy", np.ones(5, dtype=bool))
        read_members(tmp_path / "short.npy", 1797)
    with pytest.raises(DataError, match="marks every row as a member"):
        np.save(tmp_path / "all.npy", np.ones(1797, dtype=bool))
        read_members(tmp_path / "all.npy", 1797)
    with pytest.raises(DataError, match="missing file"):
        read_members(tmp_path / "nope.npy", 1797)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a TorchScript"):
        load_target_model(tmp_path / "junk.pt", torch.device("cpu"))
    with pytest.raises(ConfigError, match="data.n would change them"):
        doc = yaml.safe_load(_config(tmp_path, user_model).read_text())
        doc["data"]["n"] = 500
        (tmp_path / "n.yaml").write_text(yaml.safe_dump(doc))
        load_config(tmp_path / "n.yaml")


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_a_torchscript_target_with_the_wrong_output_is_refused(tmp_path, user_model):
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target

    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))).save(str(tmp_path / "m3.pt"))
    cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / "m3.pt")))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        with pytest.raises(DataError, match=r"must return finite logits \[B, 10\]"):
            prepare_target(run, cfg)   # the target is queried before any training


def _linear_program(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (torch.zeros(4, 1, 8, 8),), dynamic_shapes=({0: batch},)),
                      str(path))


def test_target_is_checked_before_training_and_requeried_when_its_file_changes(tmp_path, user_model):
    from privaudit.stages.prepare import prepare
    from privaudit.stages.target import prepare_target, query_target

    cfg = load_config(_config(tmp_path, user_model, model=str(tmp_path / "linear.pt2")))
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        with pytest.raises(DataError, match="target.model: missing file"):
            prepare_target(run, cfg)
        assert not run.path("models").exists()   # nothing trained
        _linear_program(tmp_path / "linear.pt2", seed=0)
        prepare_target(run, cfg)
        first = query_target(run, cfg)
        assert first.shape == (1, 1797, 1, 10)
        logits = Layout.signal("target_logits", cfg.training.epochs)
        written = run.path(logits).stat().st_mtime_ns
        np.testing.assert_array_equal(query_target(run, cfg), first)      # cached: not queried again
        assert run.path(logits).stat().st_mtime_ns == written
        _linear_program(tmp_path / "linear.pt2", seed=1)                  # a new model in the same file
        assert not np.allclose(query_target(run, cfg), first)
        np.testing.assert_array_equal(run.load_npy(logits), query_target(run, cfg))


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

