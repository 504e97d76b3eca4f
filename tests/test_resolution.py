"""Honest numbers: no TPR at an FPR the non-members cannot resolve, and a TPR whose threshold falls
inside a block of tied scores is flagged, not passed off as a plain 0."""

from __future__ import annotations

import numpy as np
import pytest

from privaudit.evaluation import metrics
from privaudit.evaluation.protocol import AttackResult, summarize
from privaudit.evaluation.results import AttackMetrics, Estimate, MetricsDocument
from privaudit.report import format as fmt

T, N = 3, 1800          # 900 non-members per target: 1e-2 resolvable, 1e-3 and 1e-4 not


def _population(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    keep = np.zeros((T, n), dtype=bool)
    for t in range(T):
        keep[t, rng.permutation(n)[: n // 2]] = True
    scores = rng.normal(size=(T, n)) + 1.5 * keep
    return keep, scores


def _tied_population(seed: int = 1, n: int = N):
    """63 distinct score values, ~5% of samples tied at the top (members and non-members alike)."""
    keep, _ = _population(seed, n)
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 62, size=(T, n)) + keep * rng.integers(0, 2, size=(T, n))
    levels = np.minimum(levels, 61)
    top = rng.random((T, n)) < 0.054
    scores = np.where(top, 62, levels).astype(float)
    return keep, scores


def _doc(summary: dict, n_neg: int, n_targets: int = T) -> MetricsDocument:
    a = AttackResult("a", "logits", list(range(n_targets)), np.zeros((n_targets, 1)), [], summary,
                     n_nonmembers=n_neg).metrics()
    return MetricsDocument("run", 1, 8, list(range(n_targets)), "lomo", "strict", "bootstrap", {"a": a})


def test_resolvable_rule():
    assert metrics.fpr_resolvable(1e-2, 100) and not metrics.fpr_resolvable(1e-2, 99)
    assert metrics.fpr_resolvable(1e-3, 1000) and not metrics.fpr_resolvable(1e-3, 884)
    assert metrics.nonmembers_needed(1e-2) == 100
    assert metrics.nonmembers_needed(1e-3) == 1000
    assert metrics.nonmembers_needed(1e-4) == 10000
    assert metrics.nonmembers_needed(3e-3) == 334


def test_unresolvable_fpr_has_no_number():
    keep, scores = _population()
    _, summary = summarize(scores, keep, fprs=(1e-2, 1e-3, 1e-4), n_boot=20)
    assert summary["tpr@0.001"] == {"unresolved": True, "needs_nonmembers": 1000}
    assert summary["tpr@0.0001"] == {"unresolved": True, "needs_nonmembers": 10000}
    assert "mean" in summary["tpr@0.01"] and "unresolved" not in summary["tpr@0.01"]
    e = Estimate.from_json(summary["tpr@0.001"])
    assert e.unresolved and e.mean is None and e.needs_nonmembers == 1000
    assert Estimate.from_json(e.to_json()) == e


def test_unresolved_when_the_fewest_nonmembers_do_not_resolve():
    keep, scores = _population(n=2200)
    keep[0, :] = np.arange(2200) < 1250          # target 0: 950 non-members
    _, summary = summarize(scores, keep, fprs=(1e-3,), n_boot=0)
    assert summary["tpr@0.001"] == {"unresolved": True, "needs_nonmembers": 1000}


def test_resolvable_fpr_matches_tpr_at_fpr():
    keep, scores = _population()
    per_target, summary = summarize(scores, keep, fprs=(1e-2,), n_boot=20)
    expect = [metrics.tpr_at_fpr(keep[t], scores[t], 1e-2) for t in range(T)]
    assert [p["tpr@0.01"] for p in per_target] == expect
    assert summary["tpr@0.01"]["mean"] == pytest.approx(np.mean(expect))
    assert summary["tpr@0.01"]["std"] == pytest.approx(np.std(expect))
    assert summary["tpr@0.01"]["lo"] <= summary["tpr@0.01"]["hi"]
    assert "tied" not in summary["tpr@0.01"]
    assert not any(metrics.tie_at_fpr(keep[t], scores[t], 1e-2) for t in range(T))


def test_tie_at_fpr_small_cases():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)       # 10 non-members
    s = np.array([5, 5, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4], float)   # two non-members tied at the top
    assert metrics.tie_at_fpr(y, s, 0.1)                            # 1 FP allowed, the top block has 2
    assert metrics.tpr_at_fpr(y, s, 0.1) == 0.0
    assert not metrics.tie_at_fpr(y, s, 0.2)                        # 2 allowed: the block fits
    assert not metrics.tie_at_fpr(y, s, 0.1, mode="interp")
    u = np.arange(12, dtype=float)[::-1]                            # no ties at all
    assert not any(metrics.tie_at_fpr(y, u, a) for a in (0.1, 0.2, 0.5))


def test_tied_block_is_flagged_and_number_kept():
    keep, scores = _tied_population()
    assert all(np.unique(scores[t]).size == 63 for t in range(T))
    assert all(metrics.tie_at_fpr(keep[t], scores[t], 1e-2) for t in range(T))
    per_target, summary = summarize(scores, keep, fprs=(1e-2,), n_boot=20)
    entry = summary["tpr@0.01"]
    assert entry["tied"] is True
    assert entry["mean"] == pytest.approx(np.mean([metrics.tpr_at_fpr(keep[t], scores[t], 1e-2) for t in range(T)]))
    assert entry["mean"] == 0.0                                      # the honest strict TPR: nothing above the block
    e = Estimate.from_json(entry)
    assert e.tied and Estimate.from_json(e.to_json()) == e


def test_format_renders_needs_and_ties():
    keep, scores = _population()
    _, s1 = summarize(scores, keep, fprs=(1e-2, 1e-3), n_boot=0)
    tk, ts = _tied_population()
    _, s2 = summarize(ts, tk, fprs=(1e-2, 1e-3), n_boot=0)
    n_neg = int((~keep).sum(axis=1).min())
    doc = _doc(s1, n_neg)
    doc.attacks["t"] = AttackResult("t", "logits", list(range(T)), np.zeros((T, 1)), [], s2,
                                    n_nonmembers=int((~tk).sum(axis=1).min())).metrics()
    assert [h for _, h in fmt.columns(doc)][2:] == ["TPR % @ FPR 1%", "TPR % @ FPR 0.1%"]
    plain, tied = fmt.row(doc, doc.attacks["a"]), fmt.row(doc, doc.attacks["t"])
    assert plain[3] == tied[3] == "needs ≥ 1000 non-members"
    assert tied[2] == "0.00 ± 0.00 (ties)"
    assert "(ties)" not in plain[2] and "†" not in "".join(plain + tied)
    cap = fmt.caption(doc)
    assert "needs ≥ N non-members" in cap and fmt.TIES_NOTE in cap and "†" not in cap
    assert doc.to_json()["attacks"]["a"]["summary"]["tpr@0.001"] == {"unresolved": True, "needs_nonmembers": 1000}
    assert MetricsDocument.from_json(doc.to_json()).attacks["t"].summary["tpr@0.01"].tied


def test_resolvable_untied_renders_as_before():
    e = Estimate(0.1234, 0.0056, 0.1, 0.15)
    assert fmt.estimate_text(e, True) == "12.34 ± 0.56 [10.00, 15.00]"
    assert fmt.estimate_text(e, True, spread=False) == "12.34 [10.00, 15.00]"
    assert fmt.estimate_text(Estimate(0.6), False) == "0.600 ± 0.000"
    keep, scores = _population()
    _, summary = summarize(scores, keep, fprs=(1e-2,), n_boot=0)
    doc = _doc(summary, int((~keep).sum(axis=1).min()))
    cells = fmt.row(doc, doc.attacks["a"])
    assert cells[2] == f"{summary['tpr@0.01']['mean'] * 100:.2f} ± {summary['tpr@0.01']['std'] * 100:.2f}"
    cap = fmt.caption(doc)
    assert "needs" not in cap and "ties" not in cap
    assert Estimate.from_json(e.to_json()) == e and "tied" not in e.to_json()
