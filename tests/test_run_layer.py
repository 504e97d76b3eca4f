"""The run layer as a user meets it: relative paths and other working directories, the lock,
tampered artifacts, validation before training, one-line errors, names that cannot escape,
Ctrl-C; plus the structure checks (no import cycle, artifact paths named only by the Run)."""

from __future__ import annotations

import ast
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

from privaudit.runtime.run import Layout, Run, RunError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "privaudit"
TINY = {
    "name": "tiny", "seed": 0, "data": {"name": "digits"},
    "population": {"n_models": 8, "models_per_group": 4},
    "model": {"arch": "mlp", "hidden": [64]},
    "training": {"epochs": 4, "batch_size": 64, "lr": 0.003, "workers": 1},
    "attacks": ["loss", "lira_online"],
    "evaluation": {"targets": 2, "bootstrap": 10},
}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed command as a user runs it, output piped (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "privaudit.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-1500:], result.stderr[-1500:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and result.stderr.rstrip().endswith(lines[0]), result.stderr   # one line, last
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny run made with a RELATIVE --out from its own working directory."""
    cwd = tmp_path_factory.mktemp("work")
    config = write(cwd / "tiny.yaml", TINY)
    result = cli("run", config.name, "--out", "runs", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "runs" / "tiny"


# -- 1. relative paths, any working directory ------------------------------------------------------
def test_relative_out_writes_where_the_readme_says_and_reruns_do_nothing(tiny_run):
    logits = tiny_run / "signals" / "epoch_0004" / "logits.npy"
    assert logits.is_file()
    assert not (tiny_run / "runs").exists()                   # the old bug: runs/tiny/runs/tiny/...
    stamps = {p: p.stat().st_mtime_ns for p in [logits, *tiny_run.glob("models/*.pt")]}
    again = cli("run", "tiny.yaml", "--out", "runs", cwd=tiny_run.parents[1])
    assert again.returncode == 0, again.stderr[-2000:]
    assert "train " not in again.stderr and "query models" not in again.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_attack_works_from_the_parent_and_from_inside_the_runs_folder(tiny_run):
    parent = cli("attack", f"{tiny_run.parent.name}/{tiny_run.name}", "--attacks", "loss",
                 cwd=tiny_run.parents[1])
    assert parent.returncode == 0, parent.stderr[-2000:]
    inside = cli("attack", tiny_run.name, "--attacks", "lira_online", cwd=tiny_run.parent)
    assert inside.returncode == 0, inside.stderr[-2000:]
    doc = json.loads((tiny_run / "results" / "metrics.json").read_text())
    assert {"loss", "lira_online"} <= set(doc["attacks"])


# -- 3. one writer at a time -----------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tiny_run):
    run = Run(tiny_run)
    with run.writer(command="the test"):
        other = cli("attack", str(tiny_run), cwd=tiny_run.parent)
        one_line_error(other, "in use by", str(os.getpid()), "the test")
    assert cli("attack", str(tiny_run), "--attacks", "loss", cwd=tiny_run.parent).returncode == 0


def test_a_lock_left_by_a_killed_process_is_stale(tmp_path):
    run = Run(tmp_path / "r")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from privaudit.runtime.run import Run\n"
                               f"r = Run({str(run.root)!r})\nwith r.writer(command='victim'):\n"
                               "    print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunError, match="victim"):
        with run.writer():
            pass
    holder.kill()
    holder.wait()
    assert json.loads(run.path(Layout.lock).read_text())["command"] == "victim"   # the file is left...
    with run.writer():                                                            # ...but the lock is not
        run.save_json("probe.json", {"ok": True})


def test_a_worker_writes_only_while_its_parent_holds_the_lock(tmp_path, monkeypatch):
    run = Run(tmp_path / "r")
    with pytest.raises(RunError, match="lock"):
        run.save_json("x.json", {})                           # no lock, no token: refused
    with run.writer():
        token = os.environ["PRIVAUDIT_LOCK_TOKEN"]
        worker = Run(run.root)                                # as a worker process sees it
        worker.save_json("by_worker.json", {"ok": 1})
    monkeypatch.setenv("PRIVAUDIT_LOCK_TOKEN", token)
    late = Run(run.root)                                      # its parent has let go: refused
    with pytest.raises(RunError, match="ended"):
        late.save_json("late.json", {})
    assert not run.path("late.json").exists()


# -- 4. tampered artifacts are refused -------------------------------------------------------------
@pytest.mark.parametrize("victim", ["keep", "config", "logits", "truncated"])
def test_attack_refuses_a_tampered_run_directory(tiny_run, tmp_path, victim):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    if victim == "keep":
        keep = np.load(copy / "keep.npy")
        keep[0, :50] = ~keep[0, :50]
        np.save(copy / "keep.npy", keep)
        name = "keep.npy"
    elif victim == "config":
        cfg = yaml.safe_load((copy / "config.yaml").read_text())
        cfg["population"]["n_models"] = 4
        (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
        name = "config.yaml"
    elif victim == "logits":
        path = copy / "signals" / "epoch_0004" / "logits.npy"
        logits = np.load(path)
        np.save(path, logits + np.random.default_rng(0).normal(size=logits.shape).astype(np.float32))
        name = "logits.npy"
    else:
        path = copy / "models" / "models_0000-0003.pt"
        path.write_bytes(path.read_bytes()[:100])
        shutil.rmtree(copy / "signals")                       # forces the models to be read again
        name = "models_0000-0003.pt"
    result = cli("attack", str(copy), cwd=tmp_path) if victim != "truncated" else \
        cli("run", str(write(tmp_path / "c.yaml", TINY | {"out": str(tmp_path), "name": "copy"})), cwd=tmp_path)
    line = one_line_error(result, name)
    assert "changed" in line or "missing" in line or "corrupt" in line


# -- 5./6. everything a run needs is checked before training --------------------------------------
@pytest.mark.parametrize("patch, needle", [
    ({"attacks": ["loss", "no_such_attack"]}, "unknown attack 'no_such_attack'"),
    ({"attacks": [{"name": "lira_online", "params": {"n_sigma": 2}}]}, "unknown parameter"),
    ({"attacks": [{"name": "loss", "signal": "nope"}]}, "unknown signal 'nope'"),
    ({"attacks": ["curv_zo_nll"]}, "curvature"),
    ({"population": {"n_models": 2, "models_per_group": 2}}, "reference model"),
    ({"training": {"epochs": 4, "batch_size": 1000000000}}, "batch_size"),
    ({"training": {"epochs": 4, "batch_size": 5000}}, "exceeds the smallest model's training set"),
    ({"training": {"epochs": True}}, "training.epochs"),
    ({"name": "../../escaped"}, "name"),
    ({"name": "/tmp/abs"}, "name"),
    ({"attacks": [{"name": "loss", "label": "../../../../x"}]}, "attack label"),
])
def test_bad_runs_fail_before_any_training(tmp_path, patch, needle):
    data = json.loads(json.dumps(TINY)) | {"out": "out"}
    for key, value in patch.items():
        data[key] = (data.get(key) or {}) | value if isinstance(value, dict) else value
    t0 = time.perf_counter()
    result = cli("run", str(write(tmp_path / "bad.yaml", data)), cwd=tmp_path)
    one_line_error(result, needle)
    assert time.perf_counter() - t0 < 30
    assert not list(tmp_path.rglob("models_*.pt"))            # nothing was trained
    assert not list(tmp_path.rglob("scores_*")) and not (tmp_path.parent / "escaped").exists()


def test_one_class_data_is_refused_before_training(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32)
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(200, dtype=np.int64))
    data = TINY | {"out": "out", "data": {"name": "npz", "root": str(tmp_path / "one.npz")}}
    one_line_error(cli("run", str(write(tmp_path / "c.yaml", data)), cwd=tmp_path), "class")
    assert not list(tmp_path.rglob("models_*.pt"))


def test_attacks_all_in_a_config_file_and_on_the_command_line(tmp_path):
    from privaudit.attacks.registry import ATTACKS
    from privaudit.config import parse_config

    plain = parse_config(TINY | {"attacks": "all"})
    assert [a.name for a in plain.attacks] == [n for n, s in ATTACKS.items() if s.signal != "curvature"]
    with_curv = parse_config(TINY | {"attacks": "all", "curvature": {"rounds": 2}})
    assert [a.name for a in with_curv.attacks] == list(ATTACKS)
    assert [a.name for a in parse_config(TINY | {"attacks": "loss, lira_online"}).attacks] == ["loss", "lira_online"]


# -- 7. one-line errors for every case -------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--targets", "100"], "evaluation.targets"),
    (["--targets", "0"], "evaluation.targets"),
    (["--targets", "-1"], "evaluation.targets"),
    (["--attacks", "nope"], "unknown attack"),
    (["--epoch", "3"], "--epoch 3"),
])
def test_attack_options_are_validated(tiny_run, args, needle):
    one_line_error(cli("attack", str(tiny_run), *args, cwd=tiny_run.parent), needle)


@pytest.mark.parametrize("override, needle", [
    ("name.x=1", "name is a value"),
    ("training.epochs.x=1", "training.epochs is a value"),
    ("training.epochs=true", "training.epochs"),
    ("=3", "KEY=VALUE"),
])
def test_bad_overrides_get_one_line(tmp_path, override, needle):
    one_line_error(cli("run", str(write(tmp_path / "c.yaml", TINY)), "--set", override, cwd=tmp_path), needle)


def test_invalid_yaml_in_a_run_directory_is_one_line(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (copy / "config.yaml").write_text("name: [unclosed\n")
    one_line_error(cli("attack", str(copy), cwd=tmp_path), "config.yaml")


def test_a_full_disk_is_one_line_and_keeps_finished_work(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from privaudit.cli import app
    from privaudit.runtime import run as run_module

    real = run_module.Run._write_atomic
    calls = {"n": 0}

    def failing(self, rel, data=None, writer=None):
        calls["n"] += 1
        if rel.startswith("models/"):
            raise OSError(28, "No space left on device")
        return real(self, rel, data, writer)

    monkeypatch.setattr(run_module.Run, "_write_atomic", failing)
    config = write(tmp_path / "c.yaml", TINY | {"out": str(tmp_path / "out")})
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert (tmp_path / "out" / "tiny" / "data" / "y.npy").exists()   # the pool written before is kept


def test_errors_are_never_wrapped_in_a_log(tmp_path):
    long_name = "x" * 150
    result = cli("run", str(write(tmp_path / "c.yaml", TINY)), "--name", long_name, cwd=tmp_path)
    line = one_line_error(result, "name")
    assert long_name in line


# -- 9. a model's computation does not depend on its group ----------------------------------------
def test_metrics_are_bit_identical_for_any_grouping(tmp_path):
    docs = []
    for k in (7, 32, 64):
        data = TINY | {"name": f"k{k}", "out": str(tmp_path), "population": {"n_models": 64, "models_per_group": k},
                       "training": TINY["training"] | {"epochs": 2}, "evaluation": {"targets": 8, "bootstrap": 20}}
        result = cli("run", str(write(tmp_path / f"k{k}.yaml", data)), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        docs.append(json.loads((tmp_path / f"k{k}" / "results" / "metrics.json").read_text())["attacks"])
        logits = np.load(tmp_path / f"k{k}" / "signals" / "epoch_0002" / "logits.npy")
        if k == 7:
            first = logits
        else:
            assert np.array_equal(logits, first), f"models_per_group={k} changes the logits"
    assert docs[0] == docs[1] == docs[2]


# -- 10. Ctrl-C -----------------------------------------------------------------------------------
def test_ctrl_c_is_clean_and_says_how_to_resume(tmp_path):
    data = TINY | {"out": str(tmp_path), "population": {"n_models": 16, "models_per_group": 4},
                   "training": TINY["training"] | {"epochs": 200, "workers": 2}}
    proc = subprocess.Popen([sys.executable, "-m", "privaudit.cli", "run", str(write(tmp_path / "c.yaml", data))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (tmp_path / "tiny" / "keep.npy").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3)                                              # inside training, workers running
    os.killpg(proc.pid, signal.SIGINT)                         # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert "rerun the same command to resume" in err


# -- structure -------------------------------------------------------------------------------------
def _module_names() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: Path, module: str) -> set[str]:
    """privaudit modules imported anywhere in ``path`` (module level or inside functions);
    ``from package import submodule`` counts as importing the submodule."""
    modules = _module_names()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found |= subs if len(subs) == len(node.names) else subs | {node.module}
    return {m for m in found if m.startswith("privaudit")}


def test_no_import_cycles():
    modules = _module_names()
    # a module always imports its parent packages first (Python does), so that edge is not a cycle
    graph = {m: {i for i in _imports(p, m) if i in modules and i != m and not m.startswith(i + ".")}
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n] if n in stack else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_stages_never_import_each_other():
    stages = {p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__"}
    for path in (PACKAGE / "stages").glob("*.py"):
        others = {i for i in _imports(path, "") if i.startswith("privaudit.stages.")} - {f"privaudit.stages.{path.stem}"}
        assert not others, f"{path.name} imports {others}"
    assert {"prepare", "train", "query", "curvature", "evaluate", "target", "report"} <= stages


ARTIFACT_LITERAL = re.compile(r"""["'](keep\.npy|config\.yaml|manifest\.json|metrics\.json|info\.json|dp\.json|"""
                              r"""audit\.json|slices\.json|(results|signals|models|data|report)/[^"']*)["']""")


def test_artifact_paths_are_named_only_by_the_run():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "runtime" / "run.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    ARTIFACT_LITERAL.fullmatch(repr(node.value)):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, "artifact paths outside privaudit/runtime/run.py:\n" + "\n".join(offenders)


def test_docs_cite_nothing_outside_the_repository():
    bad = re.compile(r"ALGORITHMS\.md|DESIGN(\.md| §)|spec/|CPU_PERF|PEERS\.md|seeds?/|RECONSTRUCTED|the seed's")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in [*PACKAGE.rglob("*.py"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]
                 for i, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert not offenders, offenders[:20]


# -- 2. workers cannot outlive their parent ---------------------------------------------------------
def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(f"""
import os, time
from privaudit.runtime.executor import run_tasks

def task(name, on_progress):
    (__import__('pathlib').Path({str(tmp_path)!r}) / f"pid_{{name}}").write_text(str(os.getpid()))
    time.sleep(60)
    (__import__('pathlib').Path({str(tmp_path)!r}) / f"finished_{{name}}").write_text("x")

if __name__ == "__main__":
    import sys; sys.path.insert(0, {str(tmp_path)!r})
    from parent import task
    run_tasks(task, [{{"name": "a"}}, {{"name": "b"}}], workers=2, advance=lambda n: None)
""")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, start_new_session=True)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("pid_*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    pids = [int(p.read_text()) for p in tmp_path.glob("pid_*")]
    assert len(pids) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = pids
    while alive and time.time() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "zombie" not in
                 Path(f"/proc/{p}/status").read_text().lower()]
        time.sleep(0.2)
    assert not alive, f"workers {alive} outlived their killed parent"
    assert not list(tmp_path.glob("finished_*"))


def test_the_dp_audit_reaches_the_report(tiny_run):
    result = cli("audit", str(tiny_run), "--attack", "lira_online", cwd=tiny_run.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((tiny_run / "results" / "audit.json").read_text())
    page = (tiny_run / "report" / "index.html").read_text()
    assert "DP audit" in page and doc["verdict"].split(";")[0] in page
