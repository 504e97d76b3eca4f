"""The console table of attack metrics: mean ± std over targets with the bootstrap interval."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _cell(stat: dict[str, float], percent: bool, spread: bool = True) -> str:
    f = 100.0 if percent else 1.0
    text = f"{stat['mean'] * f:.2f}" if percent else f"{stat['mean']:.3f}"
    if spread:
        text += f" ± {stat['std'] * f:.2f}" if percent else f" ± {stat['std']:.3f}"
    if "lo" in stat:
        text += f" [{stat['lo'] * f:.2f}, {stat['hi'] * f:.2f}]" if percent else f" [{stat['lo']:.3f}, {stat['hi']:.3f}]"
    return text


def metrics_table(document: dict[str, Any], title: str | None = None) -> Table:
    """One row per attack: AUC, balanced accuracy, TPR at each FPR (in %)."""
    attacks = document["attacks"]
    first = next(iter(attacks.values()))["summary"]
    tprs = [k for k in first if k.startswith("tpr@")]
    n_neg = int(first.get("n_negatives_per_target", {}).get("mean", 0))
    many = len(document["targets"]) > 1   # one model (a user's target): no spread over targets
    table = Table(title=title or f"{document['run']}: {len(document['targets'])} targets, "
                  f"{document['n_models']} models, epoch {document['epoch']}",
                  caption=f"{'mean ± std over targets' if many else 'value'} [95% bootstrap CI]; TPR is "
                          f"{document['tpr_at_fpr']}; {n_neg} non-members{' per target' if many else ''}; "
                          f"† FPR < 1/{n_neg}: rests on zero false positives")
    table.add_column("attack")
    table.add_column("AUC")
    table.add_column("bal. acc")
    for k in tprs:
        table.add_column(f"TPR % @ FPR {float(k[4:]) * 100:g}%")
    for name, res in attacks.items():
        s = res["summary"]
        table.add_row(name, _cell(s["auc"], False, many), _cell(s["balanced_accuracy"], False, many),
                      *[_cell(s[k], True, many) + (" †" if float(k[4:]) * n_neg < 1 else "") for k in tprs])
    return table
