"""Stage ``target``: audit the user's own trained model (``target:`` in the config).

The population, trained with the config's recipe on random halves of the pool, is the reference
set. The target model is queried on the pool with the same queries, and every configured attack
scores it against all M population models (online attacks use their IN and OUT rows, offline
attacks the OUT rows). The ground truth is ``target.members``: which pool rows the target trained on.

The model file is loaded without running code from it (:mod:`privaudit.models.loading`). Before any
training, its accuracy on its members and non-members is printed, and a model evidently not fed the
inputs it was trained on is refused (:func:`check_inputs`). Curvature attacks use the black-box
zero-order curvature of the target (:func:`target_curvature`).

Artifacts: the members mask, the model's path and sha256, its logits ``[1, n, A, C]``, its curvature
``[1, n, A]`` and its label-only noise distance ``[1, n, 1]`` when asked for, and
``results/target/`` (metrics and per-sample scores; NaN = a row not evaluated). A changed
model file, members mask or query grid is re-queried; everything else resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from privaudit.config import RunConfig
from privaudit.device import resolve_device
from privaudit.errors import DataError
from privaudit.evaluation import utility as ut
from privaudit.evaluation.results import TPR_CONVENTION, MetricsDocument, Utility
from privaudit.models.architectures import init_model
from privaudit.models.group import ModuleList
from privaudit.models.loading import load_model, read_model_file, sha256
from privaudit.report.format import target_accuracy_text
from privaudit.runtime.plan import arch_spec, curvature_queries, curvature_settings, queries, zo_batch_size
from privaudit.runtime.run import Layout, Run
from privaudit.signals.query import query_logits

SKILL_FLOOR = 0.2          # see check_inputs
BETTER_BY = 0.05


def read_members(path: str | Path, n: int) -> np.ndarray:
    """``bool[n]`` from a ``.npy`` file of booleans or 0/1 integers over the pool's rows."""
    path = Path(path)
    try:
        members = np.load(path, allow_pickle=False)
        if not isinstance(members, np.ndarray):
            raise ValueError("not a single array")
    except FileNotFoundError:
        raise DataError(f"target.members: missing file {path}") from None
    except (OSError, ValueError) as err:
        raise DataError(f"target.members: {path} is not a .npy file holding one array "
                        f"({err.__class__.__name__}: {err}); write it with numpy.save") from None
    if members.shape != (n,):
        raise DataError(f"target.members: {path} has shape {list(members.shape)}; expected [{n}], one entry "
                        f"per pool row")
    if members.dtype != bool and not (members.dtype.kind in "iu" and np.isin(members, (0, 1)).all()):
        raise DataError(f"target.members: {path} must hold booleans or 0/1 integers, got {members.dtype}")
    members = members.astype(bool)
    if members.all() or not members.any():
        raise DataError(f"target.members: {path} marks {'every' if members.all() else 'no'} row as a member; "
                        f"an audit needs both members and non-members")
    return members


def load_target_model(run: Run, cfg: RunConfig, data: bytes, device: torch.device) -> nn.Module:
    """The target in ``data`` (the bytes of ``target.model``): a ``.pt2`` program, or a
    ``.safetensors`` state dict in the architecture ``cfg.target_model()``, sized by the pool."""
    info = run.pool_info()
    spec = arch_spec(cfg, cfg.target_model())
    build = lambda: init_model(spec, tuple(info["input_shape"]), int(info["n_classes"]), seed=0)
    return load_model(data, Path(cfg.target.model).name, device, build)


def prepare_target(run: Run, cfg: RunConfig, console=None) -> None:
    """Validate and store the members mask, then query the target (before any training, so that
    a wrong file, output shape or preprocessing is reported at once) and print its accuracy."""
    if cfg.target is None:
        return
    members = read_members(cfg.target.members, run.n_audit())
    if not run.has(Layout.target_members) or not np.array_equal(run.load_npy(Layout.target_members), members):
        run.save_npy(Layout.target_members, members)
    logits = query_target(run, cfg)
    if console is not None:
        u = ut.utility(logits, members[None], run.labels())
        console.print(f"target model: {target_accuracy_text(u, int(members.sum()), int((~members).sum()))}")
        if cfg.references_differ():
            console.print(f"note: {cfg.references_differ()}")


def _target_key(cfg: RunConfig, data: bytes, members: np.ndarray) -> dict[str, Any]:
    """What determines the target's logits and checks: the model (file content, and the
    architecture of a state dict), the members mask and the query grid."""
    key = {"model": str(Path(cfg.target.model).resolve()), "sha256": sha256(data),
           "members_sha256": sha256(np.ascontiguousarray(members).tobytes()),
           "queries": [list(q) for q in queries(cfg)]}
    if Path(cfg.target.model).suffix == ".safetensors":
        key["architecture"] = cfg.target_model().model_dump(mode="json")
    return key


def query_target(run: Run, cfg: RunConfig) -> np.ndarray:
    """The target's logits ``float32[1, n, A, C]`` under the run's queries, computed again only
    when the model, the members or the queries change (``target/info.json``). If the model file is
    gone, the stored logits of the same queries are used."""
    path = Layout.signal("target_logits", cfg.training.epochs)
    info = run.load_json(Layout.target_info) if run.has(Layout.target_info) else {}
    grid = [list(q) for q in queries(cfg)]
    if run.has(path) and not Path(cfg.target.model).is_file() and info.get("queries") == grid:
        return run.load_npy(path)
    data = read_model_file(cfg.target.model)
    members = run.load_npy(Layout.target_members)
    key = _target_key(cfg, data, members)
    if run.has(path) and {k: info.get(k) for k in key} == key:
        return run.load_npy(path)
    device = resolve_device(cfg.training.device)
    model = load_target_model(run, cfg, data, device)
    x, labels = run.pool()
    logits = _query(model, x, queries(cfg), int(run.pool_info()["n_classes"]))
    check_inputs(model, x, labels, members, logits, run.pool_info(), cfg.data.normalize)
    run.save_npy(path, logits)
    run.save_json(Layout.target_info, key | {"members": int(members.sum()), "non_members": int((~members).sum())})
    return logits


def _query(model: nn.Module, x: np.ndarray, grid: list[tuple[bool, int, int]], n_classes: int) -> np.ndarray:
    """Logits ``[1, n, A, C]``; one clear line when the model does not map the pool to logits."""
    shape = ", ".join(map(str, x.shape[1:]))
    try:
        logits = query_logits(ModuleList([model]), torch.from_numpy(x), grid)
    except (RuntimeError, AssertionError, ValueError, TypeError) as err:
        raise DataError(f"target.model failed on the pool's inputs [B, {shape}] "
                        f"({(str(err).splitlines() or [err.__class__.__name__])[0]}); it must accept any batch "
                        f"size (a torch.export program needs a dynamic batch dimension)") from None
    if logits.shape[-1] != n_classes or not np.isfinite(logits).all():
        raise DataError(f"target.model must return finite logits [B, {n_classes}] for inputs [B, {shape}]; got "
                        f"[B, {logits.shape[-1]}]{'' if np.isfinite(logits).all() else ' with NaN/inf'}")
    return logits


# -- does the target read its inputs? ---------------------------------------------------------------

FIX = ("set data.normalize: none to pass the npz exactly as stored, or data.normalize: given with the mean/std "
       "the model was trained with")


def alternative_inputs(x: np.ndarray, info: dict[str, Any]) -> dict[str, tuple[np.ndarray, str]]:
    """Other preprocessings of the pool's inputs ``x`` the model may have been trained with, as
    ``description -> (inputs, how to get them)``: without privaudit's normalisation (``x * std +
    mean``), standardised per channel, and with the channel order reversed (images only)."""
    if x.ndim != 4:
        return {}
    out = {}
    mean, std = info.get("mean"), info.get("std")
    if mean is not None and std is not None and (np.any(np.asarray(mean) != 0) or np.any(np.asarray(std) != 1)):
        m, s = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (mean, std))
        out["without privaudit's normalisation (x * std + mean)"] = (x * s + m, FIX)
    mu, sd = x.mean(axis=(0, 2, 3), keepdims=True), x.std(axis=(0, 2, 3), keepdims=True)
    if np.abs(mu).max() > 0.1 or np.abs(sd - 1).max() > 0.1:
        out["with its inputs standardised per channel"] = (
            (x - mu) / np.where(sd > 0, sd, 1),
            "set data.normalize: per_channel, or data.normalize: given with the mean/std the model was trained with")
    if x.shape[1] == 3:
        out["with the channel order reversed (RGB <-> BGR)"] = (
            np.ascontiguousarray(x[:, ::-1]), "store the images in the channel order the model was trained with")
    return out


def check_inputs(model: nn.Module, x: np.ndarray, labels: np.ndarray, members: np.ndarray, logits: np.ndarray,
                 info: dict[str, Any], normalize: str) -> None:
    """Refuse a target that is evidently not reading the inputs it was trained on, before anything
    is trained on them. Two rules, both about the target's *own training rows* (members), which
    any trained model fits well:

    1. Another preprocessing of the same pool (:func:`alternative_inputs`) fits the members much
       better: its member error is at most half the configured one and its member accuracy at
       least ``BETTER_BY`` (5 points; the two accuracies are paired on the same rows) higher. A
       model fits its training rows best under the preprocessing it was trained with, so this
       names the likely mismatch. Accuracy alone cannot: a digits MLP trained on [0, 1] inputs
       still gets ~90% of its members right when they are standardised instead (measured).
    2. Member accuracy is hardly above always predicting the most frequent class: skill
       ``(acc - chance) / (1 - chance) < SKILL_FLOOR`` (0.2; 28% on ten balanced classes, 60% on
       two). A model that trained on these rows and still sits that close to a constant predictor
       on them is being fed inputs it cannot read, or ``members`` is wrong; attacking it would
       report an AUC near 0.5 for the wrong reason. The floor is low on purpose: a weak but
       genuine model is audited, not refused.
    """
    acc = ut.utility(logits, members[None], labels)
    acc_members = acc.train.mean
    for what, (alt, fix) in alternative_inputs(x[members], info).items():
        alt_logits = query_logits(ModuleList([model]), torch.from_numpy(alt), [(False, 0, 0)])
        alt_acc = float((ut.predictions(alt_logits[0]) == labels[members]).mean())
        if alt_acc - acc_members >= BETTER_BY and 1 - alt_acc <= (1 - acc_members) / 2:
            raise DataError(f"target.model: the model fits its own training rows better {what}: "
                            f"{alt_acc:.1%} of its {int(members.sum())} members right, against {acc_members:.1%} "
                            f"on the pool as prepared (data.normalize: {normalize}). The inputs differ from what "
                            f"the model was trained on (normalisation, scaling or channel order): {fix}")
    chance = ut.chance_accuracy(labels[members])
    if ut.skill(acc_members, chance) < SKILL_FLOOR:
        raise DataError(f"target.model: the model gets {acc_members:.1%} of its {int(members.sum())} own training "
                        f"rows right (non-members: {acc.test.mean:.1%}), hardly above the {chance:.1%} of always "
                        f"predicting the most frequent class: the inputs likely differ from what it was trained on "
                        f"(normalisation, scaling or channel order; data.normalize: {normalize}), or target.members "
                        f"is wrong. {FIX}")


# -- curvature ---------------------------------------------------------------------------------------

def curvature_note(cfg: RunConfig) -> str | None:
    """Why the target gets no curvature attacks (None when it gets them, or none are asked for)."""
    if cfg.curvature is None or not any(a.signal_name == "curvature" for a in cfg.attacks):
        return None
    if cfg.curvature.estimator != "zero_order":
        return (f"curvature attacks are not run on the target: the population's curvature uses the white-box "
                f"estimator {cfg.curvature.estimator}, and privaudit computes the target's curvature with the "
                f"black-box zero_order estimator only; set curvature.estimator: zero_order to compare them")
    return None


def zero_order_of(cfg: RunConfig, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """``float32[1, n, A]``: the zero-order curvature of one black-box ``model`` with the
    population's settings (h, rounds, dtype, per-query seed ``seed * 1000 + a``, sample ids = pool
    rows), so that it is comparable with the population's curvature signal."""
    from privaudit.signals.curvature import stable_cross_entropy, zero_order_curvature
    from privaudit.training.augment import apply_query

    c = cfg.curvature
    dtype = torch.float64 if c.dtype == "float64" else torch.float32
    model = model.to(dtype).eval().requires_grad_(False)
    device = next(model.parameters(), torch.empty(0)).device
    x, y = x.to(device), y.to(device)
    forward: Callable[[torch.Tensor], torch.Tensor] = lambda xb: model(xb)[None]
    out = []
    for a, q in enumerate(curvature_queries(cfg, x.dim() == 4)):
        v = zero_order_curvature(forward, apply_query(x, q).to(dtype), y, n_models=1, h=c.h, rounds=c.rounds,
                                 seed=cfg.seed * 1000 + a, sample_ids=torch.arange(len(y), device=device),
                                 dtype=dtype, batch_size=zo_batch_size(cfg.model.arch, device),
                                 loss_fn=stable_cross_entropy)
        out.append(v.float().cpu().numpy())
    return np.stack(out, axis=-1)


def _black_box_signal(run: Run, cfg: RunConfig, name: str, settings: dict[str, Any],
                      compute: Callable[[nn.Module, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """The target's signal ``name`` from black-box queries ``compute(model, x, y)``, stored with
    ``settings`` (plus the model's sha256 and architecture) and recomputed when they change."""
    rel = Layout.signal(name, cfg.training.epochs)
    query_target(run, cfg)   # the model file checked, its info current
    info = run.load_json(Layout.target_info)
    settings = settings | {"target_sha256": info["sha256"], "architecture": info.get("architecture")}
    if run.has(rel) and run.meta(rel) == {"settings": settings}:
        return run.load_npy(rel)
    data = read_model_file(cfg.target.model)
    if sha256(data) != info["sha256"]:
        raise DataError(f"target.model: {cfg.target.model} changed while the run was using it; run again")
    model = load_target_model(run, cfg, data, resolve_device(cfg.training.device))
    x, y = run.pool()
    values = compute(model, x, y)
    run.save_npy(rel, values, meta={"settings": settings})
    return values


def target_curvature(run: Run, cfg: RunConfig) -> np.ndarray:
    """The target's zero-order curvature ``float32[1, n, A]`` (``Layout.signal("target_curvature", E)``)."""
    compute = lambda model, x, y: zero_order_of(cfg, model, torch.from_numpy(x), torch.from_numpy(y))
    return _black_box_signal(run, cfg, "target_curvature", curvature_settings(cfg), compute)


# -- label-only noise distance ---------------------------------------------------------------------

def target_label_noise(run: Run, cfg: RunConfig) -> np.ndarray:
    """The target's label-only noise distance ``float32[1, n, 1]`` (black-box: its predicted labels
    under noise only), with the population's settings and noise draws
    (:mod:`privaudit.signals.label_noise`)."""
    from privaudit.signals import label_noise as ln

    compute = lambda model, x, y: ln.distances_of(ModuleList([model]), x, y, ln.settings(cfg.seed))
    return _black_box_signal(run, cfg, "target_label_noise_distance", ln.settings(cfg.seed), compute)


def _target_signal(run: Run, cfg: RunConfig, name: str, target_logits: np.ndarray, labels: np.ndarray,
                   cache: dict[str, np.ndarray]) -> np.ndarray:
    """The target's signal ``name`` ``[n, A(, C)]``: its curvature or label-only noise distance
    (computed once per call of :func:`evaluate_target`), or derived from its logits."""
    from privaudit.signals.transforms import derive

    if name not in cache:
        if name == "curvature":
            cache[name] = target_curvature(run, cfg)
        elif name == "label_noise_distance":
            cache[name] = target_label_noise(run, cfg)
        else:
            cache[name] = derive(name, np.asarray(target_logits), labels)
    return cache[name][0]


# -- attacks -----------------------------------------------------------------------------------------

def evaluate_target(run: Run, cfg: RunConfig, console=None, *, attacks=None) -> dict[str, Any]:
    """Every attack on the target, with all M population models as references; writes
    ``results/target/metrics.json`` (with the target's utility and notes) and the per-sample
    scores. Curvature attacks use the target's zero-order curvature, ``label_noise`` its
    label-only noise distance; an attack fitted on public non-members (QMIA) gets half of the
    target's non-members, whose scores are saved as NaN (not evaluated)."""
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import evaluate_given_target

    if cfg.target is None:
        return {}
    epoch, ev = cfg.training.epochs, cfg.evaluation
    keep = run.keep()
    members = run.load_npy(Layout.target_members)
    labels = run.labels()
    target_logits = query_target(run, cfg)
    note = curvature_note(cfg)
    signals: dict[str, np.ndarray] = {}
    results = {}
    for a in attacks if attacks is not None else cfg.attacks:
        if a.signal_name == "curvature" and note is not None:
            continue
        spec = get_attack(a.name)
        target_signal = _target_signal(run, cfg, a.signal_name, target_logits, labels, signals)
        context = {"features": run.pool()[0] if spec.needs_features else None, "public_seed": cfg.seed}
        res = evaluate_given_target(spec, target_signal, run.signal(a.signal_name, epoch), keep, members,
                                    labels, fprs=tuple(ev.fprs), mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed,
                                    name=a.key, context=context, **dict(a.params))
        res.signal = a.signal_name
        results[a.key] = res
        run.save_npy(Layout.target_scores(a.key), res.scores[0])
    if not results:   # only curvature attacks were asked for, and they cannot be run
        if console is not None and note is not None:
            console.print(f"target model: {note}")
        return results
    notes = [n for n in (cfg.references_differ(), note) if n]
    doc = target_document(run, cfg, results, ut.utility(target_logits, members[None], labels), notes)
    if run.has(Layout.target_metrics):
        doc.attacks = MetricsDocument.from_json(run.load_json(Layout.target_metrics)).attacks | doc.attacks
    if note is not None:   # curvature scored earlier under another estimator is not comparable now
        doc.attacks = {k: v for k, v in doc.attacks.items() if v.signal != "curvature"}
    run.save_json(Layout.target_metrics, doc.to_json())
    return results


def target_document(run: Run, cfg: RunConfig, results: dict, utility: Utility, notes: list[str]) -> MetricsDocument:
    info = run.load_json(Layout.target_info)
    return MetricsDocument(
        run=f"{cfg.name}: target model {Path(info['model']).name}", epoch=cfg.training.epochs,
        n_models=cfg.population.n_models, targets=["target"], model=info,
        protocol="the given target model, attacked with every population model as a reference",
        tpr_convention=TPR_CONVENTION[cfg.evaluation.tpr_mode],
        intervals=f"{cfg.evaluation.bootstrap} bootstrap resamples of the pool, bias-corrected 95% interval (privaudit.evaluation.intervals)",
        attacks={k: r.metrics() for k, r in results.items()}, utility=utility, notes=notes)
