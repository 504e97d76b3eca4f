"""A user's own nn.Module by import path (``model.factory``), used as a user would: a module next to
the config file, the CLI run from another working directory with relative paths, two worker
processes that must import the factory too."""

import subprocess
import sys
import textwrap

import pytest
import torch

from privaudit.config import parse_config
from privaudit.errors import ConfigError
from privaudit.runtime.run import Layout, Run

FACTORY = textwrap.dedent('''
    from torch import nn

    def make_net(channels=8, n_classes=10):
        return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * channels, n_classes))

    def wrong_shape():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    NOT_A_FUNCTION = 3
''')


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "privaudit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def _project(tmp_path, model_section):
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_nets.py").write_text(FACTORY)
    (project / "audit.yaml").write_text(textwrap.dedent(f"""
        name: own_arch
        out: runs
        data: {{name: digits, n: 400}}
        population: {{n_models: 4, models_per_group: 2}}
        model: {model_section}
        training: {{epochs: 2, batch_size: 32, optimizer: sgd, lr: 0.05, workers: 2}}
        attacks: [loss, lira_online]
        evaluation: {{targets: 2, bootstrap: 20}}
    """))
    return project


@pytest.mark.slow
def test_a_factory_by_import_path_trains_queries_and_attacks_end_to_end(tmp_path):
    project = _project(tmp_path, '{factory: "my_nets:make_net", kwargs: {channels: 6}}')
    done = _cli(["run", "project/audit.yaml"], cwd=tmp_path)      # relative path, from the parent folder
    assert done.returncode == 0, done.stdout + done.stderr
    run = Run(tmp_path / "runs" / "own_arch")
    state = run.load_torch(Layout.group_models([0, 1]))["state"]
    assert state["0.weight"].shape == (2, 6, 1, 3, 3)                        # the factory's architecture
    assert state["1.running_var"].shape == (2, 6) and not torch.equal(state["1.running_var"][0],
                                                                         torch.ones(6))   # trained statistics
    logits = run.signal("logits", 2)
    assert logits.shape[:2] == (4, 400) and logits.shape[-1] == 10
    assert (tmp_path / "runs" / "own_arch" / "results").is_dir()
    group_file = run.path(Layout.group_models([0, 1]))
    before = group_file.stat().st_mtime_ns
    again = _cli(["run", "project/audit.yaml"], cwd=tmp_path)              # a rerun trains nothing
    assert again.returncode == 0, again.stdout + again.stderr
    assert group_file.stat().st_mtime_ns == before


@pytest.mark.parametrize("section, message", [
    ('{factory: "my_nets.make_net"}', "must look like 'package.module:function'"),
    ('{factory: "no_such_module:make"}', "cannot import no_such_module"),
    ('{factory: "my_nets:missing"}', "my_nets has no function missing"),
    ('{factory: "my_nets:NOT_A_FUNCTION"}', "has no function NOT_A_FUNCTION"),
    ('{factory: "my_nets:make_net", kwargs: {depth: 3}}', "failed with kwargs"),
    ('{factory: "my_nets:wrong_shape"}', "logits [B, 10]; it returned [2, 3]"),
    ('{arch: resnet, factory: "my_nets:make_net"}', "not both"),
    ('{arch: resnet, depth: 20}', "depth must be 18 or 34"),
    ('{arch: wrn, depth: 15}', "6n+4"),
    ('{arch: vgg}', "unknown architecture 'vgg'"),
])
def test_a_bad_architecture_is_one_clear_line_before_training(tmp_path, section, message):
    project = _project(tmp_path, section)
    done = _cli(["run", "audit.yaml"], cwd=project)
    assert done.returncode != 0
    lines = [ln for ln in (done.stdout + done.stderr).strip().splitlines() if ln.strip()]
    assert message in " ".join(lines), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "runs" / "own_arch" / "models").exists()


def test_dp_sgd_with_batchnorm_is_refused_at_once():
    cfg = parse_config({"model": {"arch": "resnet", "width": 4}, "data": {"name": "digits"},
                        "training": {"dp": {"noise_multiplier": 1.0}}})
    assert cfg.model.norm == "batch"   # the refusal comes from prepare (tested in test_batchnorm / the CLI)
    with pytest.raises(ConfigError, match="kwargs are passed to model.factory"):
        parse_config({"model": {"arch": "resnet", "kwargs": {"a": 1}}})
