"""DP-SGD (Abadi et al. 2016, Alg. 1) for K stacked models at once, with ``torch.func``.

One step of model k (Abadi et al. 2016, Alg. 1, lines "Compute gradient", "Clip gradient",
"Add noise", "Descent"; the same step as Opacus' ``DPOptimizer``):

* a batch: Poisson sampling (each of the model's training rows independently with probability
  ``q = B / N_k``; variable sizes are padded with masked-out rows) or a shuffled fixed batch
  (``trainer.epoch_plan``, the non-DP order);
* per-sample gradients ``g_i = grad_theta loss(theta_k; x_i, y_i)`` by
  ``vmap(vmap(grad(loss)))`` over (models, samples) of ``functional_call`` on one base module;
* per-sample clipping of each model's own gradient: ``g_i * min(1, C / ||g_i||)`` with the global
  norm over all parameters of that model for that sample (models never mix);
* ``g = (sum_i clip(g_i) + N(0, sigma^2 C^2 I)) / B`` (B the *expected* batch size, as Opacus);
* an elementwise optimizer (SGD/Adam of ``recipe.make_optimizer``) on the stacked parameters.

The noise multiplier is the config's, or the one Opacus' ``get_noise_multiplier`` (RDP or PRV
accountant) finds for ``target_epsilon`` at the largest sampling rate of the population; the claimed eps (of every
model) is the accountant's at that largest rate (eps grows with q). Shuffled batches are accounted as if
Poisson-sampled (what Opacus reports too; strictly, the analysis assumes Poisson sampling).

Deliberately broken variants (``dp.bug``) claim the same eps as the correct one:
``noise_not_scaled`` draws noise with std ``sigma`` instead of ``sigma * C``;
``clip_after_average`` clips the batch-averaged (unclipped) gradient instead of each sample's.

A model's initialisation, batches and noise depend only on ``(root seed, model index)``, and so
does its arithmetic, bit for bit on a CPU. The K models' batches are padded (masked rows) to a
common length, which for Poisson batches depends on the group: the largest batch of the step. So
the length is rounded up to a multiple of :data:`ROW_BLOCK` rows (every model's block of a float32
``[K, rows, w]`` tensor then starts on a 64-byte boundary), a sample's per-sample gradient does not
depend on the padded length (measured for MLPs and CNNs, 16 to 512 rows), and the clipped
gradients are summed block by block of :data:`ROW_BLOCK` rows, the block sums added in order
(:func:`clipped_sum`), so that a model's padding blocks add exact zeros. Before, a model's sum was
one matmul over the padded length, and came out different in the last bit depending on its
group-mates' batch sizes. CNNs on a CPU (the ``loop`` backend) get their per-sample gradients one
model at a time (:func:`_clipped_sums`).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from privaudit.config import DPConfig
from privaudit.device import as_device
from privaudit.errors import ConfigError
from privaudit.models.architectures import ArchSpec, build_model, init_model
from privaudit.models.group import (ModelGroup, VmapGroup, aligned_bmm, group_from_state, has_batchnorm, round_up,
                                    stack_states)
from privaudit.training.augment import draw_augmentations, shift_and_mirror
from privaudit.training.recipe import Recipe, make_optimizer
from privaudit.training.trainer import (CheckpointFn, ProgressFn, choose_backend, end_of_epoch, epoch_plan,
                                        model_seed, set_lr, training_threads)

Grads = dict[str, torch.Tensor]
ROW_BLOCK = 16   # a batch's padded length is a multiple of this many rows (64 bytes of float32)


# -- accounting (Opacus) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DPClaim:
    """What the accountant certifies for one model: ``(epsilon, delta)`` after ``steps`` steps of
    noise multiplier ``noise_multiplier`` at sampling rate ``sample_rate``."""

    epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accountant_kwargs(accountant: str) -> dict[str, Any]:
    """RDP: Opacus' default orders extended to 1024 (small eps needs large orders; Opacus warns
    when its optimum is the largest order it tried). PRV: Opacus' defaults."""
    if accountant != "rdp":
        return {}
    from opacus.accountants.rdp import RDPAccountant

    return {"alphas": list(RDPAccountant.DEFAULT_ALPHAS) + [80, 96, 128, 192, 256, 384, 512, 768, 1024]}


@functools.lru_cache(maxsize=4096)
def accountant_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                       accountant: str = "rdp") -> float:
    """Opacus' eps for ``steps`` compositions of the subsampled Gaussian mechanism."""
    from opacus.accountants import create_accountant

    if noise_multiplier <= 0:
        return math.inf
    acc = create_accountant(mechanism=accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with warnings.catch_warnings():
        if accountant == "prv":   # PRV sizes its domain with an internal RDP bound at a tiny delta
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return float(acc.get_epsilon(delta=delta, **_accountant_kwargs(accountant)))


@functools.lru_cache(maxsize=256)
def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                     accountant: str = "rdp") -> float:
    """Opacus ``get_noise_multiplier``: the noise multiplier meeting ``target_epsilon``."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():   # the search's first probes (sigma 20, 40, ...) need huge orders
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                              sample_rate=sample_rate, steps=steps, accountant=accountant,
                                              **_accountant_kwargs(accountant)))
    except ValueError as err:
        raise ConfigError(f"training.dp.target_epsilon={target_epsilon}: {err}") from None


def sample_rates(keep: np.ndarray, batch_size: int) -> np.ndarray:
    """Per-model Poisson sampling rate ``q_k = B / N_k`` (``keep`` over all training rows)."""
    sizes = keep.sum(axis=1)
    if sizes.min() < 1:
        raise ConfigError("a model has an empty training set; DP-SGD needs at least one sample")
    return np.minimum(1.0, batch_size / sizes)


def noise_multiplier(dp: DPConfig, keep: np.ndarray, batch_size: int, total_steps: int) -> float:
    """The population's sigma: the config's, or the one meeting ``target_epsilon`` at the largest
    sampling rate of any model (so every model meets it; independent of how models are grouped)."""
    if dp.noise_multiplier is not None:
        return float(dp.noise_multiplier)
    q = float(sample_rates(keep, batch_size).max())
    return noise_for_target(float(dp.target_epsilon), float(dp.delta), q, int(total_steps), dp.accountant)


def claim(dp: DPConfig, keep: np.ndarray, batch_size: int, total_steps: int,
          model_ids: list[int] | None = None) -> DPClaim:
    """The claimed ``(eps, delta)`` that holds for every model of ``model_ids`` (default: all rows
    of the full ``keep``): the accountant's eps at their largest sampling rate (eps grows with q)."""
    sigma = noise_multiplier(dp, keep, batch_size, total_steps)
    q = float(sample_rates(keep if model_ids is None else keep[model_ids], batch_size).max())
    eps = accountant_epsilon(sigma, q, int(total_steps), float(dp.delta), dp.accountant)
    return DPClaim(eps, float(dp.delta), sigma, q, int(total_steps), dp.accountant)


def dp_report(dp: DPConfig, keep: np.ndarray, batch_size: int, total_steps: int,
              model_ids: list[int] | None = None) -> dict[str, Any]:
    """JSON-ready claim of the models ``model_ids`` (``keep`` is the full population's: it fixes
    sigma when ``target_epsilon`` is given); ``epsilon`` holds for each of them."""
    worst = claim(dp, keep, batch_size, total_steps, model_ids)
    rates = sample_rates(keep if model_ids is None else keep[model_ids], batch_size)
    notes = []
    if dp.bug != "none":
        notes.append(f"deliberately BROKEN implementation ({dp.bug}): the claim is the correct one's")
    if dp.sampling == "shuffle":
        notes.append("shuffled batches accounted as if Poisson-sampled (as Opacus does)")
    return {"mechanism": "DP-SGD (Abadi et al. 2016): per-sample clipping + Gaussian noise",
            "epsilon": worst.epsilon, "delta": worst.delta, "accountant": f"opacus {dp.accountant}",
            "noise_multiplier": worst.noise_multiplier, "steps": worst.steps,
            "expected_batch_size": int(batch_size), "max_grad_norm": dp.max_grad_norm,
            "sample_rate_max": worst.sample_rate, "sample_rate_min": float(rates.min()),
            "config": dp.model_dump(mode="json"), "bug": dp.bug, "note": "; ".join(notes)}


# -- one DP-SGD step, as pure tensor functions -----------------------------------------------------
def per_sample_grads(base: torch.nn.Module, params: Grads, x: torch.Tensor, y: torch.Tensor,
                     buffers: Grads | None = None) -> Grads:
    """Per-sample gradients ``name -> [K, B, *shape]`` of the cross-entropy of each model
    (``params`` and ``buffers`` stacked ``[K, ...]``) on its own batch ``x [K, B, ...]``, ``y [K, B]``.
    Buffers are read, never updated (no BatchNorm under DP-SGD: :func:`check_dp_architecture`)."""
    buffers = buffers or {}

    def loss(p: Grads, b: Grads, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    return vmap(vmap(grad(loss), in_dims=(None, None, 0, 0)), in_dims=(0, 0, 0, 0))(params, buffers, x, y)


def check_dp_architecture(model: torch.nn.Module, spec: ArchSpec) -> None:
    """DP-SGD clips each sample's gradient; BatchNorm makes a sample's gradient depend on the rest
    of its batch, so the clipping bound (and the DP claim) would not hold."""
    if has_batchnorm(model):
        what = spec.factory if spec.kind == "factory" else spec.kind
        raise ConfigError(f"{what} has BatchNorm layers, which DP-SGD cannot train (a sample's gradient would "
                          f"depend on the rest of its batch); use GroupNorm (model.norm: group for resnet, wrn and "
                          f"airbench)")


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


def grad_norms(grads: Grads, lead: int = 2) -> torch.Tensor:
    """Global L2 norm over all parameters, per leading index (``[K, B]`` for per-sample grads)."""
    return torch.sqrt(sum(g.flatten(lead).pow(2).sum(-1) for g in grads.values()))


def clip_factors(grads: Grads, max_norm: float, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per model and sample, ``min(1, C / (||g_i|| + 1e-6))`` (Abadi et al. 2016, Alg. 1; the 1e-6
    as Opacus), zero on masked (padded) rows. Returns ``(factors [K, B], norms [K, B])``."""
    norms = grad_norms(grads)
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return (factor if mask is None else factor * mask), norms


def clip_per_sample(grads: Grads, max_norm: float, mask: torch.Tensor | None = None) -> tuple[Grads, torch.Tensor]:
    """The clipped per-sample gradients ``g_i * clip_factor_i`` and the norms before clipping."""
    factor, norms = clip_factors(grads, max_norm, mask)
    return {n: g * _expand(factor, g) for n, g in grads.items()}, norms


def clipped_sum(grads: Grads, mask: torch.Tensor, *, max_norm: float, bug: str = "none") -> Grads:
    """Each model's gradient sum ``[K, ...]`` from per-sample ``grads [K, b, ...]`` and ``mask
    [K, b]`` (1 = real row): ``sum_i clip(g_i)``, or for the ``clip_after_average`` bug the unclipped
    ``sum_i g_i``. With ``b`` a multiple of :data:`ROW_BLOCK`, summed in a fixed order: each block
    of rows on its own, then the block sums one after another, so padding blocks at the end add
    exact zeros and the result does not depend on ``b``."""
    if bug == "clip_after_average":
        weight = mask
    elif bug in ("none", "noise_not_scaled"):
        weight, _ = clip_factors(grads, max_norm, mask)
    else:
        raise ConfigError(f"unknown DP bug {bug!r}; choose none, noise_not_scaled or clip_after_average")
    return {n: _blockwise_sum(g, weight) for n, g in grads.items()}


def _blockwise_sum(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_i weight[k, i] * g[k, i]`` as one weighted sum per block of :data:`ROW_BLOCK` rows (a
    ``[1, block] @ [block, P]`` product of the same shape, on the same alignment, for every block and
    model), then the blocks' sums added one after another."""
    k, b = g.shape[:2]
    block = ROW_BLOCK if b % ROW_BLOCK == 0 else b
    n = b // block
    sums = aligned_bmm(weight.reshape(k * n, 1, block), g.reshape(k * n, block, -1)).reshape(k, n, *g.shape[2:])
    total = sums[:, 0]
    for j in range(1, n):
        total = total + sums[:, j]
    return total


def noisy_gradient(summed: Grads, noise: Grads, *, max_norm: float, sigma: float, expected_batch: float,
                   bug: str = "none") -> Grads:
    """The noisy gradient of each model ``[K, ...]`` from the :func:`clipped_sum` totals and
    standard-normal ``noise [K, ...]``: ``(sum_i clip(g_i) + sigma * C * noise) / B`` — or a
    deliberately broken variant."""
    if bug == "clip_after_average":
        avg = {n: t / expected_batch for n, t in summed.items()}
        factor = (max_norm / (grad_norms(avg, lead=1) + 1e-6)).clamp(max=1.0)
        return {n: a * _expand(factor, a) + sigma * max_norm * noise[n] / expected_batch for n, a in avg.items()}
    std = sigma if bug == "noise_not_scaled" else sigma * max_norm
    return {n: (t + std * noise[n]) / expected_batch for n, t in summed.items()}


def privatize(grads: Grads, mask: torch.Tensor, noise: Grads, *, max_norm: float, sigma: float,
              expected_batch: float, bug: str = "none") -> Grads:
    """The noisy gradient of each model ``[K, ...]`` from per-sample ``grads [K, B, ...]``,
    ``mask [K, B]`` (1 = real row) and standard-normal ``noise [K, ...]``:
    ``(sum_i clip(g_i) + sigma * C * noise) / B`` — or a deliberately broken variant."""
    summed = clipped_sum(grads, mask, max_norm=max_norm, bug=bug)
    return noisy_gradient(summed, noise, max_norm=max_norm, sigma=sigma, expected_batch=expected_batch, bug=bug)


# -- per-model randomness --------------------------------------------------------------------------
def _noise_generators(root_seed: int, model_ids: list[int]) -> list[torch.Generator]:
    seeds = [int(np.random.SeedSequence([root_seed, 0x4E4F, m]).generate_state(1)[0]) for m in model_ids]
    return [torch.Generator().manual_seed(s) for s in seeds]


def draw_noise(gens: list[torch.Generator], shapes: dict[str, torch.Size]) -> Grads:
    """Standard-normal noise ``name -> [K, *shape]``, model k's from its own generator."""
    sizes = [math.prod(s) for s in shapes.values()]
    flat = torch.stack([torch.randn(sum(sizes), generator=g) for g in gens])
    return {n: part.reshape(len(gens), *s) for (n, s), part in zip(shapes.items(), flat.split(sizes, dim=1))}


@dataclass
class StepBatch:
    x: torch.Tensor      # [K, Bmax, ...]
    y: torch.Tensor      # [K, Bmax]
    mask: torch.Tensor   # [K, Bmax] float, 1 = real row


def poisson_epoch(root_seed: int, model_index: int, epoch: int, members: np.ndarray, steps: int, q: float,
                  recipe: Recipe) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Model ``model_index``'s Poisson batches for one epoch (each member independently with
    probability ``q`` at every step) and their augmentation draws; depends on nothing else."""
    rng = np.random.default_rng([root_seed, 0x4450, model_index, epoch])
    chosen = rng.random((steps, len(members))) < q
    out = []
    for s in range(steps):
        idx = members[chosen[s]]
        out.append((idx, draw_augmentations(rng, len(idx), mirror=recipe.mirror, shift=recipe.shift)))
    return out


def _padded_batch(x: torch.Tensor, y: torch.Tensor, parts, recipe: Recipe, rows: int) -> StepBatch:
    """Pad the K models' variable-size batches to ``rows`` (padded rows masked; they repeat row 0)."""
    k = len(parts)
    idx = np.zeros((k, rows), dtype=np.int64)
    mask = np.zeros((k, rows), dtype=np.float32)
    flip = np.zeros((k, rows), dtype=bool)
    dx, dy = np.zeros((k, rows), dtype=np.int64), np.zeros((k, rows), dtype=np.int64)
    for i, (sel, (f, a, b)) in enumerate(parts):
        n = len(sel)
        idx[i, :n], mask[i, :n], flip[i, :n], dx[i, :n], dy[i, :n] = sel, 1.0, f, a, b
    tensor = lambda a: torch.from_numpy(a).to(x.device)
    xb = x[tensor(idx.reshape(-1))]
    if x.dim() == 4 and (recipe.mirror or recipe.shift):
        xb = shift_and_mirror(xb, tensor(flip.reshape(-1)), tensor(dx.reshape(-1)), tensor(dy.reshape(-1)),
                              recipe.shift)
    return StepBatch(xb.reshape(k, rows, *x.shape[1:]), y[tensor(idx)], tensor(mask))


def epoch_batches(x: torch.Tensor, y: torch.Tensor, model_ids: list[int], members: list[np.ndarray],
                  rates: np.ndarray, epoch: int, steps: int, recipe: Recipe, root_seed: int, sampling: str):
    """Yield the ``steps`` stacked batches of one epoch for the models ``model_ids``, each padded to
    a multiple of :data:`ROW_BLOCK` rows."""
    if sampling == "shuffle":
        plans = [epoch_plan(root_seed, m, epoch, mem, steps, recipe) for m, mem in zip(model_ids, members)]
        rows = round_up(recipe.batch_size, ROW_BLOCK)
        for s in range(steps):
            parts = [(p.idx[s], (p.flip[s], p.dx[s], p.dy[s])) for p in plans]
            yield _padded_batch(x, y, parts, recipe, rows)
        return
    per_model = [poisson_epoch(root_seed, m, epoch, mem, steps, float(q), recipe)
                 for m, mem, q in zip(model_ids, members, rates)]
    for s in range(steps):
        parts = [p[s] for p in per_model]
        yield _padded_batch(x, y, parts, recipe, round_up(max(1, *(len(sel) for sel, _ in parts)), ROW_BLOCK))


def _clipped_sums(base: torch.nn.Module, params: Grads, buffers: Grads, batch: StepBatch, per_model: bool,
                  clip: dict[str, Any]) -> Grads:
    """:func:`clipped_sum` for all K models: their per-sample gradients stacked through ``vmap``
    over the models, or (``per_model``: the ``loop`` backend, CNNs on a CPU) one model after
    another. ``vmap`` runs the K models' convolutions as one grouped convolution, and a model's
    per-sample gradients came out different in the last bit in groups of 1, 3 and 8; a CPU gains
    nothing from stacking CNNs."""
    if not per_model:
        return clipped_sum(per_sample_grads(base, params, batch.x, batch.y, buffers), batch.mask, **clip)
    one = lambda d, k: {n: t[k:k + 1] for n, t in d.items()}
    parts = [clipped_sum(per_sample_grads(base, one(params, k), batch.x[k:k + 1], batch.y[k:k + 1], one(buffers, k)),
                         batch.mask[k:k + 1], **clip)
             for k in range(batch.x.shape[0])]
    return {n: torch.cat([part[n] for part in parts]) for n in parts[0]}


# -- training --------------------------------------------------------------------------------------
def train_group_dp(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray, model_ids: list[int], *, dp: DPConfig,
                   spec: ArchSpec, recipe: Recipe, n_classes: int, root_seed: int, steps: int,
                   backend: str = "auto", device: torch.device | str = "cpu",
                   on_checkpoint: CheckpointFn | None = None, on_progress: ProgressFn | None = None) -> ModelGroup:
    """Train the models ``model_ids`` (rows of the full ``keep[M, n]``) with DP-SGD; same contract
    as :func:`privaudit.training.trainer.train_group`. The returned group carries ``.dp_claim``
    (:func:`dp_report` of its models)."""
    input_shape = tuple(x.shape[1:])
    total = recipe.epochs * steps
    sigma = noise_multiplier(dp, keep, recipe.batch_size, total)
    rates = sample_rates(keep[model_ids], recipe.batch_size)
    members = [np.flatnonzero(keep[m]) for m in model_ids]
    device = as_device(device)
    x, y = x.to(device), y.to(device)
    inits = [init_model(spec, input_shape, n_classes, model_seed(root_seed, m)).to(device) for m in model_ids]
    check_dp_architecture(inits[0], spec)
    group = VmapGroup(spec, input_shape, n_classes, stack_states(inits))
    base = build_model(spec, input_shape, n_classes).to("meta")
    opt = make_optimizer(recipe, group.parameters())
    gens = _noise_generators(root_seed, model_ids)
    shapes = {n: p.shape[1:] for n, p in group.params().items()}
    clip = dict(max_norm=dp.max_grad_norm, bug=dp.bug)
    per_model = choose_backend(spec, backend, device) == "loop"
    with training_threads(device):
        for epoch in range(1, recipe.epochs + 1):
            batches = epoch_batches(x, y, model_ids, members, rates, epoch, steps, recipe, root_seed, dp.sampling)
            for s, batch in enumerate(batches):
                set_lr(opt, recipe, (epoch - 1) * steps + s, total)
                params = {n: p.detach() for n, p in group.params().items()}
                summed = _clipped_sums(base, params, group.buffers_by_name(), batch, per_model, clip)
                # CPU generators: the same draws on any device
                noise = {n: t.to(x.device) for n, t in draw_noise(gens, shapes).items()}
                group.set_grads(noisy_gradient(summed, noise, sigma=sigma, expected_batch=recipe.batch_size, **clip))
                opt.step()
                if on_progress:
                    on_progress(len(model_ids))
            end_of_epoch(group, epoch, recipe, model_ids,
                         all(bool(torch.isfinite(p).all()) for p in group.parameters()), on_checkpoint)
    out = group_from_state(spec, input_shape, n_classes, group.state(), choose_backend(spec, backend, device))
    out.dp_claim = dp_report(dp, keep, recipe.batch_size, total, model_ids)
    return out.eval()
