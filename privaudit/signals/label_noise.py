"""Label-only distance to the decision boundary under Gaussian noise (the random-noise estimate of
the boundary distance in Choquette-Choo, Tramer, Carlini, Papernot, "Label-Only Membership
Inference Attacks", ICML 2021, Sec. "Decision Boundary Distance").

For one model f and a sample (x, y), with D fixed noise draws ``z_1..z_D ~ N(0, I)``:

    ``wrong(sigma) = (1/D) #{k : argmax f(x + sigma * scale * z_k) != y}``
    ``distance     = smallest sigma in [0, sigma_max] with wrong(sigma) > 1/2``

found by bisection over sigma (``steps`` halvings: resolution ``sigma_max / 2^steps``), reading
predicted labels only. A sample misclassified without noise has distance 0 (as in the paper); a
sample still right at ``sigma_max`` gets ``sigma_max`` (censored). ``scale`` is the pool's input
std (one number), so sigma is in units of the data's spread. The draws are common random numbers:
the same ``z_k`` at every sigma and for every model, and they depend only on
``(seed, sample id, draw index)``, so a sample's distance does not depend on its batch, on the
batch size or on which models are grouped together. ``wrong`` need not be monotone in sigma;
bisection returns one crossing of 1/2 (the first when it is).

Cost per model and sample: ``D * (steps + 1) + 1`` forward passes, label outputs only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: Defaults of the signal; recorded with every array as its settings.
SIGMA_MAX = 32.0
DRAWS = 16
STEPS = 12
CHUNK_ELEMENTS = 1 << 18      # samples x draws x input entries per forward chunk (independent of K)


def settings(seed: int, sigma_max: float = SIGMA_MAX, draws: int = DRAWS, steps: int = STEPS) -> dict[str, Any]:
    """What determines the signal besides the model and the pool (recorded with it)."""
    return {"seed": int(seed), "sigma_max": float(sigma_max), "draws": int(draws), "steps": int(steps),
            "flip": "majority of draws misclassified", "unit": "pool input std"}


def input_scale(x: np.ndarray) -> float:
    """The pool's input std (one number): the unit of sigma."""
    return float(np.std(np.asarray(x), dtype=np.float64)) or 1.0


def noise(seed: int, sample_ids: np.ndarray, draws: int, shape: tuple[int, ...]) -> np.ndarray:
    """``float32 [b, draws, *shape]`` standard normal, sample i's draws from its own stream
    ``(seed, id)``: draw k is the same whatever ``b``, the batch or ``draws >= k + 1``."""
    out = np.empty((len(sample_ids), draws, *shape), dtype=np.float32)
    for j, i in enumerate(sample_ids):                     # one generator per sample (cheap)
        out[j] = np.random.default_rng([int(seed), int(i)]).standard_normal((draws, *shape), dtype=np.float32)
    return out


def _labels_of(forward_each: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Predicted labels ``[K, B]`` of inputs ``[K, B, ...]``: the only thing read from the model."""
    return forward_each(x).argmax(dim=-1)


def _wrong_majority(forward_each, xb: torch.Tensor, z: torch.Tensor, y: torch.Tensor,
                    sigma: torch.Tensor) -> torch.Tensor:
    """``bool [K, b]``: more than half of the D noisy copies ``x + sigma z`` are misclassified."""
    k, (b, d) = sigma.shape[0], z.shape[:2]
    extra = (1,) * (xb.dim() - 1)
    noisy = xb[None, :, None] + sigma.view(k, b, 1, *extra) * z[None]          # [K, b, D, ...]
    pred = _labels_of(forward_each, noisy.reshape(k, b * d, *xb.shape[1:])).view(k, b, d)
    return (pred != y[None, :, None]).float().mean(dim=-1) > 0.5


def _bisect(forward_each, xb, z, y, n_models: int, sigma_max: float, steps: int) -> torch.Tensor:
    """Distances ``[K, b]`` of one chunk (module docstring)."""
    b = xb.shape[0]
    clean = _labels_of(forward_each, xb[None].expand(n_models, *xb.shape)) == y[None]
    lo = torch.zeros(n_models, b, dtype=z.dtype, device=z.device)
    hi = torch.full_like(lo, sigma_max)
    flips = _wrong_majority(forward_each, xb, z, y, hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        wrong = _wrong_majority(forward_each, xb, z, y, mid)
        hi, lo = torch.where(wrong, mid, hi), torch.where(wrong, lo, mid)
    dist = torch.where(flips, (lo + hi) / 2, torch.full_like(lo, sigma_max))
    return torch.where(clean, dist, torch.zeros_like(dist))


@torch.no_grad()
def boundary_distance(forward_each: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
                      n_models: int, seed: int, scale: float, sigma_max: float = SIGMA_MAX, draws: int = DRAWS,
                      steps: int = STEPS, sample_ids: np.ndarray | None = None) -> np.ndarray:
    """``float32 [K, n]``: each model's label-only noise distance of each sample (module docstring).

    ``forward_each(x [K, B, ...]) -> [K, B, C]`` (eval mode; only its argmax is read);
    ``x [n, ...]``, ``y [n]`` on the models' device; ``sample_ids`` (default ``arange(n)``): the
    pool rows of x, which seed the draws."""
    ids = np.arange(len(y)) if sample_ids is None else np.asarray(sample_ids)
    per = int(np.prod(x.shape[1:])) * draws
    chunk = max(1, CHUNK_ELEMENTS // max(per, 1))
    out = []
    for lo in range(0, len(y), chunk):                     # loop over chunks of samples
        xb, yb = x[lo:lo + chunk], y[lo:lo + chunk]
        z = torch.from_numpy(noise(seed, ids[lo:lo + chunk], draws, tuple(x.shape[1:]))).to(x.device, x.dtype)
        out.append(_bisect(forward_each, xb, z * scale, yb, n_models, sigma_max, steps).float().cpu())
    return torch.cat(out, dim=1).numpy()


def distances_of(group, x: np.ndarray, y: np.ndarray, cfg_settings: dict[str, Any]) -> np.ndarray:
    """``float32 [K, n, 1]`` for a model group (``forward_each``, ``n_models``) on the pool
    ``x, y`` with :func:`settings` (the identity query only)."""
    group = group.eval().requires_grad_(False)
    device = next(group.parameters(), torch.empty(0)).device
    values = boundary_distance(group.forward_each, torch.from_numpy(np.asarray(x, np.float32)).to(device),
                               torch.from_numpy(np.asarray(y)).to(device), n_models=group.n_models,
                               seed=cfg_settings["seed"], scale=input_scale(x), sigma_max=cfg_settings["sigma_max"],
                               draws=cfg_settings["draws"], steps=cfg_settings["steps"])
    return values[..., None]
