"""``privaudit many-run OUT_DIR``: the many-run DP audit (Tramèr et al. 2022; logic in
:mod:`privaudit.studies.many_run.audit`), written to ``OUT_DIR`` through a
:class:`~privaudit.runtime.run.Run` (a run directory, or a new directory for the audit alone)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _rows(config: Optional[Path], epsilons: List[float], bugs: List[str], n_models: Optional[int]) -> list[dict]:
    import yaml

    from privaudit.errors import ConfigError

    if config is not None:
        data = yaml.safe_load(config.read_text()) or {}
        if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
            raise ConfigError(f"{config}: expected a mapping with `defaults` and a list `rows`")
        defaults, rows = dict(data.get("defaults") or {}), list(data.get("rows") or [])
    else:
        defaults = {}
        rows = [{"epsilon": e, "bug": b} for b in (bugs or ["none"]) for e in (epsilons or [1.0])]
    if n_models is not None:
        defaults["n_models"] = n_models
    return [defaults | dict(r) for r in rows]


def many_run(out_dir: Path = typer.Argument(..., help="directory the audit is written to (a run directory or a new one)"),
             config: Optional[Path] = typer.Option(None, "--config", help="YAML with `defaults` and `rows` "
                                                   "(e.g. configs/many_run.yaml); overrides --epsilon/--bug"),
             epsilon: List[float] = typer.Option([], "--epsilon", help="claimed eps (repeatable; default 1)"),
             bug: List[str] = typer.Option([], "--bug", help="none | noise_not_scaled | clip_after_average (repeatable)"),
             n_models: Optional[int] = typer.Option(None, "--n-models", help="models per setting (default 10000)")) -> None:
    """Train N small DP-SGD models, half with one canary, and bound eps with Clopper–Pearson."""
    from privaudit.commands.common import console, user_errors
    from privaudit.runtime.notices import plural
    from privaudit.runtime.run import Layout, Run
    from privaudit.studies.many_run import DOCUMENT, NAME
    from privaudit.studies.many_run.audit import PAPER, ManyRunSettings, run_many
    from privaudit.studies.many_run.render import audit_table

    with user_errors():
        rows = []
        for r in _rows(config, epsilon, bug, n_models):
            s = ManyRunSettings(**r)
            console.print(f"eps={s.epsilon:g} bug={s.bug}: training {plural(s.n_models, 'model')} ...")
            rows.append(run_many(s))
        doc = {"paper": PAPER, "rows": rows}
        run = Run(out_dir)
        with run.writer():
            run.save_json(Layout.study(NAME, DOCUMENT), doc)
            page = _refresh_report(run)
        console.print(audit_table(doc).rich())
        console.print(f"written: {run.path(Layout.study(NAME, DOCUMENT))}" + (f"\nreport: {page}" if page else ""))


def _refresh_report(run) -> Path | None:
    """Rebuild the report when ``run`` is a run directory with metrics (it shows this audit too)."""
    from privaudit.runtime.run import Layout
    from privaudit.stages.report import report

    if not run.has(Layout.config):
        return None
    cfg = run.config()
    return report(run, cfg) if run.has(Layout.epoch_metrics(cfg.training.epochs)) else None


def register(app: typer.Typer) -> None:
    app.command("many-run")(many_run)
