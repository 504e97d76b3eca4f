"""Stage ``query``: the logits of every model on every audited sample under every query, per
checkpoint (``signals/epoch_E/logits.npy [M, n, A, C]``), computed group by group; finished groups
are kept, so a grown population queries only its new models."""

from __future__ import annotations

from privaudit.config import RunConfig
from privaudit.runtime import plan
from privaudit.runtime.groupwork import per_group_signal
from privaudit.runtime.notices import plural
from privaudit.runtime.run import Layout, Run


def query_group_task(run_dir: str, model_ids: list[int], epoch: int, settings: dict, on_progress) -> str:
    import torch

    from privaudit.signals.query import query_logits

    run = Run(run_dir)
    cfg = run.config()
    x, _ = run.pool()
    logits = query_logits(plan.load_group(run, cfg, model_ids, epoch), torch.from_numpy(x), plan.queries(cfg))
    on_progress(logits.shape[0])
    return str(run.save_npy(Layout.signal("logits", epoch, model_ids), logits, meta={"settings": settings}))


def query(run: Run, cfg: RunConfig, console=None) -> None:
    """Logits of every model per checkpoint, under the configured queries."""
    grid = [list(q) for q in plan.queries(cfg)]
    for epoch in plan.signal_epochs(cfg):
        per_group_signal(run, cfg, "logits", epoch, query_group_task,
                         f"query models (epoch {epoch}, {plural(len(grid), 'query')})",
                         console, settings={"queries": grid})
    run.mark("query", epochs=plan.signal_epochs(cfg), queries=len(grid))
