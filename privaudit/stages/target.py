"""Stage ``target``: audit the user's own trained model (``target:`` in the config).

The population, trained with the config's recipe on random halves of the pool, is the reference
set. The target model is queried on the pool with the same queries, and every configured attack
scores it against all M population models (online attacks use their IN and OUT rows, offline
attacks the OUT rows). The ground truth is ``target.members``: which pool rows the target trained on.

Artifacts: the members mask, the model's path and sha256, its logits ``[1, n, A, C]``, and
``results/target/`` (metrics and per-sample scores). A changed model file or query grid is
re-queried; everything else resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from privaudit.config import RunConfig
from privaudit.data.loaders import file_hash
from privaudit.device import resolve_device
from privaudit.errors import DataError
from privaudit.evaluation.results import TPR_CONVENTION, MetricsDocument
from privaudit.models.group import ModuleList
from privaudit.runtime.plan import queries
from privaudit.runtime.run import Layout, Run
from privaudit.signals.query import query_logits


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


class _Exported(torch.nn.Module):
    """A ``torch.export`` program's module; its train/eval behaviour was fixed at export time
    (its ``eval()`` raises), so switching modes is a no-op here."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def train(self, mode: bool = True) -> "_Exported":
        return self


def load_target_model(path: str | Path, device: torch.device) -> torch.nn.Module:
    """A TorchScript file (``torch.jit.save``) or a ``torch.export`` program (``.pt2``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"target.model: missing file {path}")
    try:
        if path.suffix == ".pt2":
            from torch.export.passes import move_to_device_pass
            program = move_to_device_pass(torch.export.load(str(path)), device)   # devices fixed at export
            model = _Exported(program.module())
        else:
            model = torch.jit.load(str(path), map_location=device)
    except Exception as err:  # torch raises many types for files it cannot read
        raise DataError(f"target.model: {path} is not a TorchScript (torch.jit.save) or torch.export (.pt2) "
                        f"file ({err.__class__.__name__}); save the trained model in one of these formats") from None
    return model.eval()


def prepare_target(run: Run, cfg: RunConfig, console=None) -> None:
    """Validate and store the members mask, then query the target (before any training, so that
    a wrong file or output shape is reported at once)."""
    if cfg.target is None:
        return
    members = read_members(cfg.target.members, run.n_audit())
    if not run.has(Layout.target_members) or not np.array_equal(run.load_npy(Layout.target_members), members):
        run.save_npy(Layout.target_members, members)
    query_target(run, cfg)


def _target_key(cfg: RunConfig) -> dict[str, Any]:
    """What determines the target's logits: the model file (by content) and the query grid."""
    path = Path(cfg.target.model)
    if not path.is_file():
        raise DataError(f"target.model: missing file {path}")
    return {"model": str(path.resolve()), "sha256": file_hash(path), "queries": [list(q) for q in queries(cfg)]}


def query_target(run: Run, cfg: RunConfig) -> np.ndarray:
    """The target's logits ``float32[1, n, A, C]`` under the run's queries, computed again only
    when the model file or the queries change (``target/info.json``). If the model file is gone,
    the stored logits of the same queries are used."""
    path = Layout.signal("target_logits", cfg.training.epochs)
    info = run.load_json(Layout.target_info) if run.has(Layout.target_info) else {}
    grid = [list(q) for q in queries(cfg)]
    if run.has(path) and not Path(cfg.target.model).is_file() and info.get("queries") == grid:
        return run.load_npy(path)
    key = _target_key(cfg)
    if run.has(path) and {k: info.get(k) for k in key} == key:
        return run.load_npy(path)
    x, _ = run.pool()
    x, n_classes = torch.from_numpy(x), int(run.pool_info()["n_classes"])
    model = load_target_model(cfg.target.model, resolve_device(cfg.training.device))
    try:
        logits = query_logits(ModuleList([model]), x, queries(cfg))
    except (RuntimeError, AssertionError, ValueError) as err:
        raise DataError(f"target.model failed on the pool's inputs [B, {', '.join(map(str, x.shape[1:]))}] "
                        f"({(str(err).splitlines() or [err.__class__.__name__])[0]}); it must accept any batch "
                        f"size (a torch.export program needs a dynamic batch dimension)") from None
    if logits.shape[-1] != n_classes or not np.isfinite(logits).all():
        raise DataError(f"target.model must return finite logits [B, {n_classes}] for inputs "
                        f"[B, {', '.join(map(str, x.shape[1:]))}]; got [B, {logits.shape[-1]}]"
                        f"{'' if np.isfinite(logits).all() else ' with NaN/inf'}")
    run.save_npy(path, logits)
    members = run.load_npy(Layout.target_members)
    run.save_json(Layout.target_info, key | {"members": int(members.sum()), "non_members": int((~members).sum())})
    return logits


def evaluate_target(run: Run, cfg: RunConfig, console=None, *, attacks=None) -> dict[str, Any]:
    """Every attack on the target, with all M population models as references; writes
    ``results/target/metrics.json`` and the per-sample scores. Curvature attacks are skipped (they
    need the target's input gradients)."""
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import evaluate_given_target
    from privaudit.signals.transforms import derive

    if cfg.target is None:
        return {}
    epoch, ev = cfg.training.epochs, cfg.evaluation
    keep = run.keep()
    members = run.load_npy(Layout.target_members)
    labels = run.labels()
    target_logits = query_target(run, cfg)
    results = {}
    for a in attacks if attacks is not None else cfg.attacks:
        if a.signal_name == "curvature":
            continue   # needs the target's input gradients: not computed for a user model
        target_signal = derive(a.signal_name, np.asarray(target_logits), labels)[0]
        res = evaluate_given_target(get_attack(a.name), target_signal, run.signal(a.signal_name, epoch), keep, members,
                                    labels, fprs=tuple(ev.fprs), mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed,
                                    name=a.key, **dict(a.params))
        res.signal = a.signal_name
        results[a.key] = res
        run.save_npy(Layout.target_scores(a.key), res.scores[0])
    if results:   # none when only curvature attacks were asked for
        doc = target_document(run, cfg, results)
        if run.has(Layout.target_metrics):
            doc.attacks = MetricsDocument.from_json(run.load_json(Layout.target_metrics)).attacks | doc.attacks
        run.save_json(Layout.target_metrics, doc.to_json())
    elif console is not None:
        console.print("target model: no chosen attack can score it (curvature attacks need its input gradients)")
    return results


def target_document(run: Run, cfg: RunConfig, results: dict) -> MetricsDocument:
    info = run.load_json(Layout.target_info)
    return MetricsDocument(
        run=f"{cfg.name}: target model {Path(info['model']).name}", epoch=cfg.training.epochs,
        n_models=cfg.population.n_models, targets=["target"], model=info,
        protocol="the given target model, attacked with every population model as a reference",
        tpr_convention=TPR_CONVENTION[cfg.evaluation.tpr_mode],
        intervals=f"{cfg.evaluation.bootstrap} bootstrap resamples of the pool, bias-corrected 95% interval (privaudit.evaluation.intervals)",
        attacks={k: r.metrics() for k, r in results.items()})
