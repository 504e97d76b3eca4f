"""Coverage of the 95% intervals of ``summarize`` (privaudit.evaluation.intervals) on a grid of
simulated audits with a known truth, and (``--old``) the interval used before on the calibration
setting.

Data model (one scenario = T targets, n samples, strength mu, target spread TAU, noise SIGMA):
T targets score the same n samples; sample i has a difficulty d_i ~ N(0, 1) shared by every
target; target t has an effect mu_t = mu + TAU * u_t, u_t ~ N(0, 1); score = d_i + mu_t * member +
SIGMA * noise, membership a balanced random half per target. With v = 1 + SIGMA^2, target t's
population metrics are AUC = Phi(mu_t / sqrt(2 v)), TPR@a = Phi(mu_t / sqrt(v) - z_{1-a}),
balanced accuracy (max) = Phi(mu_t / (2 sqrt(v))). The truth of T > 1 targets is their expectation
over u (the targets are a sample of models; Gauss-Hermite quadrature); the truth of T = 1 (an
own-model audit) is that model's own population metric (mu_t as drawn): one model carries no
information about the spread between models. The closed forms are checked against a large Monte
Carlo (``truth_check``: 20 models x 500k samples per strength, printed as ``truth_mc``).

Scenarios: ``calibration`` is the setting the method (the balanced-accuracy bias factor included)
was developed on, 8 targets x 400 samples, mu = 1 (AUC ~0.69); the held-out grid is T in {1, 4,
16} x n in {200, 1000} x AUC ~{0.55, 0.7, 0.9}, TPR at 5% and 1% FPR (both resolved by n/2 >= 100
non-members), plus two n = 4000 scenarios where 2000 non-members also resolve 0.1% FPR.

    nice python benchmarks/coverage.py [--reps 200] [--n-boot 200] [--jobs 2] [--grid full|calibration|quick] [--only REGEX] [--old]

Prints JSON: per scenario, per metric: coverage (fraction of runs whose interval contains the
truth), its Monte-Carlo standard error, mean width, the fraction of intervals ``widened`` to
contain their estimate, and the fraction containing the estimate (always 1 for the new method).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privaudit.evaluation import metrics  # noqa: E402
from privaudit.evaluation.protocol import summarize  # noqa: E402

MU, TAU, SIGMA = 1.0, 0.15, 1.0
FPRS = (0.05, 0.01)


@dataclass(frozen=True)
class Scenario:
    name: str
    T: int
    n: int
    mu: float = MU
    tau: float = TAU
    sigma: float = SIGMA
    fprs: tuple[float, ...] = field(default=FPRS)


def mu_for_auc(auc: float, sigma: float = SIGMA) -> float:
    """The effect mu whose population AUC is ``auc``: AUC = Phi(mu / sqrt(2 (1 + sigma^2)))."""
    return float(np.sqrt(2.0 * (1.0 + sigma ** 2)) * stats.norm.ppf(auc))


def resolved_fprs(n: int, candidates=(0.05, 0.01, 0.001)) -> tuple[float, ...]:
    return tuple(a for a in candidates if metrics.fpr_resolvable(a, n // 2))


def grid(kind: str = "full") -> list[Scenario]:
    cal = Scenario("calibration T8 n400 auc0.69", 8, 400)
    if kind == "calibration":
        return [cal]
    out = [cal]
    Ts, ns, aucs = ((1, 4, 16), (200, 1000), (0.55, 0.7, 0.9)) if kind == "full" else ((1, 16), (200,), (0.7,))
    for T in Ts:
        for n in ns:
            for a in aucs:
                out.append(Scenario(f"T{T} n{n} auc{a:g}", T, n, mu_for_auc(a), fprs=resolved_fprs(n)))
    if kind == "full":
        for T, a in ((1, 0.7), (4, 0.9)):
            out.append(Scenario(f"T{T} n4000 auc{a:g}", T, 4000, mu_for_auc(a), fprs=resolved_fprs(4000)))
    return out


def _unit_metrics(m: np.ndarray, sigma: float, fprs) -> dict[str, np.ndarray]:
    """Population metrics of targets with effects ``m`` (array)."""
    sv = np.sqrt(1.0 + sigma ** 2)
    out = {"auc": stats.norm.cdf(m / (np.sqrt(2) * sv)), "balanced_accuracy": stats.norm.cdf(m / (2 * sv))}
    for a in fprs:
        out[f"tpr@{a:g}"] = stats.norm.cdf(m / sv - stats.norm.ppf(1 - a))
    return out


def truth(mu: float = MU, tau: float = TAU, sigma: float = SIGMA, fprs=FPRS) -> dict[str, float]:
    """Expected population metrics over the target effect mu_t = mu + tau u (quadrature)."""
    x, w = np.polynomial.hermite_e.hermegauss(64)
    w = w / w.sum()
    return {k: float(w @ v) for k, v in _unit_metrics(mu + tau * x, sigma, fprs).items()}


def truth_check(sc: Scenario, models: int = 20, n: int = 500_000, seed: int = 7) -> dict[str, float]:
    """Monte-Carlo truth: the mean over ``models`` simulated targets (effects drawn as in the data
    model, each with its own large sample pool) of the empirical metrics; compared with
    :func:`truth` at the same drawn effects, it checks the closed forms."""
    rng = np.random.default_rng(seed)
    eff = sc.mu + sc.tau * rng.normal(size=models)
    acc: dict[str, list[float]] = {}
    for e in eff:
        keep = rng.random(n) < 0.5
        s = rng.normal(size=n) + e * keep + sc.sigma * rng.normal(size=n)
        for k, v in metrics.summary(keep, s, fprs=sc.fprs).items():
            if k in ("auc", "balanced_accuracy") or k.startswith("tpr@"):
                acc.setdefault(k, []).append(v)
    closed = {k: float(np.mean(v)) for k, v in _unit_metrics(eff, sc.sigma, sc.fprs).items()}
    return {k: {"mc": float(np.mean(v)), "closed_form_same_models": closed[k]} for k, v in acc.items()}


def simulate(seed: int, T: int, n: int, mu: float = MU, tau: float = TAU, sigma: float = SIGMA):
    """One audit: ``(keep bool[T, n], scores float[T, n], effects float[T])``."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n)
    eff = mu + tau * rng.normal(size=T)
    keep = np.zeros((T, n), dtype=bool)
    for t in range(T):
        keep[t, rng.permutation(n)[: n // 2]] = True
    scores = d[None] + eff[:, None] * keep + sigma * rng.normal(size=(T, n))
    return keep, scores, eff


def old_summarize(scores, keep, *, fprs, mode="strict", n_boot=200, seed=0, level=0.95):
    """The interval of ``summarize`` before the change (percentile of the per-target stratified means)."""
    out = {}
    tail = (1 - level) / 2
    for m in metrics_names(fprs):
        fn = partial(metrics.tpr_at_fpr, alpha=float(m[4:]), mode=mode) if m.startswith("tpr@") else m
        reps = np.mean([metrics.bootstrap_values(fn, keep[i], scores[i], n_boot=n_boot, seed=seed + i)
                        for i in range(len(scores))], axis=0)
        lo, hi = np.nanquantile(reps, [tail, 1 - tail])
        est = np.mean([metrics.tpr_at_fpr(keep[i], scores[i], float(m[4:]), mode=mode) if m.startswith("tpr@")
                       else getattr(metrics, m)(keep[i], scores[i]) for i in range(len(scores))])
        out[m] = {"mean": float(est), "lo": float(lo), "hi": float(hi)}
    return out


def metrics_names(fprs):
    return ["auc", "balanced_accuracy"] + [f"tpr@{a:g}" for a in fprs]


def run_scenario(sc: Scenario, reps: int, n_boot: int = 200, method: str = "new", seed0: int = 1000) -> dict:
    """Coverage of one scenario over ``reps`` simulated audits (seeds ``seed0 + r``)."""
    pop = truth(sc.mu, sc.tau, sc.sigma, sc.fprs)
    names = list(pop)
    rec = {k: {m: [] for m in names} for k in ("hit", "hit_models", "width", "widened", "inside", "err")}
    t0 = time.perf_counter()
    for r in range(reps):
        keep, scores, eff = simulate(seed0 + r, sc.T, sc.n, sc.mu, sc.tau, sc.sigma)
        these = {k: float(np.mean(v)) for k, v in _unit_metrics(eff, sc.sigma, sc.fprs).items()}
        target = these if sc.T == 1 else pop          # the estimand (module docstring)
        if method == "old":
            summ = old_summarize(scores, keep, fprs=sc.fprs, n_boot=n_boot, seed=r)
        else:
            summ = summarize(scores, keep, fprs=sc.fprs, n_boot=n_boot, seed=r)[1]
        for m in names:
            e = summ[m]
            rec["hit"][m].append(e["lo"] <= target[m] <= e["hi"])
            rec["hit_models"][m].append(e["lo"] <= these[m] <= e["hi"])
            rec["width"][m].append(e["hi"] - e["lo"])
            rec["widened"][m].append(bool(e.get("widened", False)))
            rec["inside"][m].append(e["lo"] <= e["mean"] <= e["hi"])
            rec["err"][m].append(e["mean"] - target[m])
    out = {}
    for m in names:
        c = float(np.mean(rec["hit"][m]))
        out[m] = {"coverage": c, "coverage_se": float(np.sqrt(max(c * (1 - c), 1e-12) / reps)),
                  "coverage_these_models": float(np.mean(rec["hit_models"][m])),
                  "mean_width": float(np.mean(rec["width"][m])),
                  "widened": float(np.mean(rec["widened"][m])),
                  "estimate_inside": float(np.mean(rec["inside"][m])),
                  "bias": float(np.mean(rec["err"][m])), "rmse": float(np.sqrt(np.mean(np.square(rec["err"][m]))))}
    return {"scenario": {**asdict(sc), "fprs": list(sc.fprs)}, "method": method, "reps": reps, "n_boot": n_boot,
            "truth": pop, "truth_is": "this model's metric" if sc.T == 1 else "expected metric over models",
            "metrics": out, "seconds": round(time.perf_counter() - t0, 1)}


def _job(args):
    sc, reps, n_boot, method = args
    return run_scenario(sc, reps, n_boot, method)


def study(reps: int, n_boot: int = 200, kind: str = "full", jobs: int = 1, old: bool = False,
          check_truth: bool = True, only: str = "") -> dict:
    scs = [sc for sc in grid(kind) if not only or re.search(only, sc.name)]
    work = [(sc, reps, n_boot, "new") for sc in scs]
    if old:
        work.insert(1, (scs[0], reps, n_boot, "old"))
    t0 = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            results = list(ex.map(_job, work))
    else:
        results = [_job(w) for w in work]
    doc = {"command": "python benchmarks/coverage.py " + " ".join(sys.argv[1:]), "reps": reps, "n_boot": n_boot,
           "level": 0.95, "results": results}
    if check_truth:
        by_mu = {}
        for sc in scs:
            by_mu.setdefault(round(sc.mu, 6), Scenario("check", 1, 0, sc.mu, fprs=(0.05, 0.01, 0.001)))
        doc["truth_mc"] = {f"mu={k:g}": truth_check(sc) for k, sc in by_mu.items()}
    held = [r for r in results if r["method"] == "new" and not r["scenario"]["name"].startswith("calibration")]
    doc["held_out_summary"] = {m: {"scenarios": len(v), "min": min(v), "max": max(v), "mean": float(np.mean(v))}
                               for m in ("auc", "balanced_accuracy", "tpr@0.05", "tpr@0.01", "tpr@0.001")
                               for v in [[r["metrics"][m]["coverage"] for r in held if m in r["metrics"]]] if v}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--grid", choices=("full", "calibration", "quick"), default="full")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--old", action="store_true", help="also the previous interval on the calibration setting")
    ap.add_argument("--no-truth-check", action="store_true")
    ap.add_argument("--only", default="", help="regular expression: run the scenarios whose name matches")
    a = ap.parse_args()
    print(json.dumps(study(a.reps, a.n_boot, a.grid, a.jobs, a.old, not a.no_truth_check, a.only), indent=1))


if __name__ == "__main__":
    main()
