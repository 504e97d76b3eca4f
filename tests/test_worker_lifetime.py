"""Worker processes of ``run_tasks`` never outlive their run: SIGKILL of the main process kills them
(nothing finished is written afterwards), Ctrl-C stops everything at once without a worker's
traceback, a failing task stops the others, and a worker knows its parent's pid."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from privaudit.errors import DataError
from privaudit.runtime import executor
from privaudit.runtime.executor import run_tasks

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")

SCRIPT = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    from privaudit.runtime.executor import run_tasks

    def task(out, i, on_progress):
        Path(out, f"pid_{i}").write_text(str(os.getpid()))
        time.sleep(30)
        Path(out, f"finished_{i}").write_text("done")
        return i

    if __name__ == "__main__":
        try:
            run_tasks(task, [{"out": sys.argv[1], "i": i} for i in range(3)], workers=2, advance=lambda n: None)
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            sys.exit(130)
''')


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


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
    with open(tmp_path / "stderr", "w") as err:   # a file, not a pipe: a leaked process cannot hold it open
        proc = subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    started = wait_until(lambda: len(list(out.glob("pid_*"))) == 2, timeout=60)
    if not started:
        proc.kill()
        proc.wait()
        pytest.fail(f"the workers did not start: {(tmp_path / 'stderr').read_text()}")
    time.sleep(0.2)  # both pid files fully written
    pids = [int(p.read_text()) for p in out.glob("pid_*")]
    assert all(alive(p) for p in pids) and proc.pid not in pids
    return proc, out, pids


def _cleanup(pids):
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_main_process_kills_its_workers(tmp_path):
    proc, out, pids = start_run(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: not any(alive(p) for p in pids), timeout=5), \
            f"workers {[p for p in pids if alive(p)]} outlived their parent"
        assert not list(out.glob("finished_*"))
    finally:
        _cleanup(pids)


def test_ctrl_c_stops_the_run_at_once_without_a_worker_traceback(tmp_path):
    proc, out, pids = start_run(tmp_path)
    try:
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)      # a terminal's Ctrl-C: the whole foreground group
        proc.wait(timeout=15)
        err = (tmp_path / "stderr").read_text()
        assert time.monotonic() - t0 < 8
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert "rerun the same command to resume" in err
        assert wait_until(lambda: not any(alive(p) for p in pids), timeout=5)
        assert not list(out.glob("finished_*"))
    finally:
        _cleanup(pids)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_poll_fallback_ends_a_worker_whose_parent_died(tmp_path):
    """Where prctl is unavailable, a thread polling getppid() ends the worker."""
    code = textwrap.dedent('''
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, sys, threading, time\\n"
            "from privaudit.runtime.executor import _poll_parent\\n"
            "threading.Thread(target=_poll_parent, args=(os.getppid(), 0.05), daemon=True).start()\\n"
            "print(os.getpid(), flush=True)\\n"
            "time.sleep(60)\\n"], stdout=subprocess.PIPE, text=True)
        print(child.stdout.readline().strip(), flush=True)
        time.sleep(60)
    ''')
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(middle.stdout.readline())
    try:
        assert alive(child)
        os.kill(middle.pid, signal.SIGKILL)
        middle.wait(timeout=10)
        assert wait_until(lambda: not alive(child), timeout=5)
    finally:
        _cleanup([child])
        middle.stdout.close()


def _report_parent(i, on_progress):
    on_progress(1)
    return executor.parent_pid(), int(os.environ[executor.PARENT_PID_ENV]), os.getppid(), os.getpid()


def test_a_worker_knows_its_parent_and_progress_arrives():
    seen = []
    out = run_tasks(_report_parent, [{"i": i} for i in range(3)], workers=2, advance=seen.append)
    assert sum(seen) == 3
    for parent, env, ppid, pid in out:
        assert parent == env == ppid == os.getpid() != pid
    assert executor.parent_pid() is None     # not in a worker


def _fails_or_sleeps(i, out, on_progress):
    if i == 0:
        time.sleep(1.0)
        raise DataError("group 0 is broken")
    Path(out, f"pid_{i}").write_text(str(os.getpid()))
    time.sleep(30)
    Path(out, f"finished_{i}").write_text("done")


def test_a_failing_task_stops_the_others_at_once(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(DataError, match="group 0 is broken"):
        run_tasks(_fails_or_sleeps, [{"i": i, "out": str(tmp_path)} for i in range(3)], workers=2,
                  advance=lambda n: None)
    assert time.monotonic() - t0 < 25
    pids = [int(p.read_text()) for p in tmp_path.glob("pid_*")]
    assert pids and not any(alive(p) for p in pids)
    assert not list(tmp_path.glob("finished_*"))
