"""Stage ``train``: every group of models trained and saved (``models/``), K models at a time;
finished groups are kept, so an interrupted run trains only what is missing. A DP-SGD run also
records its privacy claim (``dp.json``)."""

from __future__ import annotations

import socket
import time
from functools import partial

from privaudit.config import RunConfig
from privaudit.data.membership import check_keep
from privaudit.device import on_cpu, resolve_device
from privaudit.runtime import plan
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.notices import plural
from privaudit.runtime.run import Layout, Run


def train_group_task(run_dir: str, model_ids: list[int], on_progress) -> str:
    """Train one group and write its model file (+ checkpoint files); returns its path."""
    import torch

    from privaudit.training.trainer import steps_per_epoch, train_group

    run = Run(run_dir)
    cfg = run.config()
    x, y = run.pool(audited_only=False)
    n_classes = int(run.pool_info()["n_classes"])
    keep = run.training_keep()
    save = lambda epoch, state, rel: run.save_torch(rel, {"model_ids": model_ids, "epoch": epoch, "state": on_cpu(state)})
    train_fn = train_group
    if cfg.training.dp is not None:
        from privaudit.training.dp import train_group_dp
        train_fn = partial(train_group_dp, dp=cfg.training.dp)
    trained = train_fn(torch.from_numpy(x), torch.from_numpy(y), keep, model_ids, spec=plan.arch_spec(cfg),
                       recipe=plan.recipe(cfg), n_classes=n_classes, root_seed=cfg.seed,
                       steps=steps_per_epoch(keep, cfg.training.batch_size), backend=cfg.training.backend,
                       device=resolve_device(cfg.training.device),
                       on_checkpoint=lambda e, s: save(e, s, Layout.group_models(model_ids, e)),
                       on_progress=on_progress)
    return str(save(cfg.training.epochs, trained.state(), Layout.group_models(model_ids)))


def group_done(run: Run, cfg: RunConfig, ids: list[int]) -> bool:
    files = [Layout.group_models(ids)] + [Layout.group_models(ids, e) for e in cfg.training.checkpoints
                                          if e != cfg.training.epochs]
    return all(run.has(f) for f in files)


def train(run: Run, cfg: RunConfig, console=None) -> None:
    from privaudit.training.trainer import choose_backend, steps_per_epoch

    keep = check_keep(run.keep(), run.n_audit())
    todo = [ids for ids in plan.groups(cfg) if not group_done(run, cfg, ids)]
    info = {k: v for k, v in (run.stage_done("train") or {}).items() if k in ("device", "backend", "host", "seconds")}
    if todo:
        steps = steps_per_epoch(keep, cfg.training.batch_size) * cfg.training.epochs
        schedule = plan.schedule(cfg)
        device = "cuda" if schedule["gpus_per_task"] else "cpu"
        backend = choose_backend(plan.arch_spec(cfg), cfg.training.backend, device)
        n_models = sum(len(ids) for ids in todo)
        t0 = time.perf_counter()
        with plan.progress(console, f"train {plural(n_models, 'model')} ({backend}, {device})", n_models * steps,
                           "model-steps") as advance:
            tasks = [{"run_dir": str(run.root), "model_ids": ids} for ids in todo]
            run_tasks(train_group_task, tasks, **schedule, advance=advance)
        # for the report's environment: where the models trained, and for how long (summed over resumes)
        info = {"device": device, "backend": backend, "host": socket.gethostname(),
                "seconds": info.get("seconds", 0.0) + time.perf_counter() - t0}
    if cfg.training.dp is not None:
        claim = dp_claim(run, cfg)
        info |= {"claimed_epsilon": claim["epsilon"], "delta": claim["delta"]}
        if console is not None:
            console.print(f"DP-SGD claim (Opacus {cfg.training.dp.accountant}): every model is "
                          f"({claim['epsilon']:.3g}, {claim['delta']:g})-DP; noise multiplier "
                          f"{claim['noise_multiplier']:.3g}{'; ' + claim['note'] if claim['note'] else ''}")
    run.mark("train", groups=len(plan.groups(cfg)), **info)


def dp_claim(run: Run, cfg: RunConfig) -> dict:
    """The claimed ``(eps, delta)`` of every model after the full training (``dp.json``)."""
    from privaudit.training.dp import dp_report
    from privaudit.training.trainer import steps_per_epoch

    if run.has(Layout.dp_claim):
        return run.load_json(Layout.dp_claim)
    keep = run.training_keep()
    steps = steps_per_epoch(keep, cfg.training.batch_size) * cfg.training.epochs
    report = dp_report(cfg.training.dp, keep, cfg.training.batch_size, steps) | {"epoch": cfg.training.epochs}
    run.save_json(Layout.dp_claim, report)
    return report
