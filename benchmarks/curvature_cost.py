"""Measured cost of the input-loss-curvature estimators for a group of K models.

Per workload (the MNIST CNN of ``configs/mnist_curvature.yaml`` and the digits MLP of
``configs/digits.yaml``), for one query (augmentation) of n samples and K models, single thread
(as in a pipeline worker), median of ``--repeats`` runs:

* ``forward``: one plain forward pass of every sample through every model (the unit of cost), in
  chunks of the size the zero-order pass feeds the models;
* ``zero_order`` (h=1e-3, ``--rounds``), fp32 and fp64: the black-box estimator exactly as the
  curvature stage calls it (``group.forward``, shared inputs, ``zo_batch_size``). The forward is wrapped by a counter,
  so ``forwards_per_sample`` is *measured* (samples fed to each model / n), not computed;
  the Curvature Clues estimator (Ravikumar, Soufleri, Roy, NeurIPS 2024) needs 4 loss queries
  per round;
* ``hutchinson`` (``--rounds`` probes, exact HVPs by double backward; gives tr(H) and tr(H^2)).

``forward_equivalents`` = seconds / (seconds of one forward pass over the same samples and models),
per sample and query. Output: JSON on stdout (``--out`` also writes it to a file).

    nice -n 10 python benchmarks/curvature_cost.py --out benchmarks/results/curvature_cost.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from privaudit.data.datasets import load_dataset
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.models.group import group_from_state, stack_states
from privaudit.runtime.allocator import apply_malloc_fix
from privaudit.runtime.plan import zo_batch_size
from privaudit.signals import curvature as est
from privaudit.training.trainer import choose_backend

from json_output import emit  # benchmarks/json_output.py

MNIST_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


class CountingForward:
    """``group.forward`` that counts the samples each model is fed."""

    def __init__(self, group):
        self.group, self.samples = group, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += x.shape[0]
        return self.group.forward(x)


def make_group(spec: ArchSpec, x: torch.Tensor, n_classes: int, k: int, dtype: torch.dtype):
    """K freshly initialised models (cost does not depend on the weights) on the run's backend."""
    inits = [init_model(spec, tuple(x.shape[1:]), n_classes, seed=m) for m in range(k)]
    group = group_from_state(spec, tuple(x.shape[1:]), n_classes, stack_states(inits), choose_backend(spec))
    return group.eval().to(dtype).requires_grad_(False)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(name: str, spec: ArchSpec, x: torch.Tensor, y: torch.Tensor, *, k: int, rounds: int,
            h: float, repeats: int) -> dict:
    n = len(y)
    out = {"workload": name, "arch": spec.kind, "K": k, "n": n, "input_shape": list(x.shape[1:]),
           "rounds": rounds, "h": h, "backend": choose_backend(spec)}
    for dtype in (torch.float32, torch.float64):
        tag = "fp32" if dtype == torch.float32 else "fp64"
        group = make_group(spec, x, 10, k, dtype)
        xd = x.to(dtype)

        chunk = 4 * zo_batch_size(spec.kind)   # the forward batch the zero-order pass uses

        def fwd():
            with torch.no_grad():
                for s in range(0, n, chunk):
                    group.forward(xd[s:s + chunk])

        fwd()  # warm-up
        t_fwd = timed(fwd, repeats)
        counter = CountingForward(group)
        zo = lambda: est.zero_order_curvature(counter, xd, y, n_models=k, h=h, rounds=rounds, dtype=dtype,
                                              batch_size=zo_batch_size(spec.kind), loss_fn=est.stable_cross_entropy)
        zo()
        counter.samples = 0
        t_zo = timed(zo, repeats)
        per_run = counter.samples / repeats
        out[f"forward_{tag}"] = {"seconds": t_fwd, "us_per_model_sample": 1e6 * t_fwd / (k * n), "batch": chunk}
        out[f"zero_order_{tag}"] = {
            "seconds": t_zo, "us_per_model_sample": 1e6 * t_zo / (k * n),
            "forwards_per_sample": per_run / n, "forwards_per_sample_per_round": per_run / n / rounds,
            "forward_equivalents": t_zo / t_fwd}
        if dtype == torch.float32:
            hut = lambda: est.hutchinson(group.forward_each, xd, y, n_models=k, probes=rounds, dtype=dtype,
                                         loss_fn=est.stable_cross_entropy)
            hut()
            t_h = timed(hut, repeats)
            out["hutchinson_fp32"] = {"seconds": t_h, "us_per_model_sample": 1e6 * t_h / (k * n),
                                      "forward_equivalents": t_h / t_fwd,
                                      "forward_equivalents_per_probe": t_h / t_fwd / rounds}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=8, help="models per group")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--h", type=float, default=1e-3)
    p.add_argument("--n-mnist", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    apply_malloc_fix()
    digits = load_dataset("digits")
    mnist = load_dataset("mnist", root=str(MNIST_ROOT), n=a.n_mnist, seed=0)
    loads = [("cnn_mnist (width 16)", ArchSpec("cnn", width=16), mnist),
             ("mlp_digits (hidden 128)", ArchSpec("mlp", (128,)), digits)]
    results = []
    for name, spec, ds in loads:
        x, y = torch.from_numpy(np.ascontiguousarray(ds.x, np.float32)), torch.from_numpy(ds.y)
        results.append(measure(name, spec, x, y, k=a.k, rounds=a.rounds, h=a.h, repeats=a.repeats))
    doc = {"benchmark": "curvature_cost", "threads": a.threads, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "per_query": True, "results": results}
    emit(doc, a.out)


if __name__ == "__main__":
    main()
