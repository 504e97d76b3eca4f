"""End to end on real data (scikit-learn digits): run, resume after SIGKILL, chance on shuffled
membership, clear errors for bad configs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from privaudit.attacks.registry import get_attack
from privaudit.cli import app
from privaudit.config import load_config
from privaudit.evaluation.protocol import evaluate_attack
from privaudit.pipeline import run_all
from privaudit.runtime.run import Run

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "name": "small", "seed": 0, "data": {"name": "digits"},
    "population": {"n_models": 8, "models_per_group": 2},
    "model": {"arch": "mlp", "hidden": [256]},
    "training": {"epochs": 30, "batch_size": 32, "lr": 0.003, "workers": 1},
    "attacks": ["loss", "lira_online", "lira_offline"],
    "evaluation": {"targets": 2, "bootstrap": 20},
}


def write_config(tmp_path: Path, data: dict, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def recorded(run_dir: Path) -> set[str]:
    """Artifacts the run's manifest records as complete (empty while it is being replaced)."""
    try:
        return set(json.loads((run_dir / "manifest.json").read_text())["artifacts"])
    except (OSError, ValueError, KeyError):
        return set()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privaudit.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=os.environ | {"COLUMNS": "200"})


@pytest.mark.slow
def test_default_audit_shows_lira_above_loss(tmp_path):
    """The README's main command on the shipped default config (64 models on digits)."""
    t0 = time.perf_counter()
    result = cli("run", str(REPO / "configs" / "digits.yaml"), "--out", str(tmp_path))
    elapsed = time.perf_counter() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((tmp_path / "digits" / "results" / "metrics.json").read_text())
    lira = doc["attacks"]["lira_online"]["summary"]["tpr@0.01"]
    loss = doc["attacks"]["loss"]["summary"]["tpr@0.01"]
    assert lira["lo"] > loss["hi"], (lira, loss)          # clearly above: intervals do not overlap
    assert lira["mean"] > 2 * loss["mean"]
    assert (tmp_path / "digits" / "report" / "index.html").stat().st_size > 10_000
    assert "lira_online" in result.stdout and "TPR" in result.stdout
    # honest numbers: every estimate inside its interval, no TPR at an FPR the non-members cannot resolve
    for name, attack in doc["attacks"].items():
        n_neg = attack["n_nonmembers_per_target"]
        for metric, e in attack["summary"].items():
            if metric.startswith("tpr@") and float(metric[4:]) * n_neg < 1:
                assert "mean" not in e or e["mean"] is None, (name, metric, e)
                continue
            assert e["lo"] <= e["mean"] <= e["hi"], (name, metric, e)
        for t, p in enumerate(attack["per_target"]):       # each target's own intervals
            assert set(p["intervals"]) == {m for m, e in attack["summary"].items() if not e.get("unresolved")}
            for metric, (lo, hi) in p["intervals"].items():
                assert lo <= p[metric] <= hi, (name, t, metric, p)
    printed = re.findall(r"(\d+\.\d+) ± [\d.]+ \[(\d+\.\d+), (\d+\.\d+)\]", result.stdout)
    assert len(printed) >= 3 * len(doc["attacks"]), result.stdout   # every cell of the console table
    for cells in printed:
        value, lo, hi = map(float, cells)
        assert lo <= value <= hi, cells
    print(f"default audit took {elapsed:.1f} s")


def test_resume_after_sigkill_trains_only_missing_groups(tmp_path):
    cfg_a = write_config(tmp_path, SMALL | {"out": str(tmp_path / "a")}, "a.yaml")
    cfg_b = write_config(tmp_path, SMALL | {"out": str(tmp_path / "b")}, "b.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "privaudit.cli", "run", str(cfg_a)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    models = tmp_path / "a" / "small" / "models"
    deadline = time.time() + 600
    while "models/models_0000-0001.pt" not in recorded(models.parent) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in models.glob("models_*.pt"))
    assert 1 <= len(done) < 4, f"kill came too late or too early: {done}"
    first_mtime = (models / "models_0000-0001.pt").stat().st_mtime_ns   # recorded: must not be retrained

    resumed = cli("run", str(cfg_a))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (models / "models_0000-0001.pt").stat().st_mtime_ns == first_mtime   # not retrained
    assert not list(models.glob(".*tmp")), "a half-written temp file of the killed run was left behind"
    fresh = cli("run", str(cfg_b))
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "small" / "results" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "small" / "results" / "metrics.json").read_text())
    assert a["attacks"] == b["attacks"]


def test_attacks_stay_at_chance_when_membership_is_shuffled(tmp_path):
    data = SMALL | {"out": str(tmp_path), "population": {"n_models": 16, "models_per_group": 8}}
    cfg = load_config(write_config(tmp_path, data))
    real = run_all(cfg)
    run = Run(cfg.run_dir)
    keep, labels = run.keep(), run.labels()
    rng = np.random.default_rng(0)
    shuffled = np.stack([rng.permutation(row) for row in keep.T]).T   # same design, labels unrelated to training
    assert real["lira_online"].summary["auc"]["mean"] > 0.57   # the population does leak
    for name in ("loss", "lira_online", "lira_offline", "watson", "rmia_online"):
        spec = get_attack(name)
        res = evaluate_attack(spec, run.signal(spec.signal, cfg.training.epochs), shuffled, labels, [0, 1],
                              fprs=(0.01,), n_boot=200)
        auc = res.summary["auc"]
        assert abs(auc["mean"] - 0.5) < 0.04, (name, auc)
        assert auc["lo"] - 0.01 <= 0.5 <= auc["hi"] + 0.01, (name, auc)


@pytest.mark.parametrize("patch, message", [
    ({"population": {"n_models": 1}}, "population.n_models"),
    ({"population": {"pkeep": 1.5}}, "population.pkeep"),
    ({"training": {"epochs": 0}}, "training.epochs"),
    ({"traning": {"epochs": 3}}, "traning"),
    ({"data": {"name": "no-such-data"}}, "unknown dataset"),
    ({"evaluation": {"targets": 9}}, "exceeds"),
])
def test_bad_configs_get_one_line_errors(tmp_path, patch, message):
    data = json.loads(json.dumps(SMALL)) | {"out": str(tmp_path)}
    for key, value in patch.items():
        data[key] = (data.get(key) or {}) | value if isinstance(value, dict) else value
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(write_config(tmp_path, data))])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_nan_in_user_data_is_rejected(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[3, 1] = np.nan
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(20) % 2)
    data = SMALL | {"out": str(tmp_path), "data": {"name": "npz", "root": str(tmp_path / "bad.npz")}}
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, data))])
    assert result.exit_code == 2 and "NaN" in result.output


def test_attack_command_rescores_without_retraining(tmp_path):
    cfg_path = write_config(tmp_path, SMALL | {"out": str(tmp_path)})
    assert cli("run", str(cfg_path)).returncode == 0
    run_dir = tmp_path / "small"
    stamp = (run_dir / "models" / "models_0000-0001.pt").stat().st_mtime_ns
    result = cli("attack", str(run_dir), "--attacks", "all")
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert {"shokri", "song_mittal", "rmia_offline", "ye_r"} <= set(doc["attacks"])
    assert (run_dir / "models" / "models_0000-0001.pt").stat().st_mtime_ns == stamp


def test_population_grows_training_only_new_models(tmp_path):
    data = SMALL | {"out": str(tmp_path), "population": {"n_models": 4, "models_per_group": 2, "design": "paired"},
                    "training": SMALL["training"] | {"epochs": 5}, "evaluation": {"targets": 1, "bootstrap": 0}}
    assert cli("run", str(write_config(tmp_path, data))).returncode == 0
    models = tmp_path / "small" / "models"
    stamp = (models / "models_0000-0001.pt").stat().st_mtime_ns
    data["population"]["n_models"] = 6
    grown = cli("run", str(write_config(tmp_path, data)))
    assert grown.returncode == 0, grown.stderr[-2000:]
    assert (models / "models_0000-0001.pt").stat().st_mtime_ns == stamp
    assert (models / "models_0004-0005.pt").exists()
    logits = np.load(tmp_path / "small" / "signals" / "epoch_0005" / "logits.npy", mmap_mode="r")
    assert logits.shape[0] == 6
    data["population"]["design"] = "balanced"   # the balanced design cannot grow: clear error
    refused = cli("run", str(write_config(tmp_path, data)))
    assert refused.returncode == 2 and "different" in refused.stderr
