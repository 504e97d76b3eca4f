"""Typed results, with one JSON form each (``to_json`` / ``from_json``): what ``metrics.json``
holds, and what the console, the JSON files and the HTML report render (through
:mod:`privaudit.report.format`, so they cannot disagree)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TPR_CONVENTION = {"strict": "TPR at the largest threshold whose FPR <= alpha (no interpolation)",
                  "interp": "TPR linearly interpolated at FPR = alpha"}
BALANCED_ACCURACY = "max over thresholds of 1 - (FPR + FNR) / 2"


@dataclass(frozen=True)
class Estimate:
    """A metric over targets: mean, spread over targets, and a 95% interval when computed.

    ``needs_nonmembers``: set (and ``mean`` None) when the targets' non-members cannot resolve the
    FPR of a TPR: no number, only the non-members per target it would need. ``tied``: the TPR's
    threshold falls inside a block of tied scores on some target (the number is kept, flagged)."""

    mean: float | None
    std: float = 0.0
    lo: float | None = None
    hi: float | None = None
    needs_nonmembers: int | None = None
    tied: bool = False
    widened: bool = False               # the interval was widened to contain the estimate

    @property
    def unresolved(self) -> bool:
        return self.needs_nonmembers is not None

    @classmethod
    def unresolved_at(cls, needs_nonmembers: int) -> "Estimate":
        return cls(None, 0.0, needs_nonmembers=int(needs_nonmembers))

    def to_json(self) -> dict[str, Any]:
        if self.unresolved:
            return {"unresolved": True, "needs_nonmembers": self.needs_nonmembers}
        out: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if self.lo is not None:
            out |= {"lo": self.lo, "hi": self.hi}
        if self.tied:
            out["tied"] = True
        if self.widened:
            out["widened"] = True
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Estimate":
        if d.get("unresolved"):
            return cls.unresolved_at(int(d["needs_nonmembers"]))
        return cls(float(d["mean"]), float(d.get("std", 0.0)), d.get("lo"), d.get("hi"), tied=bool(d.get("tied", False)), widened=bool(d.get("widened", False)))


@dataclass
class AttackMetrics:
    """One attack's metrics: per target, and summarised over targets."""

    name: str
    signal: str
    targets: list[Any]
    params: dict[str, Any]
    per_target: list[dict[str, float]]
    summary: dict[str, Estimate]
    n_nonmembers: int                   # fewest non-members of any target (the FPR resolution)

    def tpr_keys(self) -> list[str]:
        return [k for k in self.summary if k.startswith("tpr@")]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "signal": self.signal, "targets": self.targets, "params": self.params,
                "n_nonmembers_per_target": self.n_nonmembers, "per_target": self.per_target,
                "summary": {k: v.to_json() for k, v in self.summary.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "AttackMetrics":
        return cls(d["name"], d["signal"], list(d["targets"]), dict(d.get("params", {})), list(d["per_target"]),
                   {k: Estimate.from_json(v) for k, v in d["summary"].items()}, int(d["n_nonmembers_per_target"]))


@dataclass(frozen=True)
class Spread:
    """A quantity over the audited models: mean, min and max (all equal for one model)."""

    mean: float
    min: float
    max: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "min": self.min, "max": self.max}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Spread":
        return cls(float(d["mean"]), float(d["min"]), float(d["max"]))


@dataclass(frozen=True)
class Utility:
    """What the audited models are worth: accuracy on their members (train) and non-members
    (test) under the identity query, and the generalisation gap (train - test, per model)."""

    n_models: int
    train: Spread
    test: Spread
    gap: Spread

    def to_json(self) -> dict[str, Any]:
        return {"models": self.n_models, "query": "identity (query 0)", "train_accuracy": self.train.to_json(),
                "test_accuracy": self.test.to_json(), "generalization_gap": self.gap.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Utility":
        return cls(int(d["models"]), Spread.from_json(d["train_accuracy"]), Spread.from_json(d["test_accuracy"]),
                   Spread.from_json(d["generalization_gap"]))


@dataclass
class MetricsDocument:
    """``metrics.json``: every attack scored on one run at one epoch (or on the user's target)."""

    run: str
    epoch: int
    n_models: int
    targets: list[Any]
    protocol: str
    tpr_convention: str
    intervals: str
    attacks: dict[str, AttackMetrics] = field(default_factory=dict)
    model: dict[str, Any] | None = None      # the audited target model, when there is one
    utility: Utility | None = None           # accuracy of the audited models (None in older files)
    notes: list[str] = field(default_factory=list)   # caveats shown with the table

    @property
    def many_targets(self) -> bool:
        return len(self.targets) > 1

    def to_json(self) -> dict[str, Any]:
        out = {"run": self.run, "epoch": self.epoch, "n_models": self.n_models, "targets": self.targets,
               "protocol": self.protocol, "tpr_at_fpr": self.tpr_convention,
               "balanced_accuracy": BALANCED_ACCURACY, "intervals": self.intervals,
               "attacks": {k: a.to_json() for k, a in self.attacks.items()}}
        if self.model is not None:
            out["model"] = self.model
        if self.utility is not None:
            out["utility"] = self.utility.to_json()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "MetricsDocument":
        return cls(d["run"], int(d["epoch"]), int(d["n_models"]), list(d["targets"]), d["protocol"], d["tpr_at_fpr"],
                   d["intervals"], {k: AttackMetrics.from_json(a) for k, a in d["attacks"].items()}, d.get("model"),
                   Utility.from_json(d["utility"]) if d.get("utility") else None, list(d.get("notes", [])))
