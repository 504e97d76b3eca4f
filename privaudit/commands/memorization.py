"""``privaudit memorization RUN_DIR``: Feldman-Zhang memorization, privacy score, per-group attack
tables and the shadow-model budget on an existing run (Choi et al., "Why Train More?"; logic in
:mod:`privaudit.runtime.memorization_stage`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from privaudit.errors import ConfigError, PrivauditError


def _num(x: Any, fmt: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return "∞" if x == float("inf") else format(x, fmt)


def _cell(stat: dict[str, float] | None, percent: bool) -> str:
    """mean [95% CI] (AUC as is, TPR in %)."""
    if not stat:
        return "-"
    f, fmt = (100.0, ".2f") if percent else (1.0, ".3f")
    text = _num(stat["mean"] * f, fmt)
    if "lo" in stat:
        text += f" [{_num(stat['lo'] * f, fmt)}, {_num(stat['hi'] * f, fmt)}]"
    return text


def group_table(doc: dict[str, Any]) -> Table:
    """The seed's Tables II/III layout: per attack, AUC and TPR on All / Under-represented / high-mem."""
    from privaudit.runtime.memorization_stage import GROUP_NAMES

    key = f"tpr@{doc['fpr']:g}"
    names = [g for g in GROUP_NAMES if any(g in t.get("groups", {}) for t in doc["tables"].values())]
    sizes = next((t["groups"] for t in doc["tables"].values() if "groups" in t), {})
    t = Table(title=f"{doc['run']}: attacks per group (epoch {doc['epoch']}, {doc['n_models']} models)",
              caption="mean [95% bootstrap CI] over targets; TPR strict at FPR <= "
                      f"{doc['fpr']:g} on the group's own ROC († fewer than 1/FPR non-members: TPR at zero "
                      "false positives); 'global thr.' = TPR at the threshold set on all non-members")
    t.add_column("attack")
    for what in ("AUC", f"TPR % @ {doc['fpr'] * 100:g}%", "global thr. %"):
        for g in names:
            n = sizes.get(g, {}).get("n", "?")
            t.add_column(f"{what}\n{GROUP_NAMES[g]} (n={n})")
    for label, res in doc["tables"].items():
        if "skipped" in res:
            t.add_row(label, *(["skipped"] + ["-"] * (3 * len(names) - 1)))
            continue
        gs = res["groups"]
        dag = lambda g: " †" if gs[g].get("fpr_resolution", 0) > doc["fpr"] else ""
        t.add_row(label, *[_cell(gs[g].get("auc"), False) for g in names],
                  *[_cell(gs[g].get(key), True) + dag(g) if "skipped" not in gs[g] else "skipped" for g in names],
                  *[_num(100 * gs[g]["tpr_global"]["mean"], ".2f") if "tpr_global" in gs[g] else "-" for g in names])
    return t


def summary_table(doc: dict[str, Any]) -> Table:
    t = Table(title="memorization explains vulnerability (Choi et al.); bound RECONSTRUCTED")
    t.add_column("quantity")
    t.add_column("value")
    m = doc["memorization"]["all_models"]
    t.add_row("FZ memorization, all samples", f"mean {_num(m['mean'])}, median {_num(m['median'])}, "
              f"q99 {_num(m['q99'])}, mean s.e. {_num(m['mean_se'])}")
    above = f"frac_above_{doc['threshold']:g}"
    for g, s in doc["memorization"]["by_group"].items():
        t.add_row(f"  mem in group '{g}' (n={s['n']})",
                  f"mean {_num(s['mean'])}, share > {doc['threshold']:g}: {_num(s[above])}")
    for key, what in (("mem_vs_privacy_score", "privacy score d(x)"), ("mem_vs_per_sample_tpr", "per-sample TPR")):
        r = doc["correlations"].get(key)
        if r:
            t.add_row(f"Spearman(mem, {what})", f"{_num(r['rho'])} [{_num(r['ci'][0])}, {_num(r['ci'][1])}] "
                      f"({r['band']}, p={r['pvalue']:.2g}, n={r['n']})")
    b = doc["budget"]
    for s in b["reductions"]["saturation"]:
        t.add_row(f"saturation '{s['group']}' {s['metric']}",
                  f"{_num(s['final'])} at R={s['r_max']}; reached with R={s['r_needed']} -> "
                  f"{'>= ' if s.get('capped') else ''}{_num(s['factor'], '.1f')}x")
    for c in b["reductions"]["high_mem_vs_random"]:
        t.add_row(f"high_mem vs random, {c['metric']}",
                  f"random reaches {_num(c['level'])} at R={c.get('r_max')}; high_mem with R={c.get('r_needed_a')} -> "
                  f"{'>= ' if c.get('capped') else ''}{_num(c['factor'], '.1f')}x")
    for kind in ("h2", "mem"):
        if f"predicted_reduction_{kind}" in b["bound"]:
            t.add_row(f"predicted reduction, median N (1/{'H²' if kind == 'h2' else 'mem²'})",
                      f"{_num(b['bound'][f'predicted_reduction_{kind}'], '.1f')}x (reconstructed)")
    return t


def _sizes(text: Optional[str]) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--budget-sizes expects comma-separated integers (e.g. 1,2,4,8), got {text!r}") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def memorization(
            run_dir: Path = typer.Argument(..., help="an existing run directory (privaudit run)"),
            attack: str = typer.Option("lira_online", "--attack",
                                       help="attack for per-sample TPR and the budget curve"),
            fpr: float = typer.Option(1e-3, "--fpr", help="low FPR of the TPR metrics"),
            threshold: float = typer.Option(0.5, "--threshold", help="high memorization: mem > threshold"),
            budget_sizes: Optional[str] = typer.Option(None, "--budget-sizes",
                                                       help="reference-model counts, e.g. 1,2,4,8 "
                                                            "(default: powers of 2, then all)"),
            repeats: int = typer.Option(3, "--repeats", help="random reference draws per budget size"),
            budget_targets: int = typer.Option(4, "--budget-targets", help="target models of the budget curve"),
            targets: Optional[int] = typer.Option(None, "--targets",
                                                  help="target models of the tables (default: the run's)"),
            tpr_targets: Optional[int] = typer.Option(None, "--tpr-targets",
                                                      help="target models of the per-sample TPR (default: all)"),
            epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)"),
            bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the CIs"),
            seed: int = typer.Option(0, "--seed", help="seed of the draws and bootstraps")) -> None:
        """Memorization vs vulnerability: FZ scores, per-group tables, shadow-model budget (Choi et al.)."""
        from privaudit.runtime.memorization_stage import MemorizationOptions, run_memorization

        console = Console()
        try:
            opts = MemorizationOptions(attack=attack, fpr=fpr, threshold=threshold, budget_sizes=_sizes(budget_sizes),
                                       repeats=repeats, budget_targets=budget_targets, table_targets=targets,
                                       tpr_targets=tpr_targets, epoch=epoch, n_boot=bootstrap, seed=seed)
            out = run_memorization(run_dir, opts)
        except PrivauditError as err:
            Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
            raise typer.Exit(2)
        console.print(group_table(out.doc))
        console.print(summary_table(out.doc))
        console.print(f"written: {out.paths['json'].parent}/ (memorization.json, *.npy, budget_*.png)")
