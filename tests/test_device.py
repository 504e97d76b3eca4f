"""Devices: ``training.device`` resolves with clear errors; on a GPU (skipped without one) every
backend, DP-SGD, queries, curvature and a whole run give the CPU's models and metrics."""

import numpy as np
import pytest
import torch

from privaudit.config import parse_config
from privaudit.data.membership import make_keep
from privaudit.errors import ConfigError
from privaudit.models.architectures import ArchSpec
from privaudit.models.group import group_from_state
from privaudit.device import resolve_device
from privaudit.signals.query import query_logits
from privaudit.training.augment import query_grid
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import choose_backend, steps_per_epoch, train_group

CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def test_device_names_resolve_or_fail_clearly():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            resolve_device("cuda")


def test_auto_backend_depends_on_architecture_and_device():
    cnn, mlp = ArchSpec("cnn", width=4), ArchSpec("mlp", (8,))
    assert choose_backend(mlp, "auto", "cpu") == choose_backend(mlp, "auto", "cuda") == "wide"
    assert choose_backend(cnn, "auto", "cpu") == "loop"
    assert choose_backend(cnn, "auto", "cuda") == "vmap"


def test_device_is_an_execution_setting_not_a_training_one():
    base = {"name": "d", "data": {"name": "digits"}, "training": {"device": "cpu"}}
    a = parse_config(base)
    b = parse_config(base | {"training": {"device": "cuda"}})
    assert a.training_fields() == b.training_fields()   # a CPU run may resume on a GPU


def _images(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x[:, :, :3] += y.view(-1, 1, 1, 1).float()
    return x, y


@needs_gpu
@pytest.mark.parametrize("arch, backend", [("mlp", "wide"), ("cnn", "vmap"), ("cnn", "loop")])
def test_gpu_training_gives_the_cpu_models(arch, backend):
    x, y = _images()
    keep = make_keep(4, len(y), seed=0)
    spec = ArchSpec("mlp", (16,)) if arch == "mlp" else ArchSpec("cnn", width=4, depth=2)
    rec = Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, mirror=arch == "cnn", shift=1 if arch == "cnn" else 0)
    kw = dict(spec=spec, recipe=rec, n_classes=3, root_seed=1, steps=steps_per_epoch(keep, 16), backend=backend)
    cpu = train_group(x, y, keep, [0, 1, 2, 3], device="cpu", **kw)
    gpu = train_group(x, y, keep, [0, 1, 2, 3], device="cuda", **kw)
    assert all(t.device.type == "cuda" for t in gpu.state().values())
    for name, t in cpu.state().items():
        assert torch.allclose(t, gpu.state()[name].cpu(), atol=1e-4), name


@needs_gpu
def test_gpu_queries_match_cpu_queries():
    x, y = _images()
    keep = make_keep(2, len(y), seed=0)
    spec = ArchSpec("cnn", width=4, depth=2)
    group = train_group(x, y, keep, [0, 1], spec=spec, recipe=Recipe(epochs=1, batch_size=16), n_classes=3,
                        root_seed=0, steps=3)
    grid = query_grid(mirror=True, shift=1, stride=1)
    on_cpu = query_logits(group, x, grid)
    on_gpu = query_logits(group_from_state(spec, (1, 8, 8), 3, group.state(), "vmap").to("cuda"), x, grid)
    assert on_gpu.shape == on_cpu.shape == (2, len(y), len(grid), 3)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)


@needs_gpu
def test_gpu_dp_sgd_runs_and_matches_cpu():
    from privaudit.config import DPConfig
    from privaudit.training.dp import train_group_dp

    x, y = _images()
    keep = make_keep(2, len(y), seed=0)
    kw = dict(dp=DPConfig(noise_multiplier=1.0), spec=ArchSpec("mlp", (16,)), recipe=Recipe(epochs=1, batch_size=16, lr=0.05,
              optimizer="sgd"), n_classes=3, root_seed=0, steps=3)
    cpu = train_group_dp(x, y, keep, [0, 1], device="cpu", **kw)
    gpu = train_group_dp(x, y, keep, [0, 1], device="cuda", **kw)
    for name, t in cpu.state().items():
        assert torch.allclose(t, gpu.state()[name].cpu(), atol=1e-4), name


@needs_gpu
def test_whole_run_on_gpu_matches_cpu(tmp_path):
    from privaudit.pipeline import run_all
    from privaudit.runtime.run import Layout, Run

    base = {"name": "dev", "seed": 0, "data": {"name": "digits", "n": 400},
            "population": {"n_models": 4, "models_per_group": 2}, "model": {"arch": "cnn", "width": 4, "depth": 2},
            "training": {"epochs": 3, "batch_size": 32, "lr": 0.01, "workers": 1},
            "queries": {"shift": 1}, "curvature": {"rounds": 2, "dtype": "float64"},
            "attacks": ["loss", "lira_online"], "evaluation": {"targets": 2, "bootstrap": 0}}
    runs, stores = {}, {}
    for device in ("cpu", "cuda"):
        cfg = parse_config(base | {"out": str(tmp_path / device)} |
                           {"training": base["training"] | {"device": device}})
        runs[device] = run_all(cfg)
        stores[device] = Run(cfg.run_dir)
    a = stores["cpu"].load_npy(Layout.signal("logits", 3))
    b = stores["cuda"].load_npy(Layout.signal("logits", 3))
    np.testing.assert_allclose(a, b, atol=1e-3)
    ca = stores["cpu"].load_npy(Layout.signal("curvature", 3))
    cb = stores["cuda"].load_npy(Layout.signal("curvature", 3))
    # float64: the devices' fp32 roundings would dominate the finite differences of these barely
    # trained models; the models themselves differ by float rounding only
    assert np.corrcoef(np.log(ca.ravel()), np.log(cb.ravel()))[0, 1] > 0.99
    for name in ("loss", "lira_online"):
        auc = {d: r[name].summary["auc"]["mean"] for d, r in runs.items()}
        assert abs(auc["cpu"] - auc["cuda"]) < 0.01, (name, auc)
