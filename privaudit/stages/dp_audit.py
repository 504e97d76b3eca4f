"""The DP audit stage: turn an attack's scores into lower bounds on epsilon and set them next to the
run's claimed (eps, delta) (Nasr, Song, Thakurta, Papernot, Carlini, "Adversary Instantiation: Lower
Bounds for Differentially Private Machine Learning", IEEE S&P 2021; Steinke, Nasr, Jagielski,
"Privacy Auditing with One (1) Training Run", NeurIPS 2023).

Trials: the score of an audited sample in a target model from the attack fitted on the other models
(leave-one-model-out, as in the ``evaluate`` stage), labelled IN/OUT by ``keep``. Three bounds, each
with its assumptions stated in the output (``"assumptions"``, ``"valid_for_verdict"``) and, for the
valid ones, its power (``"power_eps"``: the largest eps the design could certify with a perfect attack):

* ``one_run`` (valid): the one-run audit (Steinke et al. 2023) of each target model on its own
  samples, guess counts ``k_pos``/``k_neg`` fixed from the options before any score is seen, at
  ``alpha / T`` per target so the maximum over the T targets holds at ``1 - alpha``. Needs no
  independence between the samples of one model.
* ``clopper_pearson_per_model`` (valid): Clopper–Pearson (Nasr et al. 2021) over ONE trial per target
  model -- the sample ``pick[t]`` drawn per target by ``numpy.random.default_rng([seed, 1])
  .integers(0, m, T)``, a rule fixed before any score is seen -- so the trials come from independently
  trained models.
* ``clopper_pearson`` (pooled, NOT valid for the verdict): Clopper–Pearson over all (target, sample)
  pairs; it assumes the pairs independent, which several samples sharing one model break.

Verdict: the claim is refuted only by a valid bound. Of the two valid ones, the test with the larger
power (a function of the design alone: counts, delta, alpha -- not of the scores) is the primary test
at ``1 - alpha`` (``"verdict_basis"``); the other is reported as a separate test, so the verdict is a
single test at level alpha.

Writes ``results/epoch_EEEE/audit.json`` (and ``results/audit.json`` for the final epoch), with
``primary_bound``: the key of the bound the verdict rests on.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from privaudit.config import AttackConfig, RunConfig
from privaudit.data.canaries import KINDS
from privaudit.errors import ConfigError
from privaudit.evaluation import metrics
from privaudit.errors import SignalError
from privaudit.evaluation.audit import clopper_pearson_power, eps_lower_bound, eps_one_run, one_run_power
from privaudit.runtime import plan
from privaudit.runtime.run import Layout, Run

SELECTIONS = ("all", "canaries", "poison_targets", *[k for k in KINDS if k != "ordinary"])
TRIALS_NOTE = ("trials = (target model, sample) pairs; the pooled Clopper-Pearson bound treats them as "
               "independent although samples share models, so it is reported but not used for the verdict; "
               "the one-run audit (Steinke et al. 2023) is valid for many samples in one model, and the "
               "per-model Clopper-Pearson bound uses one trial per (independently trained) target model")
POOLED_ASSUMPTIONS = ("pooled (assumes independent samples; not valid for several samples per model) "
                      "— not used for the verdict")
NAMES = {"one_run": "one-run (Steinke et al. 2023)",
         "clopper_pearson_per_model": "Clopper-Pearson, one trial per model (Nasr et al. 2021)",
         "clopper_pearson": "Clopper-Pearson, pooled (Nasr et al. 2021)"}


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
        what = "canaries" if selection == "canaries" else f"{selection} canaries"
        raise ConfigError(f"{run.root} has no {what} (add them in the config's 'canaries' section)")
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
    thr = parse_threshold(threshold)
    m = int(idx.size)
    cp = _bound_dict(eps_lower_bound(scores[member], scores[~member], delta=delta, alpha=alpha,
                                     threshold=thr, two_sided=two_sided, seed=seed), claimed)
    cp.update(assumptions=POOLED_ASSUMPTIONS, valid_for_verdict=False, power_eps=None)
    kp, kn = one_run_guesses(m, k_pos, k_neg)
    runs = [eps_one_run(scores[t], member[t], k_pos=kp, k_neg=kn, delta=delta, p_target=alpha / n_targets)
            for t in range(n_targets)]
    best = max(range(n_targets), key=lambda t: runs[t].eps_lb)
    one_run = _bound_dict(runs[best], claimed)
    one_run.update(confidence=1.0 - alpha, target=best, per_target_eps=[r.eps_lb for r in runs],
                   per_target_confidence=runs[best].confidence,
                   selection=f"max over {n_targets} targets, each at p = alpha/{n_targets} (Bonferroni)",
                   assumptions=(f"each audited sample IN or OUT of a model at random by the keep design; "
                                f"k+={kp}, k-={kn} fixed from m={m} before any score; max over {n_targets} "
                                f"targets with Bonferroni (alpha/{n_targets}); no independence between the "
                                f"samples of one model needed"),
                   valid_for_verdict=True,
                   power_eps=one_run_power(m, kp, kn, delta=delta, p_target=alpha / n_targets))
    per_model = _per_model_cp(scores, member, delta=delta, alpha=alpha, threshold=thr, two_sided=two_sided,
                              seed=seed, claimed=claimed)
    y, s = member.ravel(), scores.ravel()
    doc = {"run": cfg.name, "epoch": epoch, "attack": attack, "alpha": alpha, "delta": delta,
           "samples": {"selection": samples, "n_samples": m, "n_targets": n_targets,
                       "n_in": int(member.sum()), "n_out": int((~member).sum())},
           "claimed": claim, "claimed_epsilon": claimed,
           "bounds": {"one_run": one_run, "clopper_pearson_per_model": per_model, "clopper_pearson": cp},
           "attack_metrics_pooled": {"auc": metrics.auc(y, s), "tpr@0.001": metrics.tpr_at_fpr(y, s, 1e-3),
                                     "tpr@0.01": metrics.tpr_at_fpr(y, s, 1e-2)},
           "note": TRIALS_NOTE}
    for key, bound in doc["bounds"].items():
        bound["name"] = NAMES[key]
    doc["primary_bound"] = primary_bound(doc)
    doc["verdict_basis"] = verdict_basis(doc)
    doc["verdict"] = verdict(doc)
    if save:
        run.save_json(Layout.epoch_audit(epoch), doc)
        if epoch == cfg.training.epochs:
            run.save_json(Layout.audit, doc)
    return doc


def _per_model_cp(scores: np.ndarray, member: np.ndarray, *, delta: float, alpha: float, threshold,
                  two_sided: bool, seed: int, claimed: float | None) -> dict[str, Any]:
    """Clopper-Pearson over one trial per target model: target t contributes the sample ``pick[t]``
    drawn by ``default_rng([seed, 1]).integers(0, m, T)`` (fixed before any score is seen)."""
    n_targets, m = member.shape
    pick = np.random.default_rng([seed, 1]).integers(0, m, n_targets)
    rows = np.arange(n_targets)
    y, s = member[rows, pick], scores[rows, pick]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    assumptions = (f"one trial per target model ({n_targets} trials; sample per target drawn by "
                   f"default_rng([seed={seed}, 1]) before any score), independent because the target "
                   f"models are trained independently")
    try:
        d = _bound_dict(eps_lower_bound(s[y], s[~y], delta=delta, alpha=alpha, threshold=threshold,
                                        two_sided=two_sided, seed=seed), claimed)
    except SignalError as e:   # no IN or no OUT trial (or an empty split half): nothing to certify
        d = {"eps_lb": 0.0, "confidence": 1.0 - alpha, "threshold": None,
             "counts": {"tp": 0, "fp": 0, "fn": n_pos, "tn": n_neg, "n_pos": n_pos, "n_neg": n_neg},
             "method": "nasr2021_clopper_pearson", "details": {"selection": "none", "error": str(e)},
             "violates_claim": None if claimed is None else False}
    d.update(samples=[int(i) for i in pick], assumptions=assumptions, valid_for_verdict=True,
             power_eps=clopper_pearson_power(n_pos, n_neg, delta=delta, alpha=alpha, two_sided=two_sided))
    return d


def primary_bound(doc: dict[str, Any]) -> str:
    """The valid bound the verdict rests on: the one with the larger power (set by the design alone,
    not by the scores), the one-run audit on ties."""
    valid = [k for k, b in doc["bounds"].items() if b.get("valid_for_verdict")]
    return max(valid, key=lambda k: (doc["bounds"][k]["power_eps"], k == "one_run"))


def verdict_basis(doc: dict[str, Any]) -> str:
    key = primary_bound(doc)
    b = doc["bounds"][key]
    others = ", ".join(f"{NAMES[k]} power {o['power_eps']:.3f}" for k, o in doc["bounds"].items()
                       if o.get("valid_for_verdict") and k != key)
    return (f"{NAMES[key]} at {1 - doc['alpha']:.0%} confidence: the valid bound with the larger power "
            f"(eps = {b['power_eps']:.3f} with a perfect attack; {others}), chosen from the design before "
            f"any score; assumptions: {b['assumptions']}. The pooled Clopper-Pearson bound is not used "
            f"(it assumes the samples of one model independent)")


def verdict(doc: dict[str, Any]) -> str:
    """Refuted only by a valid bound: the primary one (``verdict_basis``); the other valid bound is a
    separate test at the same level and the pooled bound is shown for comparison only."""
    claimed, conf = doc["claimed_epsilon"], f"{1 - doc['alpha']:.0%}"
    key = primary_bound(doc)
    b = doc["bounds"][key]
    power = f"this design could certify at most eps = {b['power_eps']:.3f} (perfect attack)"
    if claimed is None:
        return (f"no DP claim; the data refute (eps, {doc['delta']:g})-DP for eps < {b['eps_lb']:.3f} at {conf} "
                f"confidence ({NAMES[key]}); {power}")
    if b["violates_claim"]:
        return (f"CLAIM REFUTED: eps lower bound {b['eps_lb']:.3f} > claimed eps {claimed:.3f} at {conf} "
                f"confidence ({NAMES[key]}); {power}")
    extra = ""
    for k, o in doc["bounds"].items():
        if k != key and o["violates_claim"]:
            why = ("a separate test, not the verdict's" if o.get("valid_for_verdict")
                   else "not valid: it assumes independent samples")
            extra += f"; the {NAMES[k]} bound {o['eps_lb']:.3f} exceeds it ({why})"
    cannot = (f" -- below the claimed eps, so this design cannot refute the claim at all"
              if b["power_eps"] <= claimed else "")
    return (f"consistent with the claim: eps lower bound {b['eps_lb']:.3f} <= claimed eps {claimed:.3f} "
            f"({NAMES[key]}){extra}; {power}{cannot}")
