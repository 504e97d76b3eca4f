"""The Python API (``privaudit.audit``): a recipe audit and the audit of a model trained in
memory, both quiet by default; results, scores and the report from the returned object; clear
one-line errors before any work; the runnable example."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import privaudit
from privaudit.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
FAST = {"evaluation": {"bootstrap": 50}}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.images[:, None] / 16.0).astype(np.float32), d.target


def make_mlp(hidden: int = 128) -> torch.nn.Module:
    """An importable factory (``test_api:make_mlp``)."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, 10))


def _train(x: np.ndarray, y: np.ndarray, members: np.ndarray, epochs: int = 40) -> torch.nn.Module:
    """The "user's" model: a plain torch loop on the member rows (Adam, constant learning rate)."""
    torch.manual_seed(1)
    net = make_mlp(256)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[members]), torch.from_numpy(y[members])
    for _ in range(epochs):
        for idx in torch.randperm(len(yt)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def test_recipe_audit_is_quiet_and_returns_typed_results(digits, tmp_path, capfd):
    x, y = digits
    hidden = 64
    factory = lambda: make_mlp(hidden)   # a closure: not importable, trained in this process's threads
    result = privaudit.audit(factory, x, y, models=8, targets=2, epochs=3, batch_size=32, lr=3e-3,
                             workers=2, config=FAST | {"population": {"models_per_group": 4}},
                             out=tmp_path, name="recipe")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not result.audits_a_model and result.config.training.workers == 2
    assert result.run.root == (tmp_path / "recipe").resolve()
    rows = result.table()
    assert [r["attack"] for r in rows] == ["loss", "lira_online", "lira_offline"]
    assert all(r["auc_lo"] <= r["auc"] <= r["auc_hi"] for r in rows)
    assert result.scores("lira_online").shape == (2, len(y))
    assert 0.5 < result.utility.train.mean <= 1.0 and result.utility.n_models == 8
    assert "| lira_online |" in result.markdown()
    assert result.report().is_file() and result.report(tmp_path / "copy.html").read_bytes().startswith(b"<")
    # the same results from the run directory alone
    again = privaudit.AuditResult(privaudit.Run.open(tmp_path / "recipe"))
    assert again.table() == rows
    with pytest.raises(ConfigError, match="no scores for attack 'rmia_online'"):
        result.scores("rmia_online")


@pytest.mark.slow
def test_an_in_memory_model_is_audited_against_the_population(digits, tmp_path, capfd):
    x, y = digits
    members = np.random.default_rng(0).random(len(y)) < 0.5
    net = _train(x, y, members)
    result = privaudit.audit(make_mlp, x, y, model=net, members=members, factory_kwargs={"hidden": 256},
                             models=8, targets=2, epochs=40, batch_size=32, lr=3e-3, schedule="constant",
                             workers=1, attacks=["loss", "lira_online"], config=FAST, out=tmp_path)
    assert capfd.readouterr() == ("", "")
    assert result.audits_a_model and result.config.target.factory == "test_api:make_mlp"
    for attack in ("loss", "lira_online"):
        auc = result.metrics.attacks[attack].summary["auc"]
        assert auc.lo > 0.5 and auc.lo <= auc.mean <= auc.hi, (attack, auc)
        assert result.scores(attack).shape == (len(y),)
    assert result.utility.train.mean > result.utility.test.mean
    assert result.population.attacks.keys() == result.metrics.attacks.keys()

    # a second call resumes (nothing retrained); other arrays in the same directory are refused
    t0 = time.perf_counter()
    again = privaudit.audit(make_mlp, x, y, model=net, members=members, factory_kwargs={"hidden": 256},
                            models=8, targets=2, epochs=40, batch_size=32, lr=3e-3, schedule="constant",
                            workers=1, attacks=["loss", "lira_online"], config=FAST, out=tmp_path)
    assert again.table() == result.table() and time.perf_counter() - t0 < 30
    with pytest.raises(ConfigError, match="holds an audit of other inputs"):
        privaudit.audit(make_mlp, x, y, model=net, members=~members, factory_kwargs={"hidden": 256},
                        models=8, targets=2, epochs=40, batch_size=32, lr=3e-3, schedule="constant",
                        workers=1, attacks=["loss", "lira_online"], config=FAST, out=tmp_path)


@pytest.mark.parametrize("call, error, match", [
    (lambda x, y: privaudit.audit(make_mlp, x, y[:10]), DataError, r"one integer label per row of x \(1797\)"),
    (lambda x, y: privaudit.audit(make_mlp, x.transpose(0, 2, 3, 1).repeat(3, -1), y), DataError, "channels-last"),
    (lambda x, y: privaudit.audit(make_mlp, x, y, members=y > 4), ConfigError, "needs both model="),
    (lambda x, y: privaudit.audit(make_mlp, x, y, model=make_mlp(), members=y[:5] > 4), DataError, r"bool\[1797\]"),
    (lambda x, y: privaudit.audit("not a path", x, y), ConfigError, "module:function"),
    (lambda x, y: privaudit.audit(42, x, y), ConfigError, "factory must be a callable"),
    (lambda x, y: privaudit.audit(lambda: torch.nn.Linear(3, 10), x, y), ConfigError, r"failed on x\[:2\]"),
    (lambda x, y: privaudit.audit(lambda: make_mlp(), x, y, executor="ray"), ConfigError, "not importable by Ray"),
    (lambda x, y: privaudit.audit(make_mlp, x, y, epoch=3), ConfigError, "training.epoch"),
    (lambda x, y: privaudit.audit(make_mlp, x, y, config={"data": {}}), ConfigError, "set by audit"),
    (lambda x, y: privaudit.audit(make_mlp, x, y, models=4, targets=6), ConfigError, "targets=6 exceeds"),
])
def test_mistakes_are_one_line_errors_before_any_work(digits, tmp_path, call, error, match):
    x, y = digits
    t0 = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        call(x, y)
    assert "\n" not in str(info.value) and time.perf_counter() - t0 < 5


@pytest.mark.slow
def test_the_example_runs(tmp_path):
    """``examples/audit_my_model.py``: trains a model on digits, audits it, prints the table, writes
    the report (``--quick``: small enough for CI)."""
    result = subprocess.run([sys.executable, str(REPO / "examples" / "audit_my_model.py"), "--quick",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| lira_online |" in result.stdout and "report:" in result.stdout
    assert (tmp_path / "report.html").is_file()
