"""Per-slice attack metrics: every metric of the leave-one-model-out protocol restricted to one
class or one user-defined subgroup of the pool.

A slice is a bool mask over the ``n`` pool samples. Within a slice, target model t's members are
the slice samples with ``keep[t]`` True and its non-members the others, so the metrics answer
"how well does the attack separate members from non-members *of this slice*". This is the
per-class ROC of the Song & Mittal 2021 evaluation computed on the slice's samples only (the
loop of the official Curvature-Clues notebooks, DeepakTatachar/Curvature-Clues, scores the full
arrays, so its per-class "AUC" is the global one), and a subgroup view of
the per-example vulnerability of Carlini et al. 2022, Sec. VII-B. The attacks are not refitted:
the scores come from the whole population; only the ROC (hence the thresholds) is per slice.

Slicings are given as ``{name: array}``: a bool ``[n]`` mask is one slice called ``name``; an
integer ``[n]`` array (labels, ``data/group.npy``, ``data/kind.npy``) gives one slice per value,
called ``"name=value"`` (or the value's name from ``names``). Metrics, intervals and target
aggregation are :func:`privaudit.evaluation.protocol.summarize`; each slice also reports the
number of members and non-members per target, so a TPR at FPR ``a`` with ``a * n_neg < 1`` is
visibly resting on zero false positives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from privaudit.errors import SignalError
from privaudit.evaluation.protocol import metric_names, summarize

STATUS = ("ok", "partial", "no members", "no non-members", "empty")


def expand_slices(slices: Mapping[str, np.ndarray], n: int,
                  names: Mapping[str, Mapping[int, str] | Sequence[str]] | None = None
                  ) -> dict[str, dict[str, np.ndarray]]:
    """``{slicing: {slice label: bool[n]}}`` from masks (one slice) and group arrays (one slice
    per distinct value, in sorted order). ``names[slicing][value]`` renames a group value."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for family, arr in slices.items():
        a = np.asarray(arr)
        if a.shape != (n,):
            raise SignalError(f"slice {family!r} has shape {a.shape}, expected ({n},) like the scores")
        if a.dtype == bool:
            out[family] = {family: a}
        elif np.issubdtype(a.dtype, np.integer):
            label = _namer(family, (names or {}).get(family))
            out[family] = {label(v): a == v for v in np.unique(a)}
        else:
            raise SignalError(f"slice {family!r} must be a bool mask or an integer group array, got {a.dtype}")
    return out


def _namer(family: str, names):
    def label(v) -> str:
        v = int(v)
        if isinstance(names, Mapping) and v in names:
            return str(names[v])
        if isinstance(names, Sequence) and not isinstance(names, str) and 0 <= v < len(names):
            return str(names[v])
        return f"{family}={v}"
    return label


def _counts(y: np.ndarray) -> dict[str, float]:
    return {"min": int(y.min()), "mean": float(y.mean()), "max": int(y.max())}


def slice_summary(scores: np.ndarray, keep_targets: np.ndarray, mask: np.ndarray, *,
                  fprs: tuple[float, ...] = (1e-2, 1e-3, 1e-4), mode: str = "strict", n_boot: int = 200,
                  seed: int = 0) -> dict[str, Any]:
    """Metrics of one attack on the samples of one slice.

    scores, keep_targets: ``[T, n]``; mask: bool ``[n]``. Returns ``n`` (slice size),
    ``members`` / ``non_members`` per target (min, mean, max), ``status`` (``ok``; ``partial``:
    some targets have only one membership class in the slice and are left out; ``no members``,
    ``no non-members``, ``empty``: no metric), ``targets_used`` and, when there is a metric,
    ``summary`` (protocol.summarize: metric -> mean, std, lo, hi) and ``estimable`` (tpr@a ->
    ``a * min non-members >= 1``)."""
    scores, keep_targets, mask = np.asarray(scores), np.asarray(keep_targets, dtype=bool), np.asarray(mask, bool)
    if scores.shape != keep_targets.shape or scores.ndim != 2 or mask.shape != scores.shape[1:]:
        raise SignalError(f"scores {scores.shape}, keep_targets {keep_targets.shape} and mask {mask.shape} "
                          "must be [T, n], [T, n] and [n]")
    y = keep_targets[:, mask]
    evaluated = ~np.isnan(scores[:, mask].astype(np.float64))   # NaN: a row not evaluated for that target
    pos, neg = (y & evaluated).sum(axis=1), (~y & evaluated).sum(axis=1)
    out: dict[str, Any] = {"n": int(mask.sum())}
    if not out["n"]:
        return out | {"status": "empty", "targets_used": []}
    out |= {"members": _counts(pos), "non_members": _counts(neg)}
    used = np.flatnonzero((pos > 0) & (neg > 0))
    out["targets_used"] = used.tolist()
    if not used.size:
        return out | {"status": "no members" if not pos.any() else "no non-members"}
    out["status"] = "ok" if used.size == len(y) else "partial"
    _, summary = summarize(scores[used][:, mask], y[used], fprs=fprs, mode=mode, n_boot=n_boot, seed=seed,
                           own_intervals=False)
    out["summary"] = summary
    n_neg = int(neg[used].min())
    out["estimable"] = {f"tpr@{a:g}": bool(a * n_neg >= 1) for a in fprs}
    return out


def slice_tables(results: Mapping[str, Any], keep_targets: np.ndarray, slices: Mapping[str, np.ndarray], *,
                 fprs: tuple[float, ...] = (1e-2, 1e-3, 1e-4), mode: str = "strict", n_boot: int = 200,
                 seed: int = 0, names: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per-slice metrics of every attack (JSON-serialisable).

    results: ``{label: AttackResult}`` (anything with ``.scores [T, n]``) or ``{label: scores}``;
    keep_targets: bool ``[T, n]`` (``keep[targets]``); slices: ``{slicing: bool[n] mask or
    int[n] group array}``. Returns ``{"fprs", "tpr_mode", "metrics", "intervals", "slicings":
    {slicing: {slice label: {"n", "members", "non_members", "attacks": {label: slice_summary}}}}}``
    (slice size and membership counts hoisted out of the per-attack entries)."""
    keep_targets = np.asarray(keep_targets, dtype=bool)
    score_of = {k: np.asarray(getattr(r, "scores", r)) for k, r in results.items()}
    for k, s in score_of.items():
        if s.shape != keep_targets.shape:
            raise SignalError(f"attack {k!r}: scores {s.shape} do not match keep_targets {keep_targets.shape}")
    doc: dict[str, Any] = {
        "fprs": list(fprs), "tpr_mode": mode, "metrics": metric_names(tuple(fprs)),
        "targets": int(keep_targets.shape[0]),
        "intervals": f"95% interval of the mean over targets, as metrics.json: spread between targets plus "
                     f"{n_boot} joint bootstrap resamples of the slice's samples, bias-corrected, t quantile "
                     "(with few targets the t quantile makes it wide: the between-target spread rests on T - 1 "
                     "degrees of freedom)", "slicings": {}}
    for family, masks in expand_slices(slices, keep_targets.shape[1], names).items():
        table: dict[str, Any] = {}
        for label, mask in masks.items():
            per_attack = {k: slice_summary(s, keep_targets, mask, fprs=tuple(fprs), mode=mode, n_boot=n_boot,
                                           seed=seed) for k, s in score_of.items()}
            first = next(iter(per_attack.values()), {"n": int(mask.sum())})
            head = {key: first[key] for key in ("n", "members", "non_members", "status") if key in first}
            table[label] = head | {"attacks": {k: {key: v for key, v in e.items()
                                                   if key not in ("n", "members", "non_members")}
                                               for k, e in per_attack.items()}}
        doc["slicings"][family] = table
    return doc


def standard_slices(labels: np.ndarray, kind: np.ndarray | None = None,
                    group: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The slicings a run always has: ``class`` (labels), ``kind`` (canary kinds, when the pool has
    canaries) and ``group`` (mixture sub-populations, when present); returns ``(slices, names)``
    for :func:`slice_tables`."""
    from privaudit.data.canaries import KINDS

    slices: dict[str, np.ndarray] = {"class": np.asarray(labels)}
    names: dict[str, Any] = {}
    if kind is not None and np.unique(kind).size > 1:
        slices["kind"] = np.asarray(kind)
        names["kind"] = {v: k for k, v in KINDS.items()}
    if group is not None and np.unique(group).size > 1:
        slices["group"] = np.asarray(group)
    return slices, names


def run_slices(results: Mapping[str, Any], keep_targets: np.ndarray, labels: np.ndarray, *,
               kind: np.ndarray | None = None, group: np.ndarray | None = None,
               extra: Mapping[str, np.ndarray] | None = None, **options: Any) -> dict[str, Any]:
    """:func:`slice_tables` over :func:`standard_slices` (plus ``extra`` user slicings): the
    ``slices.json`` document of a run. ``options``: fprs, mode, n_boot, seed."""
    slices, names = standard_slices(labels, kind, group)
    return slice_tables(results, keep_targets, {**slices, **(extra or {})}, names=names, **options)


# -- console rendering ---------------------------------------------------------------------------
def format_cell(entry: dict[str, Any], metric: str) -> str:
    if "summary" not in entry:
        return entry["status"]
    s = entry["summary"][metric]
    pct = metric.startswith("tpr@")
    f = 100.0 if pct else 1.0
    fmt = "{:.2f}" if pct else "{:.3f}"
    if s.get("unresolved"):
        text = f"needs ≥ {s['needs_nonmembers']} non-members"
    else:
        text = fmt.format(s["mean"] * f)
        if "lo" in s:
            text += f" [{fmt.format(s['lo'] * f)}, {fmt.format(s['hi'] * f)}]"
        if s.get("tied"):
            text += " (ties)"
    if pct and not entry["estimable"].get(metric, True):
        text += " †"
    return text + (" *" if entry["status"] == "partial" else "")


def render_slices(doc: dict[str, Any], metric: str = "auc", attacks: Sequence[str] | None = None):
    """A rich Table per slicing: one row per slice (size, members/non-members per target), one
    column per attack with ``metric`` as ``mean [95% CI]`` (TPRs in %)."""
    from rich.table import Table

    tables = []
    for family, rows in doc["slicings"].items():
        names = list(attacks or next(iter(rows.values()), {}).get("attacks", {}))
        unit = "TPR % @ FPR " + f"{float(metric[4:]) * 100:g}%" if metric.startswith("tpr@") else metric
        table = Table(title=f"{unit} per {family} ({doc['targets']} targets)",
                      caption="mean over targets [95% bootstrap CI]; † FPR below 1/non-members: no TPR, needs ≥ "
                              "N non-members; (ties): the threshold falls inside a block of tied scores; "
                              "* some targets left out (one membership class in the slice)")
        for col in ("slice", "n", "members/target", "non-members/target", *names):
            table.add_column(col)
        for label, row in rows.items():
            mem = f"{row['members']['mean']:.0f}" if "members" in row else "0"
            non = f"{row['non_members']['mean']:.0f}" if "non_members" in row else "0"
            table.add_row(label, str(row["n"]), mem, non, *[format_cell(row["attacks"][k], metric) for k in names])
        tables.append(table)
    return tables
