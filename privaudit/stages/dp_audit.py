"""The DP audit stage: turn an attack's scores into lower bounds on epsilon and set them next to the
run's claimed (eps, delta) (Nasr, Song, Thakurta, Papernot, Carlini, "Adversary Instantiation: Lower
Bounds for Differentially Private Machine Learning", IEEE S&P 2021; Steinke, Nasr, Jagielski,
"Privacy Auditing with One (1) Training Run", NeurIPS 2023).

Trials: every (target model, audited sample) pair, the sample's score from the attack fitted on the
other models (leave-one-model-out, as in the ``evaluate`` stage), labelled IN/OUT
by ``keep``. Two bounds, each valid at the stated confidence:

* Clopper–Pearson (Nasr et al. 2021) on the IN and OUT scores pooled over the target models, with a
  valid threshold choice (Bonferroni over candidate thresholds, a split, or an explicit value).
* The one-run audit (Steinke et al. 2023) of each target model on its own samples, with the guess
  counts ``k_pos``/``k_neg`` fixed from the options before any score is seen, at significance
  ``alpha / T`` per target so that the maximum over the T targets holds at ``1 - alpha``.

The verdict rests on the Clopper–Pearson bound (the primary test); the one-run bound is reported
beside it as a separate test. Caveat (stated in the output): Clopper–Pearson treats the pooled trials as independent; several
audited samples share one model, which the one-run analysis accounts for and the pooled one does not.

Writes ``results/epoch_EEEE/audit.json`` (and ``results/audit.json`` for the final epoch).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from privaudit.config import AttackConfig, RunConfig
from privaudit.data.canaries import KINDS
from privaudit.errors import ConfigError
from privaudit.evaluation import metrics
from privaudit.evaluation.audit import eps_lower_bound, eps_one_run
from privaudit.runtime import plan
from privaudit.runtime.run import Layout, Run

SELECTIONS = ("all", "canaries", "poison_targets", *[k for k in KINDS if k != "ordinary"])
TRIALS_NOTE = ("trials = (target model, sample) pairs; Clopper-Pearson treats the pooled trials as "
               "independent although samples share models; the one-run audit (Steinke et al. 2023) is "
               "valid for many samples in one model")


def dp_claim(run: Run, cfg: RunConfig, epoch: int | None = None) -> dict[str, Any] | None:
    """The run's claimed ``(eps, delta)`` after ``epoch`` epochs (``None`` without DP): the one
    training recorded for the final epoch, else recomputed with the same accountant."""
    from privaudit.training.dp import dp_report
    from privaudit.training.trainer import steps_per_epoch

    dp = cfg.training.dp
    if dp is None:
        return None
    epoch = epoch or cfg.training.epochs
    if epoch == cfg.training.epochs and run.has(Layout.dp_claim):
        return run.load_json(Layout.dp_claim)
    keep = run.training_keep()
    steps = steps_per_epoch(keep, cfg.training.batch_size) * epoch
    return dp_report(dp, keep, cfg.training.batch_size, steps) | {"epoch": epoch}


def select_samples(run: Run, selection: str) -> np.ndarray:
    """Indices of the audited samples: ``all``, ``canaries`` (every kind), one canary kind, or the
    Truth Serum ``poison_targets``."""
    n = run.n_audit()
    if selection == "all":
        return np.arange(n)
    if selection == "poison_targets":
        targets = run.optional_pool("poison_targets")
        if targets is None:
            raise ConfigError(f"{run.root} has no poison targets (the config has no 'poison' section)")
        return np.asarray(targets, dtype=np.int64)
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown sample selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    kind = run.optional_pool("kind")
    kind = np.zeros(n, np.int8) if kind is None else kind[:n]
    idx = np.flatnonzero(kind != 0) if selection == "canaries" else np.flatnonzero(kind == KINDS[selection])
    if idx.size == 0:
        raise ConfigError(f"{run.root} has no {selection} canaries (add them in the config's 'canaries' section)")
    return idx


def _bound_dict(bound, claimed: float | None) -> dict[str, Any]:
    d = asdict(bound)
    d["violates_claim"] = None if claimed is None else bool(bound.eps_lb > claimed)
    return d


def one_run_guesses(m: int, k_pos: int | None, k_neg: int | None) -> tuple[int, int]:
    """The one-run audit's guess counts: the options, else 10% of the m samples each side (a rule
    that depends on m only, fixed before any score is seen)."""
    default = max(1, m // 10)
    kp, kn = default if k_pos is None else int(k_pos), default if k_neg is None else int(k_neg)
    if kp < 0 or kn < 0 or not 1 <= kp + kn <= m:
        raise ConfigError(f"one-run guesses k_pos={kp}, k_neg={kn} must be >= 0 with 1 <= k_pos + k_neg <= {m}")
    return kp, kn


def parse_threshold(value: str | float) -> str | float:
    if isinstance(value, (int, float)) or value in ("bonferroni", "split"):
        return value
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"--threshold must be 'bonferroni', 'split' or a number, got {value!r}") from None


def audit(run: Run, cfg: RunConfig, *, attack: str = "lira_online", alpha: float = 0.05, delta: float | None = None,
          threshold: str | float = "bonferroni", samples: str = "all", targets: int | None = None,
          k_pos: int | None = None, k_neg: int | None = None, two_sided: bool = True, epoch: int | None = None,
          seed: int = 0, save: bool = True) -> dict[str, Any]:
    """Audit the run: eps lower bounds from ``attack``'s scores on ``samples`` of ``targets`` models."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha must lie in (0, 1), got {alpha}")
    epoch = epoch or cfg.training.epochs
    if epoch not in plan.signal_epochs(cfg):
        raise ConfigError(f"epoch {epoch} has no signals; choose one of {plan.signal_epochs(cfg)}")
    n_targets = targets or cfg.evaluation.targets
    if not 1 <= n_targets <= cfg.population.n_models:
        raise ConfigError(f"--targets must lie in 1..{cfg.population.n_models}, got {n_targets}")
    attack_cfg = next((a for a in cfg.attacks if a.key == attack), None) or AttackConfig(name=attack)
    claim = dp_claim(run, cfg, epoch)
    claimed = None if claim is None else float(claim["epsilon"])
    delta = float(claim["delta"] if claim is not None else 1e-5) if delta is None else float(delta)
    idx = select_samples(run, samples)
    scores = run.scores(attack_cfg, epoch, n_targets)[:, idx]
    member = run.keep()[:n_targets][:, idx]
    if member.all() or not member.any():
        raise ConfigError(f"the {samples} samples are never both IN and OUT of the target models")
    cp = eps_lower_bound(scores[member], scores[~member], delta=delta, alpha=alpha,
                         threshold=parse_threshold(threshold), two_sided=two_sided, seed=seed)
    kp, kn = one_run_guesses(idx.size, k_pos, k_neg)
    runs = [eps_one_run(scores[t], member[t], k_pos=kp, k_neg=kn, delta=delta, p_target=alpha / n_targets)
            for t in range(n_targets)]
    best = max(range(n_targets), key=lambda t: runs[t].eps_lb)
    one_run = _bound_dict(runs[best], claimed)
    one_run.update(confidence=1.0 - alpha, target=best, per_target_eps=[r.eps_lb for r in runs],
                   per_target_confidence=runs[best].confidence,
                   selection=f"max over {n_targets} targets, each at p = alpha/{n_targets} (Bonferroni)")
    y, s = member.ravel(), scores.ravel()
    doc = {"run": cfg.name, "epoch": epoch, "attack": attack, "alpha": alpha, "delta": delta,
           "samples": {"selection": samples, "n_samples": int(idx.size), "n_targets": n_targets,
                       "n_in": int(member.sum()), "n_out": int((~member).sum())},
           "claimed": claim, "claimed_epsilon": claimed,
           "bounds": {"clopper_pearson": _bound_dict(cp, claimed), "one_run": one_run},
           "attack_metrics_pooled": {"auc": metrics.auc(y, s), "tpr@0.001": metrics.tpr_at_fpr(y, s, 1e-3),
                                     "tpr@0.01": metrics.tpr_at_fpr(y, s, 1e-2)},
           "note": TRIALS_NOTE}
    doc["verdict"] = verdict(doc)
    if save:
        run.save_json(Layout.epoch_audit(epoch), doc)
        if epoch == cfg.training.epochs:
            run.save_json(Layout.audit, doc)
    return doc


def verdict(doc: dict[str, Any]) -> str:
    """The primary test is the pooled Clopper-Pearson bound; the one-run bound is a separate test at
    the same level (requiring either one to refute would be a test at twice the level)."""
    claimed, conf = doc["claimed_epsilon"], f"{1 - doc['alpha']:.0%}"
    cp, one = doc["bounds"]["clopper_pearson"], doc["bounds"]["one_run"]
    if claimed is None:
        return f"no DP claim; the data refute (eps, {doc['delta']:g})-DP for eps < {cp['eps_lb']:.3f} at {conf} confidence"
    if cp["violates_claim"]:
        return (f"CLAIM REFUTED: eps lower bound {cp['eps_lb']:.3f} > claimed eps {claimed:.3f} "
                f"at {conf} confidence (Clopper-Pearson)")
    extra = f"; the one-run bound {one['eps_lb']:.3f} exceeds it (a separate test)" if one["violates_claim"] else ""
    return f"consistent with the claim: eps lower bound {cp['eps_lb']:.3f} <= claimed eps {claimed:.3f}{extra}"
