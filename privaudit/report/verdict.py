"""The verdict that opens the report: how exposed the audited model is, in words, with a risk level.

The audited model is the user's target model when the run has one, else the training recipe (the
population of models trained with it). The verdict rests on the strongest attack (highest mean TPR)
at the lowest FPR the run resolves (``evaluation.fprs``; an FPR below 1/(non-members per target)
is never used), read from the metrics document, so it cannot disagree with ``metrics.json``.

Risk levels, graded from the ratio ``rho = TPR / FPR`` of that attack at that FPR and from whether
its 95% interval excludes chance (TPR = FPR, what guessing achieves at any FPR):

* ``low``: rho < 2, or the interval includes chance and its upper end is below 2 x FPR;
* ``moderate``: 2 <= rho < 10 and the interval excludes chance;
* ``high``: 10 <= rho < 50 and the interval excludes chance;
* ``severe``: rho >= 50 and the interval excludes chance;
* ``inconclusive``: the interval includes chance but reaches 2 x FPR or more: the run cannot tell a
  low risk from a higher one (more target models or samples narrow the interval).

Why these criteria. Low-FPR TPR is what makes membership inference a privacy harm: an attack that
identifies a few members with near-certainty matters even when its AUC, which averages over all
thresholds, is close to 0.5 (Carlini et al., "Membership Inference Attacks From First Principles",
IEEE S&P 2022, Sec. III). ``rho`` is the attack's likelihood ratio at that threshold: a flagged
sample is rho times more likely to be a member than a non-member (with equal priors, the flag is
right with probability rho / (1 + rho)). It also reads as privacy loss: (eps, delta)-DP bounds
TPR <= e^eps FPR + delta, so rho corresponds to eps = ln(rho) at that operating point (0.7, 2.3 and
3.9 at the thresholds 2, 10 and 50) -- a point estimate, not a certified bound (``privaudit audit``
certifies one). A level above ``low`` is given only when the interval excludes chance, so noise
from few target models is never graded as leakage, and a wide interval is called inconclusive
rather than low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from privaudit.evaluation.results import Estimate, MetricsDocument, Utility
from privaudit.report import format as fmt

LEVELS = ((50.0, "severe"), (10.0, "high"), (2.0, "moderate"))   # rho thresholds, highest first
LOW_BELOW = 2.0
CRITERIA = (
    "Graded on the strongest attack at the lowest FPR the run resolves, from ρ = TPR / FPR: how many times "
    "more likely a flagged sample is a member than a non-member. (ε, δ)-DP bounds TPR ≤ e^ε · FPR + δ, so ρ "
    "matches ε = ln ρ at that operating point (a point estimate, not a certified bound).",
    "low: ρ < 2 (ε below 0.7), or the 95% interval includes chance (TPR = FPR) and stays below 2 × FPR.",
    "moderate: 2 ≤ ρ < 10 (ε 0.7 to 2.3) and the interval excludes chance.",
    "high: 10 ≤ ρ < 50 (ε 2.3 to 3.9) and the interval excludes chance.",
    "severe: ρ ≥ 50 (ε above 3.9) and the interval excludes chance.",
    "inconclusive: the interval includes chance but reaches 2 × FPR or more; more target models "
    "(evaluation.targets) or samples narrow it.",
    "Why TPR at a low FPR and not AUC: an attack that identifies a few members with near-certainty is a "
    "privacy harm even at an AUC close to 0.5 (Carlini et al., IEEE S&P 2022, Sec. III).",
)


@dataclass(frozen=True)
class OperatingPoint:
    """The strongest attack of a metrics document at its lowest resolvable FPR."""

    attack: str
    key: str            # the metric, e.g. "tpr@0.001"
    fpr: float
    tpr: Estimate
    auc: Estimate | None
    n_attacks: int


@dataclass(frozen=True)
class Risk:
    level: str                     # low | moderate | high | severe | inconclusive
    ratio: float                   # mean TPR / FPR
    excludes_chance: bool | None   # None: no interval was computed
    reason: str


@dataclass
class Verdict:
    """What the verdict section shows (rendered by the ``verdict`` template macro)."""

    subject: str
    level: str
    sentence: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    criteria: tuple[str, ...] = CRITERIA


def strongest(doc: MetricsDocument) -> OperatingPoint | None:
    """The attack with the highest mean TPR at the lowest FPR that some attack resolves (AUC breaks
    ties); None when no FPR is resolved."""
    keys = sorted({k for a in doc.attacks.values() for k in a.tpr_keys()}, key=lambda k: float(k[4:]))
    for key in keys:
        resolved = {n: a for n, a in doc.attacks.items() if key in a.summary and not a.summary[key].unresolved}
        if resolved:
            auc = lambda a: a.summary["auc"].mean if "auc" in a.summary else 0.0
            name = max(resolved, key=lambda n: (resolved[n].summary[key].mean, auc(resolved[n])))
            a = resolved[name]
            return OperatingPoint(name, key, float(key[4:]), a.summary[key], a.summary.get("auc"), len(resolved))
    return None


def grade(tpr: Estimate, fpr: float) -> Risk:
    """The risk level of TPR ``tpr`` at ``fpr`` (the module docstring gives the criteria)."""
    ratio = tpr.mean / fpr
    if tpr.lo is None:
        return Risk(_by_ratio(ratio), ratio, None, f"TPR is {ratio:.1f}× the FPR (no interval computed)")
    if tpr.lo > fpr:
        return Risk(_by_ratio(ratio), ratio, True, f"TPR is {ratio:.1f}× the FPR and its 95% interval excludes "
                                                   f"chance (TPR = FPR)")
    top = tpr.hi / fpr
    if top < LOW_BELOW:
        return Risk("low", ratio, False, f"not distinguishable from chance; the 95% interval rules out more "
                                         f"than {top:.1f}× the FPR")
    return Risk("inconclusive", ratio, False, f"not distinguishable from chance, but the 95% interval reaches "
                                              f"{top:.1f}× the FPR: more target models or samples are needed")


def _by_ratio(ratio: float) -> str:
    return next((level for bound, level in LEVELS if ratio >= bound), "low")


def _count(x: float) -> str:
    """A count per base in plain words: one decimal below 10, thousands separators above."""
    if x < 9.95:
        return f"{x:.1f}".removesuffix(".0")
    return f"{round(x):,}"


def attacker_sentence(op: OperatingPoint) -> str:
    """``An attacker who accepts 1 false alarm per 1,000 non-members identifies N of every 1,000
    training samples`` (the interval clipped to what a rate can be, [0, 1])."""
    base = max(1000, 10 ** math.ceil(math.log10(1.0 / op.fpr) - 1e-9))
    alarms = op.fpr * base
    text = (f"An attacker who accepts {_count(alarms)} false alarm{'s' if alarms != 1 else ''} per {base:,} "
            f"non-members identifies {_count(op.tpr.mean * base)} of every {base:,} training samples")
    if op.tpr.lo is not None:
        clip = lambda v: min(max(v, 0.0), 1.0) * base
        text += f" (95% interval {_count(clip(op.tpr.lo))} to {_count(clip(op.tpr.hi))})"
    return text + f"; guessing identifies {_count(alarms)}."


def audited_samples(samples: dict[str, Any]) -> str:
    """``all 600 samples``, ``the 40 canaries``, ``the 20 noise canaries``, ``the 8 poisoning targets``."""
    n, selection = samples["n_samples"], samples["selection"]
    if selection == "all":
        return f"all {n:,} samples"
    if selection == "poison_targets":
        return f"the {n:,} poisoning targets"
    return f"the {n:,} canaries" if selection == "canaries" else f"the {n:,} {selection} canaries"


def dp_text(audit: dict[str, Any] | None, claim: dict[str, Any] | None) -> str | None:
    """The DP audit's primary ε lower bound next to the claimed ε (or the claim alone)."""
    if audit is not None and audit.get("primary_bound") in audit.get("bounds", {}):
        b = audit["bounds"][audit["primary_bound"]]
        text = (f"ε ≥ {b['eps_lb']:.3f} at {b['confidence']:.0%} confidence ({b.get('name', audit['primary_bound'])}, "
                f"{audit['attack']} on {audited_samples(audit['samples'])})")
        if audit.get("claimed_epsilon") is None:
            return text + "; the models make no DP claim"
        status = ("the claim is REFUTED" if b.get("violates_claim")
                  else "consistent with the claim (an audit can refute a claim, never prove it)")
        return f"{text} vs claimed ε = {audit['claimed_epsilon']:.3f} (δ = {audit['delta']:g}): {status}"
    if audit is not None:
        return str(audit["verdict"])
    if claim is not None:
        return (f"claimed ε = {claim['epsilon']:.3f} (δ = {claim['delta']:g}, {claim.get('accountant', '')}); not "
                f"audited: `privaudit audit RUN_DIR --samples canaries` bounds it from below")
    return None


def utility_text(u: Utility) -> str:
    many = u.n_models > 1
    where = f" (mean over {u.n_models} models)" if many else ""
    return (f"train accuracy {100 * u.train.mean:.1f}%, test accuracy {100 * u.test.mean:.1f}%, "
            f"gap {100 * u.gap.mean:.1f} points{where}")


def verdict(subject: str, doc: MetricsDocument, *, audit: dict[str, Any] | None = None,
            claim: dict[str, Any] | None = None, recipe: MetricsDocument | None = None) -> Verdict:
    """The verdict on ``subject`` from its metrics ``doc``; ``recipe``: the population's metrics
    when ``doc`` is a target model's (one line on the training recipe)."""
    op = strongest(doc)
    if op is None:
        n = min(a.n_nonmembers for a in doc.attacks.values())
        return Verdict(subject, "inconclusive", f"No configured FPR can be resolved with {n} non-members per "
                                                f"target; add an FPR of at least 1/{n} to evaluation.fprs.")
    risk = grade(op.tpr, op.fpr)
    cell = fmt.estimate_text(op.tpr, True, doc.many_targets)
    facts = [("strongest attack", f"{op.attack} (of {op.n_attacks} attacks): TPR {cell} % at FPR {op.fpr * 100:g}% "
                                  f"({risk.ratio:.1f}× chance)"
                                  + ("" if op.auc is None else f"; AUC {fmt.estimate_text(op.auc, False, doc.many_targets)}")),
             ("risk", f"{risk.level}: {risk.reason}")]
    if (dp := dp_text(audit, claim)) is not None:
        facts.append(("differential privacy", dp))
    if doc.utility is not None:
        facts.append(("utility", utility_text(doc.utility)))
    if recipe is not None and (rop := strongest(recipe)) is not None:
        facts.append(("training recipe", f"the {recipe.n_models} population models: {rop.attack} TPR "
                      f"{fmt.estimate_text(rop.tpr, True, recipe.many_targets)} % at FPR {rop.fpr * 100:g}% "
                      f"({grade(rop.tpr, rop.fpr).level})"))
    attrs = {"data-attack": op.attack, "data-metric": op.key, "data-tpr": repr(op.tpr.mean),
             "data-level": risk.level, "data-epoch": str(doc.epoch)}
    return Verdict(subject, risk.level, attacker_sentence(op), facts, attrs)
