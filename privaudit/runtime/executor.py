"""Run independent tasks (training or querying one group of models) in-process or in a pool of
worker processes, with one progress bar fed by the workers.

Two processes with one thread each beat one process with two threads for every workload measured
on this machine type (``spec/CPU_PERF.md`` §4), so ``workers`` defaults to the core count and each
worker pins torch to one thread. Tasks write their own artifacts atomically; the executor only
schedules them, so a killed run leaves finished groups on disk and the rerun skips them.
(For several machines, the same task functions can be submitted as Ray tasks instead.)
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable

import torch

from privaudit.runtime.allocator import apply_malloc_fix

Task = Callable[..., Any]


def _init_worker() -> None:
    torch.set_num_threads(1)
    apply_malloc_fix()


def _call(fn: Task, kwargs: dict[str, Any], progress_queue: Any) -> Any:
    return fn(**kwargs, on_progress=lambda n: progress_queue.put(n))


def run_tasks(fn: Task, tasks: list[dict[str, Any]], *, workers: int,
              advance: Callable[[int], None]) -> list[Any]:
    """Call ``fn(**task, on_progress=...)`` for every task; ``advance(n)`` receives progress."""
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
