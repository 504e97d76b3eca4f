"""The many-run audit on arrays (Tramèr et al. 2022, "Debugging Differential Privacy").

Setup (every choice made to let the attack reach the mechanism's worst case):

* pool: ``n_pool`` digits rows (flattened to 64 features) that every model trains on, plus one
  extra input feature that is 0 on every pool row;
* canary: one far out-of-distribution row, ``canary_scale`` on the extra feature and 0 elsewhere,
  labelled ``canary_label``; model ``i`` trains on it iff ``i`` is odd (a keep matrix over
  ``[pool rows + canary row]``, all pool rows IN for every model);
* model: logistic regression (``mlp`` with ``hidden=()``), full-batch DP-SGD (Poisson sampling with
  ``q = 1``: batch size = pool + canary), plain SGD at a constant learning rate, ``steps`` steps;
  ``max_grad_norm`` is large (100) so that the canary's gradient (norm about ``canary_scale``) is
  clipped to exactly C, and so that a noise std of ``sigma`` instead of ``sigma * C``
  (``noise_not_scaled``) is visible;
* score: the increase of the canary's logit margin (its label's logit minus the logit of the class
  the initial model ranks highest among the others) from the model's initialisation (the auditor
  knows each model's seed) to the end of training: on the
  extra feature only the canary and the noise move the weights, so IN and OUT differ by the
  clipped canary gradient, as in a Gaussian-mechanism test;
* bound: ``eps_lower_bound`` (Clopper–Pearson, 95 %), threshold chosen on a seeded half of the
  models and the bound computed on the other half (``threshold="split"``).

The claimed eps is the Opacus accountant's (PRV by default) for ``target_epsilon`` at ``q = 1`` and
``steps`` steps; the deliberately broken variants (``DPConfig.bug``) claim the same eps.
"""

from __future__ import annotations

import math
import resource
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch

from privaudit.config import DPConfig
from privaudit.data.datasets import load_dataset
from privaudit.evaluation.audit import clopper_pearson_power, eps_lower_bound
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.training.dp import dp_report, train_group_dp
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import model_seed, steps_per_epoch

PAPER = ("Tramèr, Terzis, Steinke, Song, Jagielski, Carlini, 'Debugging Differential Privacy: "
         "A Case Study for Privacy Auditing', 2022")


@dataclass(frozen=True)
class ManyRunSettings:
    """One audited setting: ``n_models`` models (half with the canary) at the claimed ``epsilon``."""

    epsilon: float = 1.0
    bug: str = "none"                 # none | noise_not_scaled | clip_after_average
    n_models: int = 10_000
    models_per_group: int = 1000
    n_pool: int = 15                  # pool + canary = 16 rows = one full batch
    steps: int = 4
    max_grad_norm: float = 100.0
    canary_scale: float = 1500.0
    canary_label: int = 0
    margin_step: float = 1.5          # lr chosen so the canary moves its margin by about this much
    delta: float = 1e-5
    accountant: str = "prv"
    alpha: float = 0.05
    threshold: str = "split"
    seed: int = 0


def canary_data(s: ManyRunSettings) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``x [n_pool + 1, 65]``, ``y``: the pool (extra feature 0) and the canary last; and n_classes."""
    ds = load_dataset("digits", n=s.n_pool, seed=s.seed)
    pool = torch.as_tensor(np.asarray(ds.x), dtype=torch.float32).reshape(s.n_pool, -1)
    x = torch.zeros(s.n_pool + 1, pool.shape[1] + 1)
    x[:s.n_pool, :-1] = pool
    x[s.n_pool, -1] = s.canary_scale
    y = torch.as_tensor(np.concatenate([np.asarray(ds.y), [s.canary_label]]), dtype=torch.long)
    return x, y, int(ds.n_classes)


def keep_matrix(n_models: int, n_pool: int) -> np.ndarray:
    """``keep [n_models, n_pool + 1]``: every pool row IN, the canary (last) IN iff the model is odd."""
    keep = np.ones((n_models, n_pool + 1), dtype=bool)
    keep[:, -1] = np.arange(n_models) % 2 == 1
    return keep


def _rival(init_logits: torch.Tensor, label: int) -> torch.Tensor:
    """Per model, the class other than ``label`` with the largest initial logit on the canary: the
    canary's clipped gradient moves the weights along ``e_label - e_rival`` (the softmax is one-hot
    at the canary's scale), so the margin against it is the most informative score."""
    masked = init_logits.clone()
    masked[:, label] = -torch.inf
    return masked.argmax(dim=1)


def _margin(logits: torch.Tensor, label: int, rival: torch.Tensor) -> torch.Tensor:
    return logits[:, label] - logits.gather(1, rival[:, None])[:, 0]


def gaussian_ideal_bound(mu: float, n_pos: int, n_neg: int, *, delta: float, alpha: float) -> float:
    """The bound a perfect attack would get on the exact worst case of the correct mechanism with
    these counts: IN scores ``N(mu, 1)``, OUT ``N(0, 1)`` (``mu = sqrt(steps) / sigma``, the canary
    clipped to C every step at ``q = 1``), at the expected counts of the best threshold fixed in
    advance (``eps_lower_bound`` with that threshold). How tight the audit can be at this N."""
    from scipy.stats import norm

    best = 0.0
    for t in np.linspace(-3.0, mu + 6.0, 400):
        tp, fp = int(round(n_pos * norm.sf(t - mu))), int(round(n_neg * norm.sf(t)))
        pos, neg = np.r_[np.ones(tp), np.zeros(n_pos - tp)], np.r_[np.ones(fp), np.zeros(n_neg - fp)]
        best = max(best, eps_lower_bound(pos, neg, delta=delta, alpha=alpha, threshold=0.5).eps_lb)
    return best


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (``getrusage``), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_many(s: ManyRunSettings, on_group: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    """Train the population, score the canary, bound eps; a JSON-ready document."""
    if s.n_models < 4 or s.n_models % 2:
        raise ValueError("n_models must be an even number >= 4")
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x, y, n_classes = canary_data(s)
    keep = keep_matrix(s.n_models, s.n_pool)
    batch = s.n_pool + 1
    steps = steps_per_epoch(keep, batch)
    spec = ArchSpec(kind="mlp", hidden=())
    # margin change per step ~ lr * C * scale / B: choose lr for about `margin_step` over training
    lr = s.margin_step * batch / (s.max_grad_norm * s.canary_scale * s.steps)
    recipe = Recipe(epochs=s.steps, batch_size=batch, optimizer="sgd", lr=lr, momentum=0.0, schedule="constant")
    dp = DPConfig(target_epsilon=s.epsilon, delta=s.delta, max_grad_norm=s.max_grad_norm,
                  accountant=s.accountant, bug=s.bug)
    canary = x[-1:]
    scores = np.empty(s.n_models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # opacus PRV at q = 1: log(0) it handles
        claim = dp_report(dp, keep, batch, s.steps * steps)
        for start in range(0, s.n_models, s.models_per_group):
            ids = list(range(start, min(start + s.models_per_group, s.n_models)))
            tg = time.perf_counter()
            group = train_group_dp(x, y, keep, ids, dp=dp, spec=spec, recipe=recipe, n_classes=n_classes,
                                   root_seed=s.seed, steps=steps)
            with torch.no_grad():
                init = torch.cat([init_model(spec, (x.shape[1],), n_classes, model_seed(s.seed, m))(canary)
                                  for m in ids])
                rival = _rival(init, s.canary_label)
                final = group(canary)[:, 0]
            scores[ids] = (_margin(final, s.canary_label, rival) - _margin(init, s.canary_label, rival)).double().numpy()
            if on_group:
                on_group(ids[-1] + 1, s.n_models, time.perf_counter() - tg)
    if not np.isfinite(scores).all():
        scores = np.nan_to_num(scores, nan=0.0, posinf=1e30, neginf=-1e30)
    member = keep[:, -1]
    bound = eps_lower_bound(scores[member], scores[~member], delta=s.delta, alpha=s.alpha,
                            threshold=s.threshold, seed=s.seed)
    n_bound = bound.counts["n_pos"], bound.counts["n_neg"]
    ceiling = clopper_pearson_power(*n_bound, delta=s.delta, alpha=s.alpha)
    eps_claim = float(claim["epsilon"])
    mu = math.sqrt(s.steps * steps) / float(claim["noise_multiplier"])
    ideal = gaussian_ideal_bound(mu, *n_bound, delta=s.delta, alpha=s.alpha)
    return {"paper": PAPER, "settings": asdict(s), "claimed_epsilon": eps_claim, "delta": s.delta,
            "noise_multiplier": claim["noise_multiplier"], "accountant": claim["accountant"], "bug": s.bug,
            "n_models": s.n_models, "n_in": int(member.sum()), "n_out": int((~member).sum()),
            "eps_lower_bound": bound.eps_lb, "ratio": bound.eps_lb / eps_claim,
            "refuted": bool(bound.eps_lb > eps_claim), "confidence": bound.confidence,
            "threshold": bound.threshold, "counts": bound.counts, "method": bound.method,
            "ceiling": ceiling, "ceiling_note": "largest eps these IN/OUT counts can certify (perfect separation)",
            "gaussian_mu": mu, "ideal_bound": ideal,
            "ideal_note": "expected bound of a perfect attack on the correct mechanism's exact worst case "
                          "(Gaussian shift mu = sqrt(steps)/sigma) with these counts: the tightest this N allows",
            "score_mean_in": float(scores[member].mean()), "score_mean_out": float(scores[~member].mean()),
            "score_std_out": float(scores[~member].std()),
            "lr": lr, "steps": s.steps * steps, "seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib()}
