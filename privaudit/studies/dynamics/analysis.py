"""The whole dynamics analysis on arrays: every metric of :mod:`.plane`, :mod:`.difficulty` and
:mod:`.early` bundled in a :class:`DynamicsReport`, its JSON document, and what it finds about the
run (Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of Membership Privacy in Deep
Learning", arXiv:2507.23291, 2025, ask two questions in their abstract: does learning difficulty
go with vulnerability, and is the final vulnerability decided early? :func:`findings` answers
both for the run, with the decision rule it used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from privaudit.errors import SignalError
from privaudit.studies.dynamics.difficulty import (difficulty_vulnerability_correlation, first_learned_epoch,
                                                   forgetting_events, mean_training_loss)
from privaudit.studies.dynamics.early import (early_prediction_curve, final_vulnerability, hv_identification,
                                              split_half)
from privaudit.studies.dynamics.plane import (HIGHLY_VULNERABLE, _check_epochs, center_of_mass, com_displacement,
                                              entropy_change, entry_probability, first_entry, mean_speed, n_regions,
                                              region_names, region_occupancy, regions, spatial_entropy, speed,
                                              trajectories, transition_counts, transition_matrices,
                                              transition_matrix)

__all__ = ["DynamicsReport", "analyze", "analyze_population", "findings", "DEFINITIONS"]

MIN_HV = 10                 # fewer final highly-vulnerable samples than this: no answer from the HV region
EARLY_FRACTION = 0.5        # "early" = the last checkpoint at or before this fraction of training
EARLY_PRECISION = 0.5       # "largely decided": at least half of the final top set already found
IDENTIFIED_SHARE = 0.7      # reported: first epoch at which 70 % of the final set is already found
SOURCE = "Chen et al. 2025, 'Evaluating the Dynamics of Membership Privacy in Deep Learning' (arXiv:2507.23291)"


def _jsonable(x: Any) -> Any:
    """numpy -> plain Python; non-finite floats -> None (strict JSON has no NaN/inf)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    return x


@dataclass
class DynamicsReport:
    """Everything :func:`analyze` computes. Arrays keep the module's shapes; ``to_dict`` turns
    it into JSON-ready data (per-sample arrays only with ``include_samples=True``; NaN and inf
    become ``None``, so e.g. a never-learned ``first_learned`` reads ``null``).

    ``trajectories`` are the per-sample points of Chen et al.'s FPR-TPR plane; every other field
    is a privaudit metric defined in the docstring of the function that computes it.
    """

    epochs: np.ndarray                     # [P] training epoch of each checkpoint
    fpr: float                             # global FPR of the per-target thresholds
    top_frac: float
    region_params: dict[str, Any]
    region_names: list[str]
    trajectories: np.ndarray               # [P, n, 2] (FPR_i, TPR_i)
    center_of_mass: np.ndarray             # [P, 2]
    com: dict[str, Any]                    # path_length / displacement (+ _pp)
    speed: np.ndarray                      # [P-1, n] per epoch
    speed_per_step: np.ndarray             # [P-1] population mean speed per epoch
    encoding_speed: float                  # overall mean speed per epoch
    regions: np.ndarray                    # [P, n] int, -1 undefined
    occupancy: np.ndarray                  # [P, R]
    transitions: np.ndarray                # [P-1, R, R] row-stochastic (NaN rows = empty)
    transition_counts: np.ndarray          # [P-1, R, R]
    overall_transition: np.ndarray         # [R, R] first -> last checkpoint
    entry_probability: np.ndarray          # [P-1] into the highly vulnerable region
    first_entry_epoch: np.ndarray          # [n] epoch of first entering that region (inf never)
    entropy: np.ndarray                    # [P] nats
    entropy_change: float
    entropy_bins: int
    final_vulnerability: np.ndarray        # [n] TPR - FPR at the last checkpoint
    early_prediction: dict[str, Any]
    early_prediction_hv: dict[str, Any] | None
    difficulty: dict[str, np.ndarray] = field(default_factory=dict)       # name -> [n]
    correlations: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> spearman result

    @property
    def n_samples(self) -> int:
        return int(self.trajectories.shape[1])

    def to_dict(self, *, include_samples: bool = False) -> dict[str, Any]:
        hv = self.regions[-1] == HIGHLY_VULNERABLE if self.region_params.get("grid") is None else None
        d: dict[str, Any] = {
            "method": "each sample a point (FPR_i, TPR_i) on the FPR-TPR plane at every checkpoint, after Chen et "
                      "al. 2025 (arXiv:2507.23291); the metric definitions are privaudit's (see 'definitions')",
            "n_samples": self.n_samples,
            "n_checkpoints": int(self.trajectories.shape[0]),
            "epochs": self.epochs,
            "fpr": self.fpr,
            "top_frac": self.top_frac,
            "region_params": self.region_params,
            "region_names": self.region_names,
            "center_of_mass": self.center_of_mass,
            "com_displacement": self.com,
            "speed_per_step": self.speed_per_step,
            "encoding_speed": self.encoding_speed,
            "occupancy": self.occupancy,
            "transitions": self.transitions,
            "transition_counts": self.transition_counts,
            "overall_transition": self.overall_transition,
            "entry_probability": self.entry_probability,
            "peak_entry_probability": (float(np.nanmax(self.entry_probability))
                                       if np.isfinite(self.entry_probability).any() else None),
            "entropy": self.entropy,
            "entropy_change": self.entropy_change,
            "entropy_bins": self.entropy_bins,
            "n_highly_vulnerable_final": None if hv is None else int(hv.sum()),
            "early_prediction": self.early_prediction,
            "early_prediction_hv": self.early_prediction_hv,
            "correlations": self.correlations,
        }
        if include_samples:
            d["samples"] = {
                "trajectories": self.trajectories,
                "regions": self.regions,
                "speed": self.speed,
                "first_entry_epoch": self.first_entry_epoch,
                "final_vulnerability": self.final_vulnerability,
                "difficulty": self.difficulty,
            }
        return _jsonable(d)


def analyze(scores: np.ndarray, keep_targets: np.ndarray, checkpoints_epochs, *,
            train_loss: np.ndarray | None = None, train_correct: np.ndarray | None = None,
            train_keep: np.ndarray | None = None, fpr: float = 0.01, top_frac: float = 0.1,
            tpr_hi: float = 0.5, fpr_lo: float = 0.1, adv_lo: float = 0.1, grid=None,
            entropy_bins: int = 10, n_boot: int = 200, seed: int = 0, level: float = 0.95,
            train_epochs=None) -> DynamicsReport:
    """Run the whole dynamics analysis and bundle it in a :class:`DynamicsReport`.

    scores: float ``[P, T, n]``; keep_targets: bool ``[T, n]``; checkpoints_epochs: the training
    epoch of each of the P checkpoints (strictly increasing). Speeds are per epoch.
    train_loss: float ``[E, M, n]`` / train_correct: bool ``[E, M, n]``: optional per-epoch
    training signals of M models whose membership is ``train_keep`` (default: ``keep_targets``,
    i.e. the target models themselves, M = T), recorded at training epochs ``train_epochs``
    (default: their index 0..E-1). From them the learning-difficulty measures ``mean_loss``,
    ``first_learned`` (in ``train_epochs`` units) and ``forgetting`` are computed and
    Spearman-correlated with the final vulnerability (intervals at ``level``). The region
    thresholds (``tpr_hi``, ``fpr_lo``, ``adv_lo``, ``grid``) are those of
    :func:`~privaudit.studies.dynamics.plane.regions`; the "highly vulnerable" metrics (entry
    probability, first entry, ``early_prediction_hv``) exist only for the default 3-region scheme.
    """
    traj = trajectories(scores, keep_targets, fpr=fpr)
    p_ = traj.shape[0]
    ep = _check_epochs(checkpoints_epochs, p_, "checkpoints_epochs")
    n_reg = n_regions(grid)
    reg = regions(traj, tpr_hi=tpr_hi, fpr_lo=fpr_lo, adv_lo=adv_lo, grid=grid)
    counts = (np.stack([transition_counts(reg[p], reg[p + 1], n_reg) for p in range(p_ - 1)])
              if p_ > 1 else np.zeros((0, n_reg, n_reg), dtype=np.int64))
    ms = mean_speed(traj, ep)
    fv = final_vulnerability(traj[-1])
    three = grid is None
    ep_curve = early_prediction_curve(traj, top_frac=top_frac, epochs=ep, n_boot=n_boot, seed=seed, level=level)
    ep_hv = None
    if three and (reg[-1] == HIGHLY_VULNERABLE).any():
        ep_hv = early_prediction_curve(traj, top_frac=top_frac, final_mask=reg[-1] == HIGHLY_VULNERABLE,
                                       epochs=ep, n_boot=n_boot, seed=seed, level=level)
    difficulty: dict[str, np.ndarray] = {}
    n = traj.shape[1]
    tk = keep_targets if train_keep is None else train_keep
    if train_loss is not None:
        if np.asarray(train_loss).shape[-1] != n:
            raise SignalError(f"train_loss must have shape [E, M, {n}], got {list(np.shape(train_loss))}")
        difficulty["mean_loss"] = mean_training_loss(train_loss, tk)
    if train_correct is not None:
        if np.asarray(train_correct).shape[-1] != n:
            raise SignalError(f"train_correct must have shape [E, M, {n}], got {list(np.shape(train_correct))}")
        difficulty["first_learned"] = first_learned_epoch(train_correct, tk, epochs=train_epochs)
        difficulty["forgetting"] = forgetting_events(train_correct, tk)
    correlations = {name: difficulty_vulnerability_correlation(d, fv, n_boot=n_boot, seed=seed, level=level)
                    for name, d in difficulty.items()}
    return DynamicsReport(
        epochs=ep, fpr=float(fpr), top_frac=float(top_frac),
        region_params={"tpr_hi": tpr_hi, "fpr_lo": fpr_lo, "adv_lo": adv_lo,
                       "grid": grid if grid is None or isinstance(grid, (int, np.integer))
                       else [np.asarray(g).tolist() for g in grid]},
        region_names=region_names(grid), trajectories=traj,
        center_of_mass=center_of_mass(traj), com=com_displacement(traj),
        speed=speed(traj, ep), speed_per_step=ms["per_step"], encoding_speed=ms["overall"],
        regions=reg, occupancy=region_occupancy(reg, n_reg),
        transitions=transition_matrices(reg, n_reg), transition_counts=counts,
        overall_transition=transition_matrix(reg[0], reg[-1], n_reg),
        entry_probability=entry_probability(reg) if three else np.full(max(p_ - 1, 0), np.nan),
        first_entry_epoch=first_entry(reg, epochs=ep) if three else np.full(n, np.nan),
        entropy=spatial_entropy(traj, entropy_bins), entropy_change=entropy_change(traj, entropy_bins),
        entropy_bins=int(entropy_bins), final_vulnerability=fv,
        early_prediction=ep_curve, early_prediction_hv=ep_hv,
        difficulty=difficulty, correlations=correlations,
    )


def analyze_population(scores: np.ndarray, keep_targets: np.ndarray, epochs, *, train_loss=None,
                       train_correct=None, train_keep=None, fpr: float = 0.01, top_frac: float = 0.1,
                       n_boot: int = 200, seed: int = 0) -> tuple[DynamicsReport, dict[str, Any]]:
    """:func:`analyze` on checkpoints at ``epochs`` (the training signals recorded at the same
    checkpoints), plus the cross-model (split-half) curve, the highly-vulnerable-region
    identification and the :func:`findings`. Returns the report and its JSON document."""
    ep = [int(e) for e in epochs]
    report = analyze(scores, keep_targets, ep, train_loss=train_loss, train_correct=train_correct,
                     train_keep=train_keep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed,
                     train_epochs=ep if train_correct is not None else None)
    cross = split_half(scores, keep_targets, ep, fpr=fpr, top_frac=top_frac, n_boot=n_boot, seed=seed)
    hv = hv_identification(report.regions, ep)
    doc = report.to_dict()
    doc["early_prediction_cross_model"] = _jsonable(cross)
    doc["early_identification_hv"] = _jsonable(hv)
    doc["findings"] = _jsonable(findings(report, cross, hv))
    doc["definitions"] = DEFINITIONS
    return report, doc


# --------------------------------------------------------------------------------------------
# what the analysis finds about the run
# --------------------------------------------------------------------------------------------

HARDER = {"mean_loss": "with a higher mean training loss", "first_learned": "learned later in training",
          "forgetting": "forgotten more often during training"}


def _early_index(epochs) -> int:
    ep = np.asarray(epochs, dtype=float)
    early = np.flatnonzero(ep <= EARLY_FRACTION * ep[-1])
    return int(early[-1]) if early.size else 0


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def findings(report: DynamicsReport, cross: dict[str, Any] | None = None,
             hv: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Answers, for this run, to the two questions Chen et al. 2025 raise in their abstract, each
    with the measure, its 95% interval, the answer and the rule that gave it:

    * per difficulty measure: are the samples that are harder to learn more vulnerable at the
      end? ``yes`` when the bootstrap interval of Spearman's rho (difficulty, final TPR_i - FPR_i)
      lies above 0;
    * is the final most vulnerable set identifiable early (at the last checkpoint at or before
      half of training)? From the top-k overlap (``yes`` when at least half is found and the
      interval's lower end beats chance) and, with the default regions, from the share of the
      final highly-vulnerable region already in it.
    """
    out = []
    for name, c in report.correlations.items():
        lo, hi, rho = c["lo"], c["hi"], c["rho"]
        if not _finite(rho, lo, hi):
            answer = "undetermined" + (f" ({c['note']})" if c.get("note") else "")
        elif lo > 0:
            answer = "yes"
        elif hi < 0:
            answer = "no: the opposite (harder samples are less vulnerable)"
        else:
            answer = "not shown (the interval of rho contains 0)"
        out.append({"question": f"are samples {HARDER.get(name, f'harder by {name}')} more vulnerable at the end "
                                f"of training?",
                    "measure": f"Spearman(difficulty={name}, final TPR_i - FPR_i)", "value": rho,
                    "ci": [lo, hi], "n": c["n"], "answer": answer,
                    "rule": "yes when the 95% bootstrap interval of rho lies above 0 (harder = more vulnerable)",
                    "source": f"{SOURCE}, abstract: learning difficulty correlates with vulnerability"})
    ep = report.early_prediction
    i = _early_index(report.epochs)
    prec, lo = ep["precision"][i], ep["precision_lo"][i]
    if not _finite(prec, lo):
        answer = "undetermined (no interval: bootstrap off or no samples)"
    elif lo > ep["chance"] and prec >= EARLY_PRECISION:
        answer = "yes"
    elif lo > ep["chance"]:
        answer = f"partly (above chance, below {EARLY_PRECISION:.0%})"
    else:
        answer = "no (not above chance)"
    reach = [e for e, p in zip(report.epochs, ep["precision"]) if p is not None and p >= IDENTIFIED_SHARE]
    entry = {"question": f"are the {ep['k']} samples most vulnerable at the end already among the most vulnerable "
                         f"at epoch {int(report.epochs[i])} of {int(report.epochs[-1])}?",
             "measure": f"share of the final top-{ep['k']} in the top-{ep['k']} at epoch {int(report.epochs[i])} "
                        f"(chance {ep['chance']:.3f})",
             "value": prec, "ci": [lo, ep["precision_hi"][i]], "n": ep["n"], "answer": answer,
             f"first_epoch_share_ge_{IDENTIFIED_SHARE:g}": int(reach[0]) if reach else None,
             "rule": f"'early' = the last checkpoint <= {EARLY_FRACTION:.0%} of training; yes when the share is >= "
                     f"{EARLY_PRECISION} and its 95% interval's lower end is above chance (same target models)",
             "source": f"{SOURCE}, abstract: the risk of the most vulnerable samples is largely determined early"}
    if cross and cross.get("available"):
        entry["cross_model_share"] = cross["precision"][i]
        entry["cross_model_ceiling"] = cross["precision"][-1]
    out.append(entry)
    if hv is not None:
        out.append(_hv_finding(hv, report.epochs, i))
    return out


def _hv_finding(hv: dict[str, Any], epochs, i: int) -> dict[str, Any]:
    question = (f"are the samples in the highly vulnerable region at the end already in it at epoch {int(epochs[i])} "
                f"of {int(epochs[-1])}?")
    rule = (f"'early' = the last checkpoint <= {EARLY_FRACTION:.0%} of training; yes when the share is >= "
            f"{EARLY_PRECISION} and its 95% Clopper-Pearson lower end is above chance (= share of all samples in "
            "the region then)")
    source = f"{SOURCE}, abstract: the risk of the most vulnerable samples is largely determined early"
    if not hv.get("available") or hv["n_final"] < MIN_HV:
        return {"question": question, "measure": f"share of the final highly-vulnerable set ({hv['n_final']} samples "
                                                 f"at the end; an answer needs >= {MIN_HV})",
                "value": hv["recall"][i] if hv.get("available") else None,
                "ci": [hv["recall_lo"][i], hv["recall_hi"][i]] if hv.get("available") else [None, None],
                "n": hv["n_final"], "answer": "undetermined (too few highly vulnerable samples)", "rule": rule,
                "source": source}
    rec, lo, chance = hv["recall"][i], hv["recall_lo"][i], hv["chance"][i]
    answer = ("yes" if lo > chance and rec >= EARLY_PRECISION else
              f"partly (above chance, below {EARLY_PRECISION:.0%})" if lo > chance else "no (not above chance)")
    reach = [e for e, r in zip(epochs, hv["recall"]) if r >= IDENTIFIED_SHARE]
    return {"question": question, "measure": f"share of the {hv['n_final']} final highly-vulnerable samples already "
                                             f"in that region at epoch {int(epochs[i])} (chance {chance:.3f})",
            "value": rec, "ci": [lo, hv["recall_hi"][i]], "n": hv["n_final"], "answer": answer,
            f"first_epoch_share_ge_{IDENTIFIED_SHARE:g}": int(reach[0]) if reach else None, "rule": rule,
            "source": source}


DEFINITIONS = {
    "provenance": "the questions are those of Chen et al. 2025 (arXiv:2507.23291, abstract); every definition "
                  "below is privaudit's",
    "trajectory": "per checkpoint and target model a global threshold at the fixed FPR on that target's OUT "
                  "scores; TPR_i = fraction of targets with i IN and flagged, FPR_i = same over OUT targets",
    "vulnerability": "TPR_i - FPR_i (per-sample membership advantage)",
    "regions": "highly_vulnerable: TPR >= 0.5 and FPR <= 0.1; leaky: TPR - FPR >= 0.1; safe: the rest",
    "com_displacement": "straight-line distance between the first and last population centroid on the "
                        "[0,1]^2 plane (x100 = percentage points); path_length sums the steps",
    "encoding_speed": "mean over samples and steps of ||delta (FPR_i, TPR_i)|| per epoch",
    "entropy": "Shannon entropy (nats) of the 10x10 histogram of the population on the plane; change = last - first",
    "peak_entry_probability": "max over steps of P(enter highly_vulnerable | not in it at the previous checkpoint)",
    "early_identification_hv": "share of the final highly_vulnerable samples already in that region at each "
                               "checkpoint (recall) and its precision, 95% Clopper-Pearson intervals",
    "early_prediction": "top-k (k = top_frac * n) of TPR_i - FPR_i at each checkpoint vs the final top-k: precision "
                        "(= recall), expected overlap under random tie-breaking; Spearman vs final; 95% bootstrap CIs",
    "difficulty": "from the checkpoint logits of the models that trained on the sample (un-augmented query): mean "
                  "training loss over checkpoints, first-learned epoch (correct from then on; inf = never), "
                  "forgetting events (correct -> wrong between consecutive checkpoints)",
    "correlations": "Spearman's rho (scipy) of each difficulty measure with the final vulnerability, two-sided "
                    "p-value, 95% percentile bootstrap interval over samples",
}
