"""Leave-one-model-out evaluation (Carlini et al. 2022, ``plot.py``): each of T target models is
attacked with an attack fitted on the *other* models only — the target's own row never fits the
attack — and every sample of the pool is scored, labelled by ``keep[target]``.

**An attack that fits on the references alone** (``AttackSpec.fit``: Shokri et al.'s attack
classifier, Song & Mittal's class thresholds) is fitted once, on the models that are never
targets, and that one fit scores every target: no target's membership enters it, and T fits
become one (Shokri's 20,000-row classifier took 2.5 s per target). When every model is a target,
each is fitted on the others.

Metrics per target, their mean ± std over targets, and a bootstrap confidence interval of that mean
(samples resampled jointly across targets).

**Known non-members.** An attack that fits on known non-members of the target
(``AttackSpec.needs_public``: QMIA, Bertran et al., NeurIPS 2023) gets them in one of two ways.
Cross-fitted (its ``AttackSpec.crossfit_param``, QMIA's ``folds``, at least 2, the default): all
of the target's non-members are its public set, and every row, member or not, is scored by a
regressor fitted on the public rows of the other folds, so no row is scored by a fit that saw it
and members and non-members are scored alike; every row is evaluated. Otherwise (``folds: 0``) a
seeded random half of the non-members is the public set (:func:`public_split`), fitted in-sample,
and the other half and all the members are what it is evaluated on.

**Rows not evaluated: a NaN score** (the public half of a fit without cross-fitting). The protocol sets the public rows' scores to NaN
(:func:`exclude`), and NaN is the one mechanism by which a row leaves a target's evaluation: every
metric, TPR resolution, tie check, non-member count and bootstrap replicate of that target
ignores it (it counts neither as a member nor as a non-member), and the saved scores keep the NaN,
so every later reader sees the same exclusion. A user's own target model is split the same way
(its own stream of the seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from privaudit.attacks.registry import AttackSpec, fit_attack, run_attack
from privaudit.errors import SignalError
from privaudit.evaluation import intervals, metrics
from privaudit.evaluation.results import AttackMetrics, Estimate


#: The scoring protocol's version, part of every saved scores file's fingerprint: scores saved
#: under another version are recomputed (2026-11-30: reference-only fits once on the never-target
#: models; QMIA cross-fitted on all of a target's non-members).
PROTOCOL = 2

@dataclass
class AttackResult:
    name: str
    signal: str
    targets: list[int]
    scores: np.ndarray                    # float[T, n], higher = member
    per_target: list[dict[str, Any]]      # metric -> value, and "intervals": metric -> [lo, hi] (95%)
    summary: dict[str, dict[str, Any]]    # metric -> {mean, std, lo, hi[, tied, widened]} or {unresolved, needs_nonmembers}
    params: dict[str, Any] = field(default_factory=dict)
    n_nonmembers: int = 0                 # fewest non-members of any target

    def metrics(self) -> AttackMetrics:
        """The typed, JSON-ready metrics (everything but the scores)."""
        return AttackMetrics(self.name, self.signal, list(self.targets), dict(self.params), self.per_target,
                             {k: Estimate.from_json(v) for k, v in self.summary.items()}, self.n_nonmembers)

    def to_dict(self) -> dict[str, Any]:
        return self.metrics().to_json()


def public_split(members: np.ndarray, seed: int, target: int | None = None) -> np.ndarray:
    """``bool[n]``: the public set of one target, ``floor(N / 2)`` of its N non-members drawn at
    random from the stream ``(seed, target)`` (``target=None``: a user's own model, its own
    stream). It depends only on the seed, the target and its membership row."""
    members = np.asarray(members, dtype=bool)
    out = np.flatnonzero(~members)
    stream = [int(seed) % (1 << 63), 0, int(target)] if target is not None else [int(seed) % (1 << 63), 1]
    chosen = np.random.default_rng(stream).choice(out, size=out.size // 2, replace=False)
    public = np.zeros(members.shape, dtype=bool)
    public[chosen] = True
    return public


def exclude(score: np.ndarray, public: np.ndarray | None) -> np.ndarray:
    """``score`` with the rows ``public`` set to NaN: not evaluated for this target."""
    return score if public is None else np.where(public, np.nan, score)


def _attack_target(spec: AttackSpec, target_signal: np.ndarray, ref_signal: np.ndarray, ref_keep: np.ndarray,
                   members: np.ndarray, labels: np.ndarray, context: dict[str, Any], stream: int | None,
                   params: dict[str, Any]) -> np.ndarray:
    """One target's scores ``float[n]``, with the context its attack reads (the pool's features, a
    public set split off ``members``' non-members) and the public rows excluded (NaN)."""
    public = crossfit = None
    if spec.needs_public:
        crossfit = spec.crossfit_param is not None and int({**spec.defaults, **params}[spec.crossfit_param]) >= 2
        public = ~np.asarray(members, dtype=bool) if crossfit else public_split(members, context.get("public_seed", 0),
                                                                                 stream)
    score = run_attack(spec, target_signal, ref_signal, ref_keep, labels, features=context.get("features"),
                       public=public, **params)
    return score if crossfit else exclude(score, public)


def _checked(spec: AttackSpec, score: np.ndarray, n: int) -> np.ndarray:
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (n,) or np.isnan(score).any():
        raise SignalError(f"attack {spec.name!r} returned shape {score.shape} or NaN scores, expected ({n},)")
    return score


def score_targets(spec: AttackSpec, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray,
                  targets: list[int], *, context: dict[str, Any] | None = None, **params: Any) -> np.ndarray:
    """Scores ``float[T, n]``: target t attacked with references = every other model.
    ``context``: ``features`` (the pool's inputs, for attacks that ``needs_features``) and
    ``public_seed`` (the seed of :func:`public_split`, for attacks that ``needs_public``; their
    public rows come back NaN)."""
    if signal.shape[:2] != keep.shape:
        raise SignalError(f"signal {signal.shape} does not match keep {keep.shape} on [models, samples]")
    others = np.setdiff1d(np.arange(len(keep)), targets)
    if spec.fit is not None and not spec.needs_public and others.size >= 2:
        fitted = fit_attack(spec, signal[others], keep[others], labels, **params)
        return np.stack([_checked(spec, fitted.score(signal[t], labels), len(labels)) for t in targets])
    out = []
    for t in targets:
        ref = np.delete(np.arange(len(keep)), t)
        out.append(_attack_target(spec, signal[t], signal[ref], keep[ref], keep[t], labels, context or {}, t, params))
    return np.stack(out)


def evaluated(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One target's membership and scores restricted to its evaluated rows (score not NaN)."""
    ok = ~np.isnan(score)
    return np.asarray(y_true, dtype=bool)[ok], score[ok]


def nonmembers(scores: np.ndarray, keep_targets: np.ndarray) -> int:
    """The fewest evaluated non-members of any target."""
    return int((~np.asarray(keep_targets, dtype=bool) & ~np.isnan(scores)).sum(axis=1).min())


def metric_names(fprs: tuple[float, ...]) -> list[str]:
    return ["auc", "balanced_accuracy"] + [f"tpr@{a:g}" for a in fprs]


def summarize(scores: np.ndarray, keep_targets: np.ndarray, *, fprs: tuple[float, ...], mode: str = "strict",
              n_boot: int = 200, seed: int = 0, level: float = 0.95,
              own_intervals: bool = True) -> tuple[list[dict], dict]:
    """Per-target metrics and, per metric, mean, std over targets and a 95% interval of the mean:
    the spread between targets plus the noise of the shared samples (their columns resampled
    jointly for all targets, every threshold re-estimated), bias-corrected, with a t quantile
    (:mod:`privaudit.evaluation.intervals`, which says why). The interval always contains the mean;
    when it had to be widened to do so it is marked ``"widened": True``. Each target's entry
    carries its own 95% intervals (``"intervals": {metric: [lo, hi]}``) of AUC, balanced accuracy
    and TPR (:func:`intervals.metric_intervals`); ``own_intervals=False`` skips them (slices and
    groups report the mean over targets only).

    Resolution: a TPR at FPR alpha that some target's non-members cannot resolve
    (``alpha * n_neg < 1``) gets no number, only ``{"unresolved": True, "needs_nonmembers":
    ceil(1 / alpha)}``. A TPR whose threshold falls inside a block of tied scores on some target
    (:func:`metrics.tie_at_fpr`) keeps its number and is marked ``"tied": True``. NaN scores are
    rows not evaluated for that target (module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = [evaluated(keep_targets[i], scores[i]) for i in range(len(scores))]
    heads = [metrics.headline(y, s, fprs, mode) for y, s in rows]
    per_target = [h[0] for h in heads]
    names = metric_names(fprs)
    n_neg = nonmembers(scores, keep_targets)
    unresolved = {f"tpr@{a:g}" for a in fprs if not metrics.fpr_resolvable(a, n_neg)}
    summary: dict[str, dict[str, Any]] = {}
    for m in names:
        if m in unresolved:
            summary[m] = {"unresolved": True, "needs_nonmembers": metrics.nonmembers_needed(float(m[4:]))}
            continue
        summary[m] = {"mean": float(np.mean([p[m] for p in per_target])),
                      "std": float(np.std([p[m] for p in per_target]))}
        if any(m in h[1] for h in heads):
            summary[m]["tied"] = True
    if n_boot:
        live = [m for m in names if m not in unresolved]
        fns = [metrics._fast_metric(partial(metrics.tpr_at_fpr, alpha=float(m[4:]), mode=mode)
                                    if m.startswith("tpr@") else m) for m in live]
        own: dict[str, list[tuple[float, float]]] = {}
        cis = intervals.metric_intervals(live, fns, [[p[m] for p in per_target] for m in live],
                                         keep_targets, scores, n_boot=n_boot, seed=seed, level=level,
                                         per_target_out=own if own_intervals else None)
        for m, (lo, hi, widened) in cis.items():
            summary[m]["lo"], summary[m]["hi"] = lo, hi
            if widened:
                summary[m]["widened"] = True
        for t, p in enumerate(per_target if own_intervals else ()):
            p["intervals"] = {m: [lo_hi[t][0], lo_hi[t][1]] for m, lo_hi in own.items()}
    return per_target, summary


def result_from_scores(name: str, signal: str, scores: np.ndarray, keep_targets: np.ndarray, targets: list[Any], *,
                       fprs: tuple[float, ...], mode: str = "strict", n_boot: int = 200, seed: int = 0,
                       params: dict[str, Any] | None = None) -> AttackResult:
    """Metrics of scores ``[T, n]`` already computed (``keep_targets``: the targets' membership)."""
    per_target, summary = summarize(scores, keep_targets, fprs=fprs, mode=mode, n_boot=n_boot, seed=seed)
    return AttackResult(name, signal, list(targets), scores, per_target, summary, dict(params or {}),
                        nonmembers(scores, keep_targets))


def evaluate_attack(spec: AttackSpec, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray,
                    targets: list[int], *, fprs: tuple[float, ...], mode: str = "strict", n_boot: int = 200,
                    seed: int = 0, name: str | None = None, context: dict[str, Any] | None = None,
                    **params: Any) -> AttackResult:
    scores = score_targets(spec, signal, keep, labels, targets, context=context, **params)
    per_target, summary = summarize(scores, keep[targets], fprs=fprs, mode=mode, n_boot=n_boot, seed=seed)
    return AttackResult(name or spec.name, spec.signal, list(targets), scores, per_target, summary, params,
                        nonmembers(scores, keep[targets]))


def evaluate_given_target(spec: AttackSpec, target_signal: np.ndarray, ref_signal: np.ndarray,
                          ref_keep: np.ndarray, members: np.ndarray, labels: np.ndarray, *,
                          fprs: tuple[float, ...], mode: str = "strict", n_boot: int = 200, seed: int = 0,
                          name: str | None = None, context: dict[str, Any] | None = None,
                          **params: Any) -> AttackResult:
    """One model from outside the population (a user's trained target, ``members: bool[n]`` its
    training rows), attacked with every population model as a reference. ``targets`` is empty.
    ``context`` as in :func:`score_targets` (the public set is split off the target's own
    non-members, its rows NaN)."""
    if members.shape != (target_signal.shape[0],):
        raise SignalError(f"members {members.shape} does not match the target signal {target_signal.shape}")
    scores = _attack_target(spec, target_signal, ref_signal, ref_keep, members, labels, context or {}, None,
                            params)[None]
    per_target, summary = summarize(scores, members[None], fprs=fprs, mode=mode, n_boot=n_boot, seed=seed)
    return AttackResult(name or spec.name, spec.signal, [], scores, per_target, summary, params,
                        nonmembers(scores, members[None]))


SignalSource = Callable[[str], np.ndarray]
