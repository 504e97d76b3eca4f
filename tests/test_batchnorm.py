"""BatchNorm models are whole models: running statistics are trained from each model's own batches,
saved and restored with the parameters, used (eval mode) by queries and curvature, grouping
invariant, and refused by DP-SGD with a clear message."""

import numpy as np
import pytest
import torch

from privaudit.config import DPConfig
from privaudit.data.datasets import load_dataset
from privaudit.data.membership import make_keep
from privaudit.errors import ConfigError
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.models.group import VmapGroup, group_from_state, stack_states
from privaudit.signals.curvature import zero_order_curvature
from privaudit.signals.query import query_logits
from privaudit.training.dp import train_group_dp
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

RESNET = ArchSpec("resnet", depth=18, width=4)
WRN = ArchSpec("wrn", depth=10, widen=1)
RECIPE = Recipe(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, mirror=True, shift=1)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits", n=256, seed=0)
    return torch.from_numpy(ds.x), torch.from_numpy(ds.y)


def _train(x, y, ids, spec=RESNET, backend="loop", n_models=4, recipe=RECIPE):
    keep = make_keep(n_models, len(y), seed=0)
    return train_group(x, y, keep, ids, spec=spec, recipe=recipe, n_classes=10, root_seed=1,
                       steps=steps_per_epoch(keep, recipe.batch_size), backend=backend)


def _running(state):
    return {n: t for n, t in state.items() if "running" in n or "num_batches" in n}


@pytest.mark.parametrize("spec", [RESNET, WRN], ids=["resnet", "wrn"])
def test_running_statistics_are_trained_saved_and_restored(digits, spec, tmp_path):
    x, y = digits
    group = _train(x, y, [0, 1], spec=spec)
    state = group.state()
    stats = _running(state)
    assert stats, "BatchNorm running statistics missing from the stacked state"
    fresh = stack_states([init_model(spec, (1, 8, 8), 10, seed=0)] * 2)
    moved = [n for n in stats if n.endswith("running_mean") and not torch.equal(stats[n], fresh[n])]
    assert moved, "training did not update the running statistics"
    assert all(int(t[0]) == steps_per_epoch(make_keep(4, len(y), seed=0), 32)
               for n, t in stats.items() if n.endswith("num_batches_tracked"))
    torch.save(state, tmp_path / "g.pt")
    restored = torch.load(tmp_path / "g.pt", weights_only=True)
    for backend in ("loop", "vmap"):
        again = group_from_state(spec, (1, 8, 8), 10, restored, backend)
        assert all(torch.equal(again.state()[n], t) for n, t in state.items()), backend
        np.testing.assert_allclose(query_logits(again, x, [(False, 0, 0)]), query_logits(group, x, [(False, 0, 0)]),
                                   rtol=1e-4, atol=1e-4)


def test_grouping_invariance_holds_for_batchnorm_models(digits):
    x, y = digits
    alone = [_train(x, y, [m]).state() for m in range(3)]
    together = _train(x, y, [0, 1, 2]).state()
    for m in range(3):
        for n, t in together.items():
            assert torch.equal(t[m], alone[m][n][0]), f"model {m}: {n} depends on its group"


def test_batchnorm_statistics_never_leak_across_models(digits):
    """Two models under vmap, one fed inputs shifted by +50: each model's running mean follows its
    own inputs only, and a model's output does not change when its group-mate's batch changes."""
    x, _ = digits
    models = [init_model(RESNET, (1, 8, 8), 10, seed=s) for s in (0, 1)]
    group = VmapGroup(RESNET, (1, 8, 8), 10, stack_states(models)).train()
    xb = x[:32]
    with torch.no_grad():
        out = group.forward_each(torch.stack([xb, xb + 50.0]))
        mate = group.forward_each(torch.stack([xb, xb - 7.0]))
    stem_mean = group.buffers_by_name()["stem.1.running_mean"]
    single = models[0].train()
    with torch.no_grad():
        reference = single(xb)
    assert stem_mean[1].abs().mean() > 20 * stem_mean[0].abs().mean(), "model 0's statistics saw model 1's batch"
    torch.testing.assert_close(out[0], reference, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mate[0], out[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["loop", "vmap"])
def test_queries_and_curvature_run_in_eval_mode(digits, backend):
    """In eval mode a sample's logits do not depend on the rest of its batch and the running
    statistics are not touched; in train mode both would fail."""
    x, y = digits
    group = group_from_state(RESNET, (1, 8, 8), 10, _train(x, y, [0, 1]).state(), backend)
    group.train()                       # queries and curvature must switch to eval themselves
    before = {n: t.clone() for n, t in _running(group.state()).items()}
    whole = query_logits(group, x[:64], [(False, 0, 0)])
    parts = np.concatenate([query_logits(group, x[i:min(i + 5, 64)], [(False, 0, 0)]) for i in range(0, 64, 5)], axis=1)
    np.testing.assert_allclose(whole, parts, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(t, group.state()[n]) for n, t in before.items()), "a query updated running statistics"
    group.eval()
    curv = lambda xs, ys, ids: zero_order_curvature(group.forward, xs, ys, n_models=2, h=1e-2, rounds=2, seed=0,
                                                    sample_ids=ids)
    with torch.no_grad():
        full = curv(x[:16], y[:16], torch.arange(16))
        half = curv(x[8:16], y[8:16], torch.arange(8, 16))
    torch.testing.assert_close(full[:, 8:], half, rtol=1e-4, atol=1e-6)
    assert all(torch.equal(t, group.state()[n]) for n, t in before.items()), "curvature updated running statistics"


def test_dp_sgd_refuses_batchnorm_and_trains_groupnorm(digits):
    x, y = digits
    keep = make_keep(2, len(y), seed=0)
    dp = DPConfig(noise_multiplier=1.0)
    kw = dict(recipe=Recipe(epochs=1, batch_size=32, optimizer="sgd", lr=0.05), n_classes=10, root_seed=0,
              steps=2, dp=dp)
    with pytest.raises(ConfigError, match="BatchNorm.*GroupNorm.*model.norm: group"):
        train_group_dp(x, y, keep, [0], spec=RESNET, **kw)
    group = train_group_dp(x, y, keep, [0, 1], spec=ArchSpec("resnet", depth=18, width=4, norm="group"), **kw)
    assert all(torch.isfinite(t).all() for t in group.state().values())


def test_dp_sgd_without_noise_or_clipping_is_plain_sgd_for_a_groupnorm_resnet(digits, float64):
    """DP-SGD (noise 0, huge C, shuffled batches), the ``loop`` and the ``vmap`` backends train the
    same GroupNorm ResNet for the same seed (per-sample gradients summed = the batch gradient).
    In float64: a tiny GroupNorm net is ill-conditioned (groups of 2 channels after a ReLU can have
    almost no variance), and its float32 gradients differ from float64 by up to ~3% on some batches,
    whichever backend computes them."""
    x, y = digits
    x = x.double()
    spec = ArchSpec("resnet", depth=18, width=4, norm="group")
    keep = make_keep(2, len(y), seed=0)
    rec = Recipe(epochs=1, batch_size=32, optimizer="sgd", lr=0.05)
    kw = dict(spec=spec, recipe=rec, n_classes=10, root_seed=4, steps=3)
    init = stack_states([init_model(spec, (1, 8, 8), 10, seed=0)] * 2)
    private = train_group_dp(x, y, keep, [0, 1], dp=DPConfig(noise_multiplier=0.0, max_grad_norm=1e6,
                                                             sampling="shuffle"), **kw).state()
    for backend in ("loop", "vmap"):
        plain = train_group(x, y, keep, [0, 1], backend=backend, **kw).state()
        for n, t in plain.items():
            gap = ((private[n] - t).abs().max() / t.abs().max()).item()
            assert gap < 1e-6, f"{backend}: {n} differs by {gap:.1e} of its largest entry"
    assert not torch.allclose(private["stem.0.weight"], init["stem.0.weight"], atol=1e-3)   # it trained


def test_white_box_curvature_of_a_batchnorm_model_agrees_across_backends(digits):
    from privaudit.signals.curvature import hutchinson_trace

    x, y = digits
    state = _train(x, y, [0, 1]).state()
    values = []
    for backend in ("loop", "vmap"):
        group = group_from_state(RESNET, (1, 8, 8), 10, state, backend).eval().requires_grad_(False)
        values.append(hutchinson_trace(group.forward_each, x[:16], y[:16], n_models=2, probes=2, seed=0))
    torch.testing.assert_close(values[0], values[1], rtol=1e-3, atol=1e-5)
    assert torch.isfinite(values[0]).all() and values[0].abs().sum() > 0
