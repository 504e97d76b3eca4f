"""What a person reads on the console: attack names, dataset URLs and architecture names never cut
at 80 columns, piped to a file or in a real terminal (tmux); progress with units and plain words;
Python warnings raised while an attack is scored turned into one line naming the attack."""

import dataclasses
import functools
import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from privaudit.runtime.notices import collected_warnings, plural

REPO = Path(__file__).resolve().parents[1]
RUN_ARGS = ["run", str(REPO / "configs" / "digits.yaml"), "--models", "8", "--epochs", "2", "--set",
            "evaluation.targets=2", "--set", "training.checkpoints=[1]", "--attacks", "all"]
BAD_PLURALS = re.compile(r"(?<![\d/.])1 (queries|models|targets|target models|attacks|rounds|samples)\b")  # not 1/1


def cli_to_file(args: list[str], path: Path) -> str:
    """The command's stdout and stderr, piped to a file, at ``COLUMNS=80``."""
    with open(path, "w") as f:
        done = subprocess.run([sys.executable, "-m", "privaudit.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                              cwd=REPO, env=os.environ | {"COLUMNS": "80"}, timeout=600)
    text = path.read_text()
    assert done.returncode == 0, text[-3000:]
    return text


def cli_in_tmux(args: list[str], tmp: Path) -> str:
    """The command run in a real 80x50 terminal (tmux), its screen and history, wrapped lines joined."""
    socket, done = f"privaudit-test-{uuid.uuid4().hex[:8]}", tmp / "done"
    command = " ".join([f"cd {REPO} &&", "env -u COLUMNS -u LINES", sys.executable, "-m", "privaudit.cli",
                        *(f"'{a}'" for a in args), f"; echo $? > {done}; sleep 600"])
    tmux = ["tmux", "-L", socket, "-f", "/dev/null"]
    subprocess.run([*tmux, "new-session", "-d", "-x", "80", "-y", "50", command], check=True)
    try:
        subprocess.run([*tmux, "set-option", "-g", "history-limit", "50000"], check=True)
        deadline = time.time() + 600
        while not done.exists() and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(0.5)
        screen = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-"], capture_output=True, text=True,
                                check=True).stdout
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert done.exists() and done.read_text().strip() == "0", screen[-3000:]
    return screen


def attack_keys(run_dir: Path) -> list[str]:
    import json

    return list(json.loads((run_dir / "results" / "metrics.json").read_text())["attacks"])


def assert_names_whole(text: str, names: list[str]) -> None:
    """Every name sits whole in a table cell: ``│ name   │`` (so lira_online and lira_online_global
    are told apart and neither is cut)."""
    missing = [n for n in names if not re.search(rf"│ {re.escape(n)} +│", text)]
    assert not missing, f"cut or missing: {missing}\n{text[-4000:]}"


def assert_plain(text: str) -> None:
    """No raw Python warning (with its source path) and no '1 models'."""
    assert not re.search(r"\.py:\d+: \w*Warning", text), text
    assert not BAD_PLURALS.search(text), BAD_PLURALS.search(text)


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory):
    """The default audit, small, with every attack: its run directory and its piped output."""
    tmp = tmp_path_factory.mktemp("console")
    out = cli_to_file([*RUN_ARGS, "--out", str(tmp)], tmp / "run.txt")
    return tmp / "digits", out


@pytest.mark.slow
def test_the_audit_piped_at_80_columns_shows_every_name_progress_and_units(audit_run, tmp_path):
    run_dir, out = audit_run
    keys = attack_keys(run_dir)
    assert "lira_online" in keys and "lira_online_global" in keys
    assert_names_whole(out, keys)
    assert_plain(out)
    for step in (r"train 8 models \(", r"query models \(epoch 2, 1 query\)", rf"attacks on 2 target models .* "
                 rf"{len(keys)}/{len(keys)} attacks", r"write the report .*\d:\d\d:\d\d"):
        assert re.search(step, out), step
    verdict = re.search(r"verdict on the training recipe: (LOW|MODERATE|HIGH|SEVERE|INCONCLUSIVE) risk\.\s+An\s+"
                        r"attacker\s+who\s+accepts\s+10\s+false\s+alarms\s+per\s+1,000", out)   # the report's verdict
    assert verdict, out[-1500:]
    # every study table names the attacks whole too
    memo = cli_to_file(["memorization", str(run_dir)], tmp_path / "memorization.txt")
    assert_names_whole(memo, keys)
    assert_plain(memo)
    dyn = cli_to_file(["dynamics", str(run_dir)], tmp_path / "dynamics.txt")
    assert re.search(r"lira_online on \d+ targets", dyn), dyn
    assert_plain(dyn)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: the real-terminal variant needs it")
def test_the_audit_in_a_real_80_column_terminal(audit_run, tmp_path):
    run_dir, _ = audit_run
    screen = cli_in_tmux([*RUN_ARGS, "--out", str(run_dir.parent)], tmp_path)   # resumes: nothing retrained
    assert_names_whole(screen, attack_keys(run_dir))
    assert_plain(screen)
    assert "done in" in screen


def test_datasets_and_models_are_never_cut(tmp_path):
    from privaudit.data.datasets import list_datasets
    from privaudit.models.architectures import ARCHITECTURES

    urls = [u for d in list_datasets() for u in re.findall(r"https?://\S+[^\s,.)]", d.how_to_get)]
    assert len(urls) >= 8
    outputs = [cli_to_file(["datasets"], tmp_path / "datasets.txt")]
    if shutil.which("tmux"):
        outputs.append(cli_in_tmux(["datasets"], tmp_path))
    for text in outputs:
        assert [u for u in urls if u not in text] == []
        assert_names_whole(text, [d.name for d in list_datasets()])
    assert_names_whole(cli_to_file(["models"], tmp_path / "models.txt"), list(ARCHITECTURES))


def test_plural():
    assert [plural(1, "query"), plural(2, "query"), plural(1, "target model"), plural(3, "target model")] == \
        ["1 query", "2 queries", "1 target model", "3 target models"]
    assert [plural(2, "key"), plural(2, "canary"), plural(0, "pass")] == ["2 keys", "2 canaries", "0 passes"]


def test_warnings_become_one_line_each():
    from privaudit.signals.transforms import taylor_conf

    with collected_warnings() as lines:
        np.log(np.zeros(3))
        np.log(np.zeros(3))
        taylor_conf(np.full((2, 1, 3), -40.0), np.zeros(2, dtype=np.int64))
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("numerical problem while scoring (divide by zero encountered in log)")
    assert lines[1].startswith("the taylor_conf signal is unreliable") and "use rmia_online" in lines[1]


@pytest.mark.slow
def test_a_warning_while_scoring_is_a_note_naming_the_attack(audit_run, tmp_path, monkeypatch, capfd):
    """An attack that makes numpy warn: one line naming it on the console and in metrics.json's
    notes; nothing raw on stderr."""
    from privaudit.attacks import registry
    from privaudit.config import AttackConfig
    from privaudit.pipeline import score_and_report
    from privaudit.runtime.run import Layout, Run

    spec = registry.ATTACKS["loss"]

    @functools.wraps(spec.fn)
    def noisy(*args, **kwargs):
        warnings.warn("invalid value encountered in divide", RuntimeWarning)
        return spec.fn(*args, **kwargs)

    monkeypatch.setitem(registry.ATTACKS, "loss", dataclasses.replace(spec, fn=noisy))
    shutil.copytree(audit_run[0], tmp_path / "digits")
    run = Run.open(tmp_path / "digits")
    cfg = run.config()
    console = Console(file=io.StringIO(), width=80)
    with run.writer():
        score_and_report(run, cfg, console, attacks=[AttackConfig(name="loss", label="loss_noisy")])
    text = console.file.getvalue()
    note = ("loss_noisy: numerical problem while scoring (invalid value encountered in divide); its scores may be "
            "NaN or infinite for some samples")
    assert f"note: {note}" in text
    assert any(n.startswith(note) for n in run.load_json(Layout.metrics)["notes"])
    assert_plain(capfd.readouterr().err)
