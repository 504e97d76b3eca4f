"""Run independent tasks (training or querying one group of models) in-process or in a pool of
worker processes, with one progress bar fed by the workers.

Two processes with one thread each beat one process with two threads on a 2-core CPU: two groups
of 32 MLPs trained 1.2x faster in two one-thread workers than one after the other in one
two-thread process (measured for the digits MLP 64-128-10 and a Purchase-sized
600-512-256-128-100 MLP, ``benchmarks/train_throughput.py`` workloads, 2026-11-30). So
``workers`` defaults to the core count and each worker pins torch to one thread (training pins one
thread anyway, see :mod:`privaudit.training.trainer`). Tasks write their own artifacts atomically;
the executor only schedules them, so a killed run leaves finished groups on disk and the rerun
skips them.

Workers never outlive the run that started them, and never see Ctrl-C:

* each worker asks the kernel for SIGKILL when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``;
  elsewhere a thread polls ``os.getppid()``) and exits at once if the parent is already gone, so a
  run killed with SIGKILL cannot leave workers that finish their group later and write it into a
  run directory that has since been deleted or restarted;
* workers ignore SIGINT (and are started with it blocked, so not even their start-up sees it): a
  terminal's Ctrl-C, which goes to the whole process group, interrupts only the main process, which
  then kills the workers, cancels what has not started and re-raises ``KeyboardInterrupt``;
* :func:`parent_pid` tells a task which process started its worker (the run's lock holder).

``executor="ray"`` submits the same task functions as Ray tasks (one CPU, and one GPU when the run
uses one): a local Ray instance, or the cluster ``RAY_ADDRESS`` names. The run directory must then
be on storage every node sees; each task writes its own files there, so resume works unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator

import torch

from privaudit.errors import ConfigError
from privaudit.runtime.allocator import apply_malloc_fix

Task = Callable[..., Any]

PARENT_PID_ENV = "PRIVAUDIT_PARENT_PID"
PR_SET_PDEATHSIG = 1
_parent_pid: int | None = None
_progress: Any = None            # the worker's end of the progress queue


def parent_pid() -> int | None:
    """In a worker process of :func:`run_tasks`: the pid of the process that started it (the one
    holding the run's lock); ``None`` outside a worker (in-process tasks run in the lock holder
    itself). The same value is in the environment as ``PRIVAUDIT_PARENT_PID``."""
    return _parent_pid


def _configure_worker() -> None:
    torch.set_num_threads(1)
    apply_malloc_fix()


def _die_with_parent(parent: int) -> str:
    """Make this process end when ``parent`` does; exit now if it already has. Returns how.

    The kernel sends the death signal when the *thread* that started this process ends, so
    :func:`run_tasks` must run in a thread that outlives its pool (it blocks until the pool is
    done, so any caller does)."""
    how = "poll"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:      # the parent died before prctl ran: nobody will signal us
        os._exit(1)
    if how == "poll":
        threading.Thread(target=_poll_parent, args=(parent,), name="privaudit-parent-watch", daemon=True).start()
    return how


def _poll_parent(parent: int, interval: float = 0.5) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(parent: int, progress: Any) -> None:
    global _parent_pid, _progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):     # started with SIGINT blocked (see _sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent(parent)
    _parent_pid, _progress = parent, progress
    os.environ[PARENT_PID_ENV] = str(parent)
    _configure_worker()


def _call(fn: Task, kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs, on_progress=_progress.put)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while workers are spawned: they inherit the blocked mask (and
    so never see a Ctrl-C, even before their initializer ignores it), and a Ctrl-C in the meantime
    is delivered here when the block ends, not lost."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_tasks(fn: Task, tasks: list[dict[str, Any]], *, workers: int, advance: Callable[[int], None],
              executor: str = "local", gpus_per_task: float = 0.0) -> list[Any]:
    """Call ``fn(**task, on_progress=...)`` for every task; ``advance(n)`` receives progress.

    With ``workers > 1`` and several tasks, the tasks run in that many spawned worker processes
    (one torch thread each). If anything goes wrong in this process (a task's error, Ctrl-C), the
    workers are killed at once and the error is re-raised here: no task keeps running after
    ``run_tasks`` returns or raises.
    """
    if executor == "ray":
        return _run_ray(fn, tasks, advance, gpus_per_task)
    if executor != "local":
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    apply_malloc_fix()
    if workers <= 1 or len(tasks) <= 1:
        return [fn(**t, on_progress=advance) for t in tasks]
    return _run_pool(fn, tasks, min(workers, len(tasks)), advance)


def _run_pool(fn: Task, tasks: list[dict[str, Any]], workers: int, advance: Callable[[int], None]) -> list[Any]:
    ctx = mp.get_context("spawn")
    progress = ctx.SimpleQueue()     # put() writes synchronously: no progress is lost at the end
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(), progress))
    try:
        with _sigint_blocked():      # the pool spawns its workers inside submit()
            futures = {pool.submit(_call, fn, t): i for i, t in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress, advance)
            for fut in done:
                results[futures[fut]] = fut.result()  # re-raises a worker's error here
        _drain(progress, advance)
    except BaseException:
        _kill_pool(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        progress.close()
    return results


def _kill_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Kill every worker now (``shutdown`` alone lets running tasks finish), cancel the rest."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))


def _drain(q: Any, advance: Callable[[int], None]) -> None:
    while not q.empty():
        advance(q.get())


def _counted_call(fn: Task, kwargs: dict[str, Any]) -> tuple[Any, int]:
    """A Ray task: one thread, progress summed and returned with the result."""
    _configure_worker()
    done = [0]
    value = fn(**kwargs, on_progress=lambda n: done.__setitem__(0, done[0] + n))
    return value, done[0]


def _run_ray(fn: Task, tasks: list[dict[str, Any]], advance: Callable[[int], None], gpus: float) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise ConfigError("training.executor is 'ray' but Ray is not installed; pip install 'privaudit[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    hide_gpus = {} if gpus else {"runtime_env": {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}}   # CPU tasks stay off GPUs
    remote = ray.remote(num_cpus=1, num_gpus=gpus, **hide_gpus)(_counted_call)
    pending = {remote.remote(fn, t): i for i, t in enumerate(tasks)}
    results: list[Any] = [None] * len(tasks)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            index = pending.pop(ref)
            try:
                value, units = ray.get(ref)
            except ray.exceptions.RayTaskError as err:   # the task's own error, without Ray's traceback
                for other in pending:
                    ray.cancel(other)
                raise err.cause if isinstance(err.cause, BaseException) else err from None
            results[index] = value
            advance(units)
    return results
