"""Stage ``prepare``: the resolved config, the pool (``data/``) and the membership design
(``keep.npy``), with every check a run needs made before any training."""

from __future__ import annotations

import numpy as np

from privaudit.attacks.registry import ATTACKS
from privaudit.config import RunConfig, dump_config
from privaudit.data.membership import make_keep
from privaudit.errors import ConfigError, DataError
from privaudit.runtime.run import Layout, Run


def prepare(run: Run, cfg: RunConfig, console=None) -> None:
    """Write config, pool and ``keep``; refuse a config that cannot finish. An existing run
    directory resumes when its training settings are unchanged; a ``bernoulli`` or ``paired``
    design may also grow (more models: only those are trained)."""
    old_keep = run.keep() if run.has(Layout.keep) else None
    if run.exists(Layout.config):
        _check_compatible(run.config(), cfg, run)
    run.save_text(Layout.config, dump_config(cfg))
    if not run.has(Layout.pool("y")):
        write_pool(run, cfg)
    keep = make_keep(cfg.population.n_models, run.n_audit(), pkeep=cfg.population.pkeep,
                     design=cfg.population.design, seed=cfg.seed)
    if old_keep is not None and not np.array_equal(old_keep, keep[:len(old_keep)]):
        raise ConfigError(f"{run.path(Layout.keep)} differs from the design this config produces")
    if old_keep is None or not np.array_equal(old_keep, keep):
        run.save_npy(Layout.keep, keep)
    check_feasible(run, cfg, keep)
    run.mark("prepare", n_samples=run.n_audit(), n_models=cfg.population.n_models)


def _check_compatible(old: RunConfig, new: RunConfig, run: Run) -> None:
    a, b = old.training_fields(), new.training_fields()
    grows = new.population.design in ("bernoulli", "paired") and new.population.n_models >= old.population.n_models
    if grows:
        a["population"] = {k: v for k, v in a["population"].items() if k != "n_models"}
        b["population"] = {k: v for k, v in b["population"].items() if k != "n_models"}
    changed = [k for k in b if a[k] != b[k]]
    if changed:
        hint = "" if new.population.design in ("bernoulli", "paired") else \
            " (to grow a population later, use population.design: bernoulli or paired)"
        raise ConfigError(f"{run.root} holds a run with different {', '.join(changed)} settings; "
                          f"choose another name or --out, or delete the directory{hint}")


def write_pool(run: Run, cfg: RunConfig) -> None:
    """The audited pool (with canaries) and, after it, training-only rows (poisons) that every
    model trains on; ``data/y.npy`` is written last, so its presence marks a complete pool."""
    from privaudit.data.canaries import insert_canaries, make_poisons
    from privaudit.data.datasets import load_dataset

    d = cfg.data
    if d.mixture is not None:
        from privaudit.data.mixture_dataset import load_mixture
        ds, group = load_mixture(d, seed=cfg.seed)
        run.save_npy(Layout.pool("group"), group)
    else:
        ds = load_dataset(d.name, root=d.root, split=d.split, n=d.n, seed=cfg.seed, download=d.download,
                          normalize=d.normalize, mean=d.mean, std=d.std)
    x, y = np.ascontiguousarray(ds.x, dtype=np.float32), ds.y.astype(np.int64)
    kind = np.zeros(len(y), dtype=np.int8)
    if cfg.canaries is not None:
        x, y, kind = insert_canaries(x, y, ds.n_classes, **cfg.canaries.model_dump(), seed=cfg.seed,
                                     mean=ds.mean, std=ds.std)
    n_audit = len(y)
    if cfg.poison is not None:
        copies = cfg.poison.copies
        px, py, targets = make_poisons(x, y, ds.n_classes, targets=cfg.poison.targets, copies=max(copies, 1),
                                       seed=cfg.seed)
        if copies:   # zero copies: the same targets, no poisons (the control)
            x, y = np.concatenate([x, px]), np.concatenate([y, py])
        run.save_npy(Layout.pool("poison_targets"), targets)
    run.save_npy(Layout.pool("x"), x)
    run.save_npy(Layout.pool("kind"), kind)
    run.save_json(Layout.pool_info, {"name": ds.name, "n_classes": ds.n_classes, "n": n_audit,
                                     "n_train_only": len(y) - n_audit, "input_shape": list(x.shape[1:]),
                                     "mean": ds.mean, "std": ds.std})
    run.save_npy(Layout.pool("y"), y)


def check_feasible(run: Run, cfg: RunConfig, keep: np.ndarray) -> None:
    """What the data and the design must allow, checked before training: two classes, a batch
    no larger than any model's training set, and for every target model at least one reference
    model on each side that its attacks need."""
    labels = run.labels()
    if np.unique(labels).size < 2:
        raise DataError(f"the pool holds one class only (label {labels[0]}); membership inference needs a "
                        f"classifier of at least 2 classes")
    train_size = int(run.training_keep().sum(axis=1).min())
    if cfg.training.batch_size > train_size:
        raise ConfigError(f"training.batch_size={cfg.training.batch_size} exceeds the smallest model's training "
                          f"set ({train_size} samples); choose at most {train_size}")
    modes = {ATTACKS[a.name].mode for a in cfg.attacks}
    targets = range(cfg.evaluation.targets)
    n_in = np.stack([np.delete(keep, t, axis=0).sum(axis=0) for t in targets])
    n_out = (keep.shape[0] - 1) - n_in
    need = [(side, counts) for side, counts, wanted in (("IN", n_in, "online" in modes),
                                                        ("OUT", n_out, bool(modes & {"online", "offline"})))
            if wanted]
    check_architecture(run, cfg)
    for side, counts in need:
        if counts.min() < 1:
            raise ConfigError(f"with n_models={cfg.population.n_models} some sample has no {side} reference model "
                              f"once a target is left out; use at least 4 models (more for reliable attacks)")


def check_architecture(run: Run, cfg: RunConfig) -> None:
    """The reference architecture, built once and run on two pool rows in eval mode before any
    training: it must give finite logits ``[2, n_classes]``; DP-SGD refuses BatchNorm (its batch
    statistics mix the samples a per-sample gradient must keep apart)."""
    import torch

    from privaudit.models.architectures import init_model
    from privaudit.models.group import has_batchnorm
    from privaudit.runtime.plan import arch_spec

    spec = arch_spec(cfg)
    x, _ = run.pool()
    n_classes = int(run.pool_info()["n_classes"])
    model = init_model(spec, tuple(x.shape[1:]), n_classes, seed=0).eval()
    what = f"model.factory {spec.factory}" if spec.kind == "factory" else f"model.arch {spec.kind}"
    if cfg.training.dp is not None and has_batchnorm(model):
        raise ConfigError(f"{what} has BatchNorm layers, which DP-SGD cannot train (a sample's gradient would "
                          f"depend on the rest of its batch); use GroupNorm (model.norm: group for resnet, wrn "
                          f"and airbench)")
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(x[:2]))
    except Exception as err:   # the user's module may raise anything
        raise ConfigError(f"{what} failed on the pool's inputs [B, {', '.join(map(str, x.shape[1:]))}] "
                          f"({err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes) or not torch.isfinite(out).all():
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{what} must map inputs [B, {', '.join(map(str, x.shape[1:]))}] to finite logits "
                          f"[B, {n_classes}]; it returned {got}")
