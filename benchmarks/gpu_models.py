"""Real models on a GPU: WRN-16-4 and ResNet-18 populations, and airbench's time to 93% on CIFAR-10.

For a GPU session (about 4-5 minutes on an H200; ``--budget-s`` caps it). Prints one JSON object.

1. Throughput, per architecture (WRN-16-4, the LiRA model; CIFAR ResNet-18 at width 64), K models
   at a time on CIFAR-10-shaped data: model-samples/s of privaudit's backends (``loop``,
   ``vmap``) in fp32 and bf16 autocast, ``vmap`` with and without channels_last batches, and
   ``torch.compile``, against a naive fp32 per-model loop (NCHW, a fresh ``torch.optim.SGD`` per
   model, plain indexing), interleaved over rounds (median). Each rate is the steady state: the
   second of two epochs (timed between the trainer's end-of-epoch callbacks, after a device sync),
   so model initialisation, first-call costs and compilation are excluded. fp32 is true fp32
   (privaudit switches TF32 off). The achieved TFLOP/s (training FLOPs per sample counted with
   ``torch.utils.flop_counter.FlopCounterMode``) is given as a fraction of the H200's dense bf16
   peak, 989 TFLOP/s. Compiled variants run after the others, once, and only while less than 60%
   of the budget is spent (compilation is the one step the budget cannot interrupt).
2. airbench (Keller Jordan's airbench94 net, privaudit's version: learned stem, no TTA) trained K
   at a time on the full CIFAR-10 training set (``vmap``, bf16, channels_last): test accuracy per
   epoch and the training seconds per model until the models reach 93% (evaluation excluded);
   training stops there, or after the epoch that passes 92% of the budget.
   Needs CIFAR-10 (``--cifar10 PATH``, or where ``load_dataset("cifar10")`` finds it, or
   ``../shared/data/cifar10_jpeg``); skipped otherwise.

    python benchmarks/gpu_models.py > gpu_models.json            # on a CUDA machine
    python benchmarks/gpu_models.py --smoke --device cpu --no-compile   # ~20 s: every code path but compile
    python benchmarks/gpu_models.py --smoke --device cpu                # ~3 min on 2 cores (Inductor)

Without CUDA (and without ``--smoke``) it prints a JSON message and exits with status 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from privaudit.device import as_device
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.models.group import group_from_state
from privaudit.training import trainer
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import epoch_plan, train_group, training_threads

H200_BF16_DENSE_TFLOPS = 989.0
ARCHS = {"wrn16_4": ArchSpec("wrn", depth=16, widen=4), "resnet18": ArchSpec("resnet", depth=18, width=64)}
SMOKE_ARCHS = {"wrn16_4": ArchSpec("wrn", depth=10, widen=1), "resnet18": ArchSpec("resnet", depth=18, width=4)}


@dataclass(frozen=True)
class Variant:
    name: str
    backend: str
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = True          # vmap only (the loop backend always converts per model)


VARIANTS = [Variant("loop_fp32", "loop"), Variant("loop_bf16", "loop", "bf16"),
            Variant("vmap_fp32_nchw", "vmap", channels_last=False), Variant("vmap_fp32", "vmap"),
            Variant("vmap_bf16_nchw", "vmap", "bf16", channels_last=False), Variant("vmap_bf16", "vmap", "bf16")]
COMPILED = [Variant("vmap_bf16_compile", "vmap", "bf16", compile=True),
            Variant("loop_bf16_compile", "loop", "bf16", compile=True)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def vmap_channels_last(on: bool) -> Iterator[None]:
    """Switch the trainer's channels_last batches for ``vmap`` on the GPU (its default) off."""
    before = trainer.VMAP_CHANNELS_LAST
    trainer.VMAP_CHANNELS_LAST = ("cuda", "cpu") if on else ()
    try:
        yield
    finally:
        trainer.VMAP_CHANNELS_LAST = before


def train_flops_per_sample(spec: ArchSpec, device: torch.device, batch: int = 16) -> float:
    """Forward + backward FLOPs of one model per training sample (FlopCounterMode: convolutions
    and matmuls, 2 FLOPs per multiply-add)."""
    model = init_model(spec, (3, 32, 32), 10, 0).to(device).train()
    x, y = torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


def steady_seconds(stamps: list[float]) -> float:
    """Seconds spent in second epochs: stamps alternate end of epoch 1, end of epoch 2 (per model
    for ``loop``, once for the stack)."""
    return sum(b - a for a, b in zip(stamps[0::2], stamps[1::2]))


def privaudit_rate(data: tuple, k: int, spec: ArchSpec, recipe: Recipe, steps: int, v: Variant, device) -> float:
    """Steady-state model-samples/s of one privaudit variant (2 epochs of ``steps``, the second timed)."""
    x, y, keep = data
    stamps: list[float] = []

    def stamp(_: int) -> None:
        sync(device)
        stamps.append(time.perf_counter())
    rec = replace(recipe, epochs=2, precision=v.precision, compile=v.compile)
    with vmap_channels_last(v.channels_last):
        train_group(x, y, keep, list(range(k)), spec=spec, recipe=rec, n_classes=10, root_seed=0, steps=steps,
                    backend=v.backend, device=device, on_progress=stamp)
    return k * steps * recipe.batch_size / steady_seconds(stamps)


def naive_rate(data: tuple, k: int, spec: ArchSpec, recipe: Recipe, steps: int, device) -> float:
    """The same work as a peer toolkit does it: per model a fresh module and ``torch.optim.SGD``,
    fp32, NCHW, ``x[idx]`` batches; 2 epochs of ``steps``, the second timed."""
    x, y, keep = data
    with training_threads(device):                     # the trainer's thread count (matters on a CPU only)
        return k * steps * recipe.batch_size / _naive_seconds(x, y, keep, k, spec, recipe, steps, device)


def _naive_seconds(x, y, keep, k: int, spec: ArchSpec, recipe: Recipe, steps: int, device) -> float:
    total = 0.0
    for m in range(k):
        model = init_model(spec, tuple(x.shape[1:]), 10, m).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                              weight_decay=recipe.weight_decay)
        for epoch in (1, 2):
            plan = torch.from_numpy(epoch_plan(0, m, epoch, np.flatnonzero(keep[m]), steps, recipe).idx).to(device)
            sync(device)
            begin = time.perf_counter()
            for s in range(steps):
                loss = F.cross_entropy(model(x[plan[s]]), y[plan[s]])
                opt.zero_grad()
                loss.backward()
                opt.step()
            sync(device)
            total += (time.perf_counter() - begin) if epoch == 2 else 0.0
    return total


@dataclass
class Population:
    """One architecture's throughput workload and the rates measured so far (model-samples/s)."""

    name: str
    spec: ArchSpec
    k: int
    batch: int
    steps: int
    device: torch.device
    runs: dict[str, list[float]]

    def data(self) -> tuple:
        g = torch.Generator().manual_seed(0)
        n = max(4 * self.batch, 2048)
        x = torch.randn(n, 3, 32, 32, generator=g).to(self.device)          # CIFAR-10-shaped
        return x, torch.randint(0, 10, (n,), generator=g).to(self.device), np.ones((self.k, n), dtype=bool)

    def recipe(self) -> Recipe:
        return Recipe(batch_size=self.batch, optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="constant")

    def measure(self, variants: list[Variant], rounds: int, deadline: float) -> None:
        """Interleaved rounds: the naive loop, then each variant; no new round after ``deadline``."""
        data, rec = self.data(), self.recipe()
        for r in range(rounds):
            if r and time.perf_counter() > deadline:
                break
            if any(not v.compile for v in variants):
                self.runs.setdefault("naive_fp32", []).append(naive_rate(data, self.k, self.spec, rec, self.steps,
                                                                         self.device))
            for v in variants:
                if v.compile and time.perf_counter() > deadline:
                    self.runs.setdefault("skipped_over_budget", []).append(v.name)
                    continue
                self.runs.setdefault(v.name, []).append(
                    privaudit_rate(data, self.k, self.spec, rec, self.steps, v, self.device))

    def row(self) -> dict:
        flops = train_flops_per_sample(self.spec, self.device)
        skipped = self.runs.pop("skipped_over_budget", [])
        rate = {m: statistics.median(v) for m, v in self.runs.items()}
        naive = rate["naive_fp32"]
        row = {"arch": self.name, "spec": {"kind": self.spec.kind, "depth": self.spec.depth,
                                           "width": self.spec.width, "widen": self.spec.widen},
               "K": self.k, "batch_per_model": self.batch, "timed_steps": self.steps,
               "rounds": {m: len(v) for m, v in self.runs.items()},
               "train_gflops_per_sample": round(flops / 1e9, 3),
               "model_samples_per_s": {m: round(r) for m, r in rate.items()},
               "speedup_over_naive_fp32": {m: round(r / naive, 2) for m, r in rate.items()},
               "tflops": {m: round(r * flops / 1e12, 2) for m, r in rate.items()},
               "fraction_of_h200_bf16_peak": {m: round(r * flops / 1e12 / H200_BF16_DENSE_TFLOPS, 4)
                                              for m, r in rate.items()}}
        if skipped:
            row["skipped_over_budget"] = skipped
        return row


# -- airbench: time to 93% ---------------------------------------------------------------------------
class _Stop(Exception):
    pass


def load_cifar10(root: str | None, n_train: int | None) -> tuple | None:
    """(x_train, y_train, x_test, y_test) as tensors, or None where CIFAR-10 is not found."""
    from privaudit.data.datasets import load_dataset
    from privaudit.errors import DataError

    here = Path(__file__).resolve().parents[1]
    for where in ([root] if root else [None, here.parent / "shared/data/cifar10_jpeg", here / "shared/data/cifar10_jpeg"]):
        try:
            tr = load_dataset("cifar10", root=where, split="train", n=n_train, seed=0)
            te = load_dataset("cifar10", root=where, split="test", n=None if n_train is None else n_train // 5, seed=0)
        except (DataError, OSError):
            continue
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
        return t(tr.x), t(tr.y), t(te.x), t(te.y)
    return None


def accuracies(spec: ArchSpec, state: dict, x: torch.Tensor, y: torch.Tensor, chunk: int = 2500) -> np.ndarray:
    """Test accuracy of each model of a stacked state (eval mode)."""
    group = group_from_state(spec, tuple(x.shape[1:]), 10, state, "vmap").eval()
    hits = 0
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        for i in range(0, len(y), chunk):
            hits = hits + (group.forward(x[i:i + chunk]).argmax(-1) == y[i:i + chunk]).sum(1)
    return (hits.float() / len(y)).cpu().numpy()


def airbench_time_to_target(data: tuple, k: int, epochs: int, target: float, width: int, device,
                            deadline: float, precision: str) -> dict:
    """Train K airbench nets at once on all of CIFAR-10's training set; evaluate after each epoch."""
    x, y, xt, yt = (t.to(device) for t in data)
    spec = ArchSpec("airbench", width=width)
    recipe = Recipe(epochs=epochs, batch_size=512, optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=5e-4,
                    schedule="cosine", warmup_epochs=1.0, label_smoothing=0.2, mirror=True, shift=2,
                    precision=precision, checkpoints=tuple(range(1, epochs + 1)))
    keep = np.ones((k, len(y)), dtype=bool)
    steps = trainer.steps_per_epoch(keep, recipe.batch_size)
    log: list[dict] = []
    clock = {"start": 0.0, "eval": 0.0}

    def on_checkpoint(epoch: int, state: dict) -> None:
        sync(device)
        t0 = time.perf_counter()
        acc = accuracies(spec, state, xt, yt)
        log.append({"epoch": epoch, "train_s": round(t0 - clock["start"] - clock["eval"], 2),
                    "acc_mean": round(float(acc.mean()), 4), "acc_min": round(float(acc.min()), 4)})
        clock["eval"] += time.perf_counter() - t0
        if acc.min() >= target or time.perf_counter() > deadline:
            raise _Stop
    clock["start"] = time.perf_counter()
    try:
        train_group(x, y, keep, list(range(k)), spec=spec, recipe=recipe, n_classes=10, root_seed=0, steps=steps,
                    backend="vmap", device=device, on_checkpoint=on_checkpoint)
    except _Stop:
        pass
    first = lambda key: next((e for e in log if e[key] >= target), None)
    out = {"K": k, "width": width, "n_train": len(y), "n_test": len(yt), "target": target,
           "recipe": {"epochs": epochs, "batch_size": 512, "optimizer": "sgd nesterov 0.9", "lr": 0.2,
                      "weight_decay": 5e-4, "warmup_epochs": 1, "schedule": "cosine", "label_smoothing": 0.2,
                      "augmentation": "mirror + shift 2", "precision": precision},
           "epochs": log}
    for key, label in (("acc_mean", "mean"), ("acc_min", "every")):
        hit = first(key)
        out[f"seconds_per_model_to_target_{label}_model"] = None if hit is None else round(hit["train_s"] / k, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, any device: checks the code paths")
    ap.add_argument("--k", type=int, default=8, help="models per group in the throughput part")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=240.0, help="no new work is started after this")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--cifar10", default=None, help="CIFAR-10 folder or file (load_dataset's root)")
    ap.add_argument("--airbench-k", type=int, default=8)
    ap.add_argument("--airbench-epochs", type=int, default=20)
    args = ap.parse_args()
    if not args.smoke and not (args.device == "cuda" and torch.cuda.is_available()):
        print(json.dumps({"skipped": "benchmarks/gpu_models.py needs a CUDA GPU (torch.cuda.is_available() is "
                                     "False); use --smoke --device cpu to check that it runs"}))
        return
    device = as_device(args.device)
    start = time.perf_counter()
    deadline = lambda fraction: start + fraction * args.budget_s
    out = {"machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "smoke": args.smoke,
                       "peak_bf16_dense_tflops": H200_BF16_DENSE_TFLOPS}}
    size = dict(k=2, batch=8, steps=2) if args.smoke else dict(k=args.k, batch=128, steps=10)
    pops = [Population(name, spec, device=device, runs={}, **size)
            for name, spec in (SMOKE_ARCHS if args.smoke else ARCHS).items()]
    for pop in pops:                                   # 1. throughput, eager variants, interleaved rounds
        pop.measure(VARIANTS, 1 if args.smoke else args.rounds, deadline(0.35))
        print(json.dumps({pop.name: pop.runs}), file=sys.stderr, flush=True)
    if not args.no_compile:                            # 2. compiled variants (their first epoch compiles)
        for pop in pops:
            pop.measure(COMPILED, 1, deadline(0.6))
    data = load_cifar10(args.cifar10, 1000 if args.smoke else None)     # 3. airbench to 93%
    out["airbench"] = {"skipped": "CIFAR-10 not found (--cifar10 PATH)"} if data is None else \
        airbench_time_to_target(data, 2 if args.smoke else args.airbench_k, 2 if args.smoke else args.airbench_epochs,
                                0.93, 8 if args.smoke else 64, device, deadline(0.92),
                                "bf16" if device.type == "cuda" else "fp32")
    print(json.dumps(out["airbench"]), file=sys.stderr, flush=True)
    out["throughput"] = [pop.row() for pop in pops]
    out["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
