"""Run independent tasks (training or querying one group of models) in-process, several at a time
in threads of this process, with one progress bar fed by the tasks.

Tasks run in Python threads with one intra-op torch thread each: torch releases the GIL in its
kernels, so two tasks use two cores, and no process is started. On a 2-core CPU two threads
trained the default audit's 64 MLPs 1.4x faster than one after the other and 2.1x faster than two
spawned worker processes, whose start (each imports torch) cost more than the training; for 4 small
MNIST CNNs threads were 1.9x faster than one after the other and 3.8x faster than processes
(``benchmarks/executors.py``, RESULTS.md).
Threads share the data (no copy per worker), and a task's numbers do not depend on where it runs:
every task computes on one intra-op thread and draws its randomness from its own seeded
generators (model initialisation, which seeds torch's global generator, holds a lock).

A run stops as one process:

* SIGKILL ends every task with the process; what a finished task wrote is on disk (atomically),
  and the rerun skips it;
* Ctrl-C (or a task's error) stops the other tasks at their next progress report (a training step;
  a group's query or curvature): :func:`run_tasks` tells them to stop, waits until they have (the
  interpreter must not exit with a task inside torch: it aborts) and re-raises. A second Ctrl-C
  during that wait ends the wait. A task that is somehow still running after its run has released
  the lock cannot write: :meth:`privaudit.runtime.run.Run._check_writer` refuses a write from a run
  that has ended.

``executor="ray"`` submits the same task functions as Ray tasks (one CPU, and one GPU when the run
uses one): a local Ray instance, or the cluster ``RAY_ADDRESS`` names. The run directory must then
be on storage every node sees; each task writes its own files there, so resume works unchanged.
"""

from __future__ import annotations

import os
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from privaudit.errors import ConfigError
from privaudit.runtime.allocator import apply_malloc_fix

Task = Callable[..., Any]


class Stopped(Exception):
    """Raised inside a task, by its progress callback, once the run is stopping."""


def run_tasks(fn: Task, tasks: list[dict[str, Any]], *, workers: int, advance: Callable[[int], None],
              executor: str = "local", gpus_per_task: float = 0.0) -> list[Any]:
    """Call ``fn(**task, on_progress=...)`` for every task; ``advance(n)`` receives progress (in
    this thread). With ``workers > 1`` and several tasks, ``workers`` tasks run at a time in
    threads, each on one intra-op thread. The first error (a task's, or Ctrl-C here) stops the other
    tasks and is re-raised here."""
    if executor == "ray":
        return _run_ray(fn, tasks, advance, gpus_per_task)
    if executor != "local":
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    apply_malloc_fix()
    if workers <= 1 or len(tasks) <= 1:
        return [fn(**t, on_progress=advance) for t in tasks]
    with one_intra_op_thread():
        return _run_threads(fn, tasks, min(workers, len(tasks)), advance)


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """torch computes on one thread per caller for the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_threads(fn: Task, tasks: list[dict[str, Any]], workers: int, advance: Callable[[int], None]) -> list[Any]:
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for item in enumerate(tasks):
        todo.put(item)
    progress: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    results: list[Any] = [None] * len(tasks)
    errors: list[BaseException] = []

    def report(n: int) -> None:
        if stop.is_set():
            raise Stopped
        progress.put(n)

    def work() -> None:
        while not stop.is_set():
            try:
                i, task = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[i] = fn(**task, on_progress=report)
            except Stopped:
                return
            except BaseException as err:    # the first error stops the others
                errors.append(err)
                stop.set()
                return

    threads = [threading.Thread(target=work, name=f"privaudit-task-{k}", daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    try:
        running = threads
        while running:
            running[0].join(0.1)       # interruptible: Ctrl-C arrives here
            _drain(progress, advance)
            running = [t for t in threads if t.is_alive()]
    except BaseException:              # Ctrl-C here, or advance() failed
        stop.set()
        for t in threads:              # each stops at its next progress report (a training step); the
            t.join()                   # process never exits with a task inside torch (that aborts it)
        raise
    if errors:
        raise errors[0]
    return results


def _drain(q: queue.SimpleQueue, advance: Callable[[int], None]) -> None:
    while True:
        try:
            n = q.get_nowait()
        except queue.Empty:
            return
        advance(n)


def _counted_call(fn: Task, kwargs: dict[str, Any]) -> tuple[Any, int]:
    """A Ray task: one thread, progress summed and returned with the result."""
    torch.set_num_threads(1)
    apply_malloc_fix()
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
