"""Tasks of ``run_tasks`` never outlive their run: SIGKILL of the process ends them (nothing
finished is written afterwards), Ctrl-C stops everything at once without a task's traceback, a
failing task stops the others at their next progress report, a task still running after its run
ended cannot write to the run, and threaded tasks give the same models as tasks run one by one."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from privaudit.errors import DataError
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.run import Run, RunError

SCRIPT = textwrap.dedent('''
    import os, sys, threading, time
    from pathlib import Path
    from privaudit.runtime.executor import run_tasks

    def task(out, i, on_progress):
        Path(out, f"started_{i}").write_text(str(threading.get_ident()))
        for _ in range(600):            # 30 s of "training steps", each reporting progress
            time.sleep(0.05)
            on_progress(1)
        Path(out, f"finished_{i}").write_text("done")
        return i

    if __name__ == "__main__":
        try:
            run_tasks(task, [{"out": sys.argv[1], "i": i} for i in range(3)], workers=2, advance=lambda n: None)
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)
''')


def wait_until(cond, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def start_run(tmp_path: Path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    with open(tmp_path / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    if not wait_until(lambda: len(list(out.glob("started_*"))) == 2, timeout=60):
        proc.kill()
        proc.wait()
        pytest.fail(f"the tasks did not start: {(tmp_path / 'stderr').read_text()}")
    return proc, out


def test_sigkill_ends_every_task(tmp_path):
    proc, out = start_run(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.5)
    assert not list(out.glob("finished_*"))


def test_ctrl_c_stops_the_run_at_once_without_a_traceback(tmp_path):
    proc, out = start_run(tmp_path)
    try:
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)      # a terminal's Ctrl-C: the whole foreground group
        proc.wait(timeout=15)
        err = (tmp_path / "stderr").read_text()
        assert time.monotonic() - t0 < 3
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert "rerun the same command to resume" in err
        assert not list(out.glob("finished_*")) and not list(out.glob("started_2"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _steps(i, out, on_progress):
    if i == 0:
        time.sleep(0.5)
        raise DataError("group 0 is broken")
    Path(out, f"started_{i}").write_text("")
    for _ in range(600):
        time.sleep(0.05)
        on_progress(1)
    Path(out, f"finished_{i}").write_text("done")


def test_a_failing_task_stops_the_others_at_their_next_progress_report(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DataError, match="group 0 is broken"):
        run_tasks(_steps, [{"i": i, "out": str(tmp_path)} for i in range(3)], workers=2, advance=lambda n: None)
    assert time.monotonic() - t0 < 5
    assert list(tmp_path.glob("started_*")) and not list(tmp_path.glob("finished_*"))
    assert not [t for t in threading.enumerate() if t.name.startswith("privaudit-task")]


def test_progress_arrives_and_tasks_run_at_the_same_time():
    def task(i, on_progress):
        time.sleep(0.3)
        on_progress(i)
        return i * 10

    seen: list[int] = []
    t0 = time.monotonic()
    assert run_tasks(task, [{"i": i} for i in range(4)], workers=2, advance=seen.append) == [0, 10, 20, 30]
    assert sorted(seen) == [0, 1, 2, 3] and time.monotonic() - t0 < 1.0   # 2 at a time: about 0.6 s


def test_a_task_left_running_after_its_run_ended_cannot_write(tmp_path):
    run = Run(tmp_path / "run")
    with run.writer():
        straggler = Run(run.root)              # what a task builds from the run directory
        straggler.save_json("inside.json", {"ok": True})
    with pytest.raises(RunError, match="has ended; not writing"):
        straggler.save_json("late.json", {"ok": False})
    assert not (run.root / "late.json").exists()


def test_threads_train_the_same_models_as_one_after_the_other(tmp_path):
    from privaudit.config import parse_config
    from privaudit.pipeline import run_all

    run = {"seed": 0, "data": {"name": "digits", "n": 400}, "population": {"n_models": 8, "models_per_group": 2},
           "model": {"arch": "mlp", "hidden": [32]}, "training": {"epochs": 2, "batch_size": 32},
           "attacks": ["loss"], "evaluation": {"targets": 2, "bootstrap": 0}}
    logits = {}
    for workers in (1, 2):
        cfg = parse_config(run | {"name": f"w{workers}", "out": str(tmp_path)}
                           | {"training": run["training"] | {"workers": workers}})
        run_all(cfg)
        logits[workers] = np.load(tmp_path / f"w{workers}" / "signals" / "epoch_0002" / "logits.npy")
    np.testing.assert_array_equal(logits[1], logits[2])
