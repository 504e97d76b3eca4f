"""The audit pipeline, one function per stage; each stage reads the previous stage's artifacts from
the run directory and skips work whose artifact already exists (resume after any interruption).

prepare -> train -> signals -> evaluate -> report
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from privaudit.config import RunConfig, dump_config, parse_config
from privaudit.data.datasets import load_dataset
from privaudit.data.membership import check_keep, make_keep
from privaudit.errors import ConfigError
from privaudit.models.architectures import ArchSpec
from privaudit.models.group import group_from_state
from privaudit.device import on_cpu, resolve_device
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.store import RunStore
from privaudit.signals.query import query_logits
from privaudit.training.augment import query_grid
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import choose_backend, steps_per_epoch, train_group

console = Console(stderr=True)


# -- configuration pieces ------------------------------------------------------------------------
def arch_spec(cfg: RunConfig) -> ArchSpec:
    m = cfg.model
    return ArchSpec(kind=m.arch, hidden=tuple(m.hidden), width=m.width, depth=m.depth, activation=m.activation)


def recipe(cfg: RunConfig) -> Recipe:
    t = cfg.training
    return Recipe(epochs=t.epochs, batch_size=t.batch_size, optimizer=t.optimizer, lr=t.lr,
                  momentum=t.momentum, weight_decay=t.weight_decay, schedule=t.schedule,
                  milestones=tuple(t.milestones), gamma=t.gamma, mirror=t.mirror, shift=t.shift,
                  checkpoints=tuple(t.checkpoints))


def groups(cfg: RunConfig) -> list[list[int]]:
    """Model ids split into groups of ``models_per_group`` (the last one may be smaller)."""
    m, k = cfg.population.n_models, cfg.population.models_per_group
    return [list(range(s, min(s + k, m))) for s in range(0, m, k)]


def signal_epochs(cfg: RunConfig) -> list[int]:
    return sorted(set(cfg.training.checkpoints) | {cfg.training.epochs})


def schedule(cfg: RunConfig) -> dict[str, Any]:
    """How :func:`run_tasks` runs the groups: ``workers`` CPU processes (on a GPU one after another
    in this process), or Ray tasks with one GPU each when the run uses a GPU (``device: cuda``, or
    ``auto`` where this machine has one; the Ray head itself may have none)."""
    if cfg.training.executor == "ray":
        gpu = cfg.training.device == "cuda" or (cfg.training.device == "auto" and torch.cuda.is_available())
    else:
        gpu = resolve_device(cfg.training.device).type == "cuda"
    return {"workers": 1 if gpu else cfg.training.workers, "executor": cfg.training.executor,
            "gpus_per_task": 1.0 if gpu else 0.0}


def queries(cfg: RunConfig) -> list[tuple[bool, int, int]]:
    q = cfg.queries
    return query_grid(mirror=q.mirror, shift=q.shift, stride=q.stride)


def read_config(store: RunStore) -> RunConfig:
    path = store.path("config.yaml")
    if not path.exists():
        raise ConfigError(f"{store.root} is not a privaudit run directory (no config.yaml)")
    return parse_config(yaml.safe_load(path.read_text()), str(path))


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


# -- stages --------------------------------------------------------------------------------------
def prepare(cfg: RunConfig, store: RunStore) -> None:
    """Write the resolved config, the pool (``data/x.npy``, ``data/y.npy``) and ``keep.npy``.

    An existing run directory resumes when its training settings are unchanged; with a
    ``bernoulli`` or ``paired`` design it may also *grow* (more models: only those are trained).
    """
    existing = store.path("config.yaml")
    old_keep = store.load_npy("keep.npy") if store.path("keep.npy").exists() else None
    if existing.exists():
        _check_compatible(read_config(store), cfg, store)
    store.save_text("config.yaml", dump_config(cfg))
    if not store.path("data", "y.npy").exists():
        write_pool(cfg, store)
    n = n_audit(store)
    keep = make_keep(cfg.population.n_models, n, pkeep=cfg.population.pkeep,
                     design=cfg.population.design, seed=cfg.seed)
    if old_keep is not None and not np.array_equal(old_keep, keep[:len(old_keep)]):
        raise ConfigError(f"{store.root}/keep.npy differs from the design this config produces")
    store.save_npy("keep.npy", keep)
    store.mark("prepare", n_samples=n, n_models=cfg.population.n_models)


def _check_compatible(old: RunConfig, new: RunConfig, store: RunStore) -> None:
    a, b = old.training_fields(), new.training_fields()
    grows = new.population.design in ("bernoulli", "paired") and \
        new.population.n_models >= old.population.n_models
    if grows:
        a["population"] = {k: v for k, v in a["population"].items() if k != "n_models"}
        b["population"] = {k: v for k, v in b["population"].items() if k != "n_models"}
    changed = [k for k in b if a[k] != b[k]]
    if changed:
        hint = "" if grows or new.population.design in ("bernoulli", "paired") else \
            " (to grow a population later, use population.design: bernoulli or paired)"
        raise ConfigError(f"{store.root} holds a run with different {', '.join(changed)} settings; "
                          f"choose another name/--out, or delete the directory{hint}")


def write_pool(cfg: RunConfig, store: RunStore) -> None:
    """The audited pool (with canaries) and, after it, training-only rows (poisons) that every
    model trains on: ``data/x.npy``, ``data/y.npy``, ``data/kind.npy`` and ``data/info.json``."""
    from privaudit.data.canaries import insert_canaries, make_poisons

    d = cfg.data
    if d.mixture is not None:
        from privaudit.data.mixture_dataset import load_mixture
        ds, group = load_mixture(d, seed=cfg.seed)
        store.save_npy("data/group.npy", group)
    else:
        ds = load_dataset(d.name, root=d.root, split=d.split, n=d.n, seed=cfg.seed, download=d.download)
    x, y = np.ascontiguousarray(ds.x, dtype=np.float32), ds.y.astype(np.int64)
    kind = np.zeros(len(y), dtype=np.int8)
    if cfg.canaries is not None:
        x, y, kind = insert_canaries(x, y, ds.n_classes, **cfg.canaries.model_dump(), seed=cfg.seed,
                                     mean=ds.mean, std=ds.std)
    n_audit = len(y)
    if cfg.poison is not None and cfg.poison.copies:
        px, py, targets = make_poisons(x, y, ds.n_classes, targets=cfg.poison.targets,
                                       copies=cfg.poison.copies, seed=cfg.seed)
        x, y = np.concatenate([x, px]), np.concatenate([y, py])
        store.save_npy("data/poison_targets.npy", targets)
    elif cfg.poison is not None:
        rng_targets = make_poisons(x, y, ds.n_classes, targets=cfg.poison.targets, copies=1, seed=cfg.seed)[2]
        store.save_npy("data/poison_targets.npy", rng_targets)   # same targets, zero copies (the control)
    store.save_npy("data/x.npy", x)
    store.save_npy("data/kind.npy", kind)
    store.save_json("data/info.json", {"name": ds.name, "n_classes": ds.n_classes, "n": n_audit,
                                       "n_train_only": len(y) - n_audit, "input_shape": list(x.shape[1:]),
                                       "mean": ds.mean, "std": ds.std})
    store.save_npy("data/y.npy", y)   # written last: its presence marks a complete pool


def n_audit(store: RunStore) -> int:
    """Number of audited pool samples (the rows of ``keep``); training-only rows come after."""
    return int(store.load_json("data/info.json")["n"])


def load_pool(store: RunStore, audited_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, int]:
    n = n_audit(store) if audited_only else None
    x = torch.from_numpy(np.array(store.load_npy("data/x.npy", mmap=True)[:n]))
    y = torch.from_numpy(np.array(store.load_npy("data/y.npy", mmap=True)[:n]))
    return x, y, int(store.load_json("data/info.json")["n_classes"])


def training_keep(store: RunStore) -> np.ndarray:
    """``keep`` over all rows: the design for the audited pool, always IN for training-only rows."""
    keep = store.load_npy("keep.npy")
    extra = len(store.load_npy("data/y.npy", mmap=True)) - keep.shape[1]
    return np.hstack([keep, np.ones((keep.shape[0], extra), dtype=bool)]) if extra else keep


def train_group_task(run_dir: str, model_ids: list[int], on_progress) -> str:
    """Train one group and write its model file (+ checkpoint files); returns its path."""
    store = RunStore(run_dir)
    cfg = read_config(store)
    x, y, n_classes = load_pool(store)
    keep = training_keep(store)
    save_ckpt = lambda epoch, state: store.save_torch(store.group_file(model_ids, epoch),
                                                      {"model_ids": model_ids, "epoch": epoch, "state": on_cpu(state)})
    train_fn = train_group
    if cfg.training.dp is not None:
        from privaudit.training.dp import train_group_dp
        train_fn = partial(train_group_dp, dp=cfg.training.dp)
    trained = train_fn(x, y, keep, model_ids, spec=arch_spec(cfg), recipe=recipe(cfg), n_classes=n_classes,
                       root_seed=cfg.seed, steps=steps_per_epoch(keep, cfg.training.batch_size),
                       backend=cfg.training.backend, device=resolve_device(cfg.training.device),
                       on_checkpoint=save_ckpt, on_progress=on_progress)
    path = store.save_torch(store.group_file(model_ids), {"model_ids": model_ids, "epoch": cfg.training.epochs,
                                                      "state": on_cpu(trained.state())})
    return str(path)


def train(cfg: RunConfig, store: RunStore) -> None:
    keep = check_keep(store.load_npy("keep.npy"), n_audit(store))
    todo = [ids for ids in groups(cfg) if not _group_done(cfg, store, ids)]
    if todo:
        steps = steps_per_epoch(keep, cfg.training.batch_size) * cfg.training.epochs
        plan = schedule(cfg)
        device = "cuda" if plan["gpus_per_task"] else "cpu"
        backend = choose_backend(arch_spec(cfg), cfg.training.backend, device)
        n_models = sum(len(ids) for ids in todo)
        with progress_bar(f"train {n_models} models ({backend}, {device})", n_models * steps) as advance:
            tasks = [{"run_dir": str(store.root), "model_ids": ids} for ids in todo]
            run_tasks(train_group_task, tasks, **plan, advance=advance)
    info = {}
    if cfg.training.dp is not None:
        from privaudit.runtime.audit_stage import dp_claim
        claim = dp_claim(cfg, store)   # also written to dp.json
        info = {"claimed_epsilon": claim["epsilon"], "delta": claim["delta"]}
        console.print(f"DP-SGD claim (Opacus {cfg.training.dp.accountant}): every model is "
                      f"({claim['epsilon']:.3g}, {claim['delta']:g})-DP; noise multiplier "
                      f"{claim['noise_multiplier']:.3g}{'; ' + claim['note'] if claim['note'] else ''}")
    store.mark("train", groups=len(groups(cfg)), **info)


def _group_done(cfg: RunConfig, store: RunStore, ids: list[int]) -> bool:
    files = [store.group_file(ids)] + [store.group_file(ids, e) for e in cfg.training.checkpoints
                                       if e != cfg.training.epochs]
    return all(f.exists() for f in files)


def load_group(cfg: RunConfig, store: RunStore, model_ids: list[int], epoch: int | None = None):
    """The trained group of ``model_ids`` (at checkpoint ``epoch``; the final models by default),
    on the run's device."""
    final = epoch is None or epoch == cfg.training.epochs
    blob = store.load_torch(store.group_file(model_ids, None if final else epoch))
    info = store.load_json("data/info.json")
    device = resolve_device(cfg.training.device)
    backend = choose_backend(arch_spec(cfg), cfg.training.backend, device)
    group = group_from_state(arch_spec(cfg), tuple(info["input_shape"]), info["n_classes"], blob["state"], backend)
    return group.to(device)


def signals_group_task(run_dir: str, model_ids: list[int], epoch: int, on_progress) -> str:
    store = RunStore(run_dir)
    cfg = read_config(store)
    x, _, _ = load_pool(store, audited_only=True)
    logits = query_logits(load_group(cfg, store, model_ids, epoch), x, queries(cfg))
    on_progress(logits.shape[0])
    return str(store.save_npy(store.signal_file("logits", epoch, model_ids), logits))


def per_group_signal(cfg: RunConfig, store: RunStore, name: str, epoch: int, task, description: str) -> None:
    """Compute signal ``name`` group by group (``task(run_dir, model_ids, epoch)`` writes one
    group's file) and assemble ``name.npy [M, ...]``; finished groups are kept and skipped, so a
    grown population computes only its new models."""
    final = store.signal_file(name, epoch)
    m = cfg.population.n_models
    if final.exists() and store.load_npy(final, mmap=True).shape[0] == m:
        return
    todo = [ids for ids in groups(cfg) if not store.signal_file(name, epoch, ids).exists()]
    if todo:
        with progress_bar(description, sum(len(ids) for ids in todo)) as advance:
            tasks = [{"run_dir": str(store.root), "model_ids": ids, "epoch": epoch} for ids in todo]
            run_tasks(task, tasks, **schedule(cfg), advance=advance)
    parts = [store.load_npy(store.signal_file(name, epoch, ids)) for ids in groups(cfg)]
    store.save_npy(final, np.concatenate(parts))


def compute_signals(cfg: RunConfig, store: RunStore) -> None:
    """Logits of every model on every sample and query, per checkpoint: ``logits.npy [M, n, A, C]``."""
    for epoch in signal_epochs(cfg):
        per_group_signal(cfg, store, "logits", epoch, signals_group_task,
                         f"query models (epoch {epoch}, {len(queries(cfg))} queries)")
    store.mark("signals", epochs=signal_epochs(cfg), queries=len(queries(cfg)))


def load_logits(store: RunStore, epoch: int) -> np.ndarray:
    return store.load_npy(store.signal_file("logits", epoch), mmap=True)


def run_dir_for(cfg: RunConfig) -> Path:
    return cfg.run_dir


# -- attacks and evaluation ----------------------------------------------------------------------
TPR_CONVENTION = {"strict": "TPR at the largest threshold whose FPR <= alpha (no interpolation)",
                  "interp": "TPR linearly interpolated at FPR = alpha"}


def load_signal(store: RunStore, name: str, epoch: int, labels: np.ndarray, cache: dict) -> np.ndarray:
    """A named signal ``[M, n, A(, C)]``: derived from stored logits, or the stored curvature."""
    from privaudit.signals.transforms import derive

    if (name, epoch) not in cache:
        if name == "curvature":
            cache[name, epoch] = np.array(store.load_npy(store.signal_file("curvature", epoch)))
        else:
            cache[name, epoch] = derive(name, np.asarray(load_logits(store, epoch)), labels)
    return cache[name, epoch]


def evaluate(cfg: RunConfig, store: RunStore, *, attacks=None, epoch: int | None = None,
             save: bool = True, cache: dict | None = None) -> dict[str, Any]:
    """Run every configured attack leave-one-model-out; write ``results/metrics.json`` and scores."""
    from privaudit.attacks.registry import get_attack
    from privaudit.evaluation.protocol import evaluate_attack

    epoch = epoch or cfg.training.epochs
    ev = cfg.evaluation
    keep = store.load_npy("keep.npy")
    labels = np.asarray(store.load_npy("data/y.npy"))[:n_audit(store)]
    targets = list(range(ev.targets))
    cache = {} if cache is None else cache   # derived signals, shared with the report
    results = {}
    for a in attacks if attacks is not None else cfg.attacks:
        spec = get_attack(a.name)
        signal_name = a.signal or spec.signal
        label = a.key
        signal = load_signal(store, signal_name, epoch, labels, cache)
        res = evaluate_attack(spec, signal, keep, labels, targets, fprs=tuple(ev.fprs), mode=ev.tpr_mode,
                              n_boot=ev.bootstrap, seed=ev.seed, name=label, **dict(a.params))
        res.signal = signal_name
        results[label] = res
        if save:
            store.save_npy(f"results/epoch_{epoch:04d}/scores_{label}.npy", res.scores.astype(np.float32))
    if save:
        doc = metrics_document(cfg, results, epoch)
        rel = f"results/epoch_{epoch:04d}/metrics.json"
        if store.path(rel).exists():   # keep attacks scored earlier (each entry names its own targets)
            doc["attacks"] = store.load_json(rel)["attacks"] | doc["attacks"]
        store.save_json(rel, doc)
        if epoch == cfg.training.epochs:
            store.save_json("results/metrics.json", doc)
        store.save_json(f"results/epoch_{epoch:04d}/slices.json", slices_document(cfg, store, results, labels))
    return results


def slices_document(cfg: RunConfig, store: RunStore, results: dict, labels: np.ndarray) -> dict[str, Any]:
    """Metrics per class, per canary kind and per mixture group (``slices.json``)."""
    from privaudit.evaluation.slices import run_slices

    ev = cfg.evaluation
    optional = lambda f: np.asarray(store.load_npy(f))[:len(labels)] if store.path(f).exists() else None
    keep = store.load_npy("keep.npy")
    targets = next(iter(results.values())).targets
    return run_slices(results, keep[targets], labels, kind=optional("data/kind.npy"),
                      group=optional("data/group.npy"), fprs=tuple(ev.fprs), mode=ev.tpr_mode,
                      n_boot=ev.bootstrap, seed=ev.seed)


def metrics_document(cfg: RunConfig, results: dict, epoch: int) -> dict[str, Any]:
    ev = cfg.evaluation
    return {"run": cfg.name, "epoch": epoch, "n_models": cfg.population.n_models,
            "targets": list(range(ev.targets)), "protocol": "leave-one-model-out: each target's attack is "
            "fitted on the other models only", "tpr_at_fpr": TPR_CONVENTION[ev.tpr_mode],
            "balanced_accuracy": "max over thresholds of 1 - (FPR + FNR) / 2",
            "intervals": f"{ev.bootstrap} bootstrap resamples of the samples, 95% percentile interval of the "
                         "mean over targets", "attacks": {k: r.to_dict() for k, r in results.items()}}


# -- report --------------------------------------------------------------------------------------
def report(cfg: RunConfig, store: RunStore, results: dict, epoch: int, cache: dict | None = None,
           target: dict | None = None) -> Path:
    """Plots (``results/*.png``) and the self-contained ``report/index.html`` (with a section on the
    user's target model when ``target`` holds its results)."""
    from privaudit.analysis.memorization import privacy_score
    from privaudit.report import html as rh
    from privaudit.report.plots import histograms, roc_loglog

    keep = store.load_npy("keep.npy")
    targets = list(range(cfg.evaluation.targets))
    folder = f"results/epoch_{epoch:04d}"
    roc_png = roc_loglog({k: (r.scores, keep[targets]) for k, r in results.items()},
                         store.path(folder, "roc.png"), title=f"{cfg.name}: ROC, mean over {len(targets)} targets")
    hist_png = histograms({k: (r.scores[0], keep[0]) for k, r in results.items()},
                          store.path(folder, "score_histograms.png"), title="target model 0")
    sections = [("Attacks", rh.metrics_html(metrics_document(cfg, results, epoch))),
                ("ROC (log-log)", rh._img(roc_png)), ("Score distributions", rh._img(hist_png))]
    if target:
        members = store.load_npy("target/members.npy")
        png = roc_loglog({k: (r.scores, members[None]) for k, r in target.items()},
                         store.path("results", "target", "roc.png"), title="your target model: ROC")
        sections.insert(0, ("Your target model", "<p class=note>the given model, attacked with all "
                            f"{cfg.population.n_models} population models as references</p>" +
                            rh.metrics_html(store.load_json("results/target/metrics.json")) + rh._img(png)))
    labels = np.asarray(store.load_npy("data/y.npy"))[:n_audit(store)]
    phi = load_signal(store, "phi", epoch, labels, {} if cache is None else cache)
    risk = privacy_score(phi, keep)
    store.save_npy(f"{folder}/privacy_score.npy", risk.astype(np.float32))
    top = np.argsort(-np.nan_to_num(risk, nan=-np.inf))[:20]
    info = store.load_json("data/info.json")
    grid = rh.sample_grid(np.asarray(store.load_npy("data/x.npy", mmap=True)), top,
                          [f"#{i} y={labels[i]} d={risk[i]:.1f}" for i in top], info.get("mean"), info.get("std"))
    rows = "".join(f"<tr><td>{i}</td><td>{labels[i]}</td><td>{risk[i]:.2f}</td></tr>" for i in top)
    sections.append(("Most vulnerable samples", "<p class=note>per-sample privacy score d(x) = |mu_in - mu_out| "
                     "/ (sigma_in + sigma_out) of phi over all models (Carlini et al. 2022, Sec. VII-B); full "
                     f"array in {folder}/privacy_score.npy</p>" + grid +
                     f"<table><tr><th>sample</th><th>label</th><th>d(x)</th></tr>{rows}</table>"))
    slices_path = store.path(folder, "slices.json")
    if slices_path.exists():
        sections.append(("Per-slice AUC", rh.slices_html(store.load_json(f"{folder}/slices.json"))))
    if store.signal_file("curvature", epoch).exists():
        curv = store.load_npy(store.signal_file("curvature", epoch)).mean(axis=-1)
        png = histograms({"all models": (curv.ravel(), keep.ravel()), "target model 0": (curv[0], keep[0])},
                         store.path(folder, "curvature_histogram.png"), xlabel="curvature", log_x=True,
                         title="input loss curvature: members (train) vs non-members (test)")
        medians = f"median curvature: members {np.median(curv[keep]):.3g}, non-members {np.median(curv[~keep]):.3g}"
        sections.append(("Input loss curvature", rh._img(png) + f"<p class=note>{medians}</p>"))
    sections.append(("Configuration", f"<pre>{dump_config(cfg)}</pre>"))
    path = rh.write_report(store.path("report", "index.html") if epoch == cfg.training.epochs
                           else store.path("report", f"epoch_{epoch:04d}.html"),
                           title=f"privaudit report: {cfg.name}", sections=sections)
    return path


def attack_and_report(cfg: RunConfig, store: RunStore, *, attacks=None, epoch: int | None = None,
                      console: Console | None = None) -> dict:
    from privaudit.report.table import metrics_table

    epoch = epoch or cfg.training.epochs
    cache: dict = {}
    results = evaluate(cfg, store, attacks=attacks, epoch=epoch, cache=cache)
    target = None
    if cfg.target is not None and epoch == cfg.training.epochs:
        from privaudit.runtime.target_stage import evaluate_target
        target = evaluate_target(cfg, store, attacks=attacks, cache=cache) or None
        if target is None and console is not None:
            console.print("target model: no chosen attack can score it (curvature attacks need its input gradients)")
    path = report(cfg, store, results, epoch, cache, target=target)
    if console is not None:
        console.print(metrics_table(metrics_document(cfg, results, epoch)))
        if target is not None:
            doc = store.load_json("results/target/metrics.json")
            console.print(metrics_table(doc, title=f"{doc['run']} ({cfg.population.n_models} reference models)"))
        console.print(f"report: {path}\nmetrics: {store.path('results', f'epoch_{epoch:04d}', 'metrics.json')}")
    return results


def run_all(cfg: RunConfig, *, attacks=None, console: Console | None = None) -> dict:
    """prepare -> train -> signals (-> curvature) -> attacks -> report, skipping finished work."""
    import time

    store = RunStore(cfg.run_dir)
    t0 = time.perf_counter()
    prepare(cfg, store)
    if cfg.target is not None:
        from privaudit.runtime.target_stage import prepare_target
        prepare_target(cfg, store)   # validate the user's files before any training
    train(cfg, store)
    compute_signals(cfg, store)
    if cfg.curvature is not None:
        from privaudit.runtime.curvature_stage import compute_curvature
        compute_curvature(cfg, store)
    results = attack_and_report(cfg, store, attacks=attacks, console=console)
    if console is not None:
        console.print(f"done in {time.perf_counter() - t0:.1f} s: {store.root}")
    return results
