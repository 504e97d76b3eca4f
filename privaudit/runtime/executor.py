"""Run independent tasks (training or querying one group of models) in-process or in a pool of
worker processes, with one progress bar fed by the workers.

Two processes with one thread each beat one process with two threads for every workload measured
on this machine type (``spec/CPU_PERF.md`` §4), so ``workers`` defaults to the core count and each
worker pins torch to one thread. Tasks write their own artifacts atomically; the executor only
schedules them, so a killed run leaves finished groups on disk and the rerun skips them.

``executor="ray"`` submits the same task functions as Ray tasks (one CPU, and one GPU when the run
uses one): a local Ray instance, or the cluster ``RAY_ADDRESS`` names. The run directory must then
be on storage every node sees; each task writes its own files there, so resume works unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable

import torch

from privaudit.errors import ConfigError
from privaudit.runtime.allocator import apply_malloc_fix

Task = Callable[..., Any]


def _init_worker() -> None:
    torch.set_num_threads(1)
    apply_malloc_fix()


def _call(fn: Task, kwargs: dict[str, Any], progress_queue: Any) -> Any:
    return fn(**kwargs, on_progress=lambda n: progress_queue.put(n))


def run_tasks(fn: Task, tasks: list[dict[str, Any]], *, workers: int, advance: Callable[[int], None],
              executor: str = "local", gpus_per_task: float = 0.0) -> list[Any]:
    """Call ``fn(**task, on_progress=...)`` for every task; ``advance(n)`` receives progress."""
    if executor == "ray":
        return _run_ray(fn, tasks, advance, gpus_per_task)
    if executor != "local":
        raise ConfigError(f"unknown executor {executor!r}; choose local or ray")
    apply_malloc_fix()
    if workers <= 1 or len(tasks) <= 1:
        return [fn(**t, on_progress=advance) for t in tasks]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx,
                                                       initializer=_init_worker) as pool:
        progress_queue = manager.Queue()
        futures = {pool.submit(_call, fn, t, progress_queue): i for i, t in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(progress_queue, advance)
            for fut in done:
                results[futures[fut]] = fut.result()  # re-raises a worker's error here
        _drain(progress_queue, advance)
        return results


def _drain(q: Any, advance: Callable[[int], None]) -> None:
    while True:
        try:
            advance(q.get_nowait())
        except queue_mod.Empty:
            return


def _counted_call(fn: Task, kwargs: dict[str, Any]) -> tuple[Any, int]:
    """A Ray task: one thread, progress summed and returned with the result."""
    _init_worker()
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

