"""A model depends only on (seed, model index): trained in groups of 7, 32 or 64 it comes out bit
for bit the same (weights and logits, ``torch.equal``), the last model of a partial group included,
for the default CPU backends (``wide`` MLPs, ``loop`` CNNs) and for DP-SGD."""

import numpy as np
import pytest
import torch

from privaudit.config import DPConfig
from privaudit.data.datasets import load_dataset
from privaudit.data.membership import make_keep
from privaudit.models.architectures import ArchSpec
from privaudit.models.group import LANE, WideMLP, pad_stack, unpad
from privaudit.signals.query import query_logits
from privaudit.training.dp import train_group_dp
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group, training_threads

GROUP_SIZES = (7, 32, 64)


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return torch.from_numpy(ds.x), torch.from_numpy(ds.y)


def _train_in_groups(train_fn, x, y, n_models, group_size, **kw):
    """Models ``0..n_models-1`` trained ``group_size`` at a time: stacked state, the pipeline's
    query logits ``[M, n, A, C]`` and the group's own stacked forward ``[M, n, C]``."""
    keep = make_keep(n_models, len(y), seed=0)
    steps = steps_per_epoch(keep, kw["recipe"].batch_size)
    states, queried, stacked = [], [], []
    for start in range(0, n_models, group_size):
        ids = list(range(start, min(start + group_size, n_models)))
        group = train_fn(x, y, keep, ids, root_seed=5, steps=steps, **kw)
        states.append(group.state())
        queried.append(query_logits(group, x, [(False, 0, 0), (True, 1, 0)]))
        with torch.no_grad(), training_threads():
            stacked.append(group.forward(x))
    state = {n: torch.cat([s[n] for s in states]) for n in states[0]}
    return state, np.concatenate(queried), torch.cat(stacked)


def _assert_bit_identical(runs, n_models):
    (ref_size, (ref_state, ref_queried, ref_stacked)), *others = runs.items()
    for size, (state, queried, stacked) in others:
        for m in range(n_models):
            for name, t in ref_state.items():
                assert torch.equal(state[name][m], t[m]), (f"model {m}: {name} differs between groups of "
                                                           f"{size} and {ref_size}")
            assert np.array_equal(queried[m], ref_queried[m]), f"model {m}: query logits, groups of {size}"
            assert torch.equal(stacked[m], ref_stacked[m]), f"model {m}: stacked logits, groups of {size}"


@pytest.mark.parametrize("spec, recipe", [
    (ArchSpec("mlp", (32,)), Recipe(epochs=3, batch_size=32, lr=3e-3)),                    # the defaults: relu, adam
    (ArchSpec("mlp", (13, 7), activation="gelu"),                                         # odd widths and batch,
     Recipe(epochs=2, batch_size=27, optimizer="sgd", lr=0.05, weight_decay=1e-3, mirror=True, shift=1)),
], ids=["relu-adam", "gelu-sgd-odd-shapes"])
def test_wide_mlp_is_bit_identical_in_groups_of_7_32_64(digits, spec, recipe):
    x, y = digits[0][:500], digits[1][:500]
    n_models = 60          # groups of 7: eight full and one of 4; of 32: 32 + 28; of 64: one of 60
    runs = {k: _train_in_groups(train_group, x, y, n_models, k, spec=spec, recipe=recipe, n_classes=10,
                                backend="auto") for k in GROUP_SIZES}
    assert runs[7][0]["1.weight"].shape[0] == n_models
    _assert_bit_identical(runs, n_models)


def test_loop_cnn_is_bit_identical_in_groups_of_7_32_64(digits):
    x, y = digits[0][:64], digits[1][:64]
    spec = ArchSpec("cnn", width=4, depth=2)
    recipe = Recipe(epochs=2, batch_size=16, lr=3e-3, mirror=True, shift=1)
    n_models = 36
    runs = {k: _train_in_groups(train_group, x, y, n_models, k, spec=spec, recipe=recipe, n_classes=10,
                                backend="loop") for k in GROUP_SIZES}
    _assert_bit_identical(runs, n_models)


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_dp_sgd_is_bit_identical_in_groups_of_7_32_64(digits, sampling):
    """Poisson batches differ in size between models; a model must not see its group-mates' sizes."""
    x, y = digits[0][:300], digits[1][:300]
    dp = DPConfig(noise_multiplier=0.8, max_grad_norm=1.0, sampling=sampling)
    recipe = Recipe(epochs=1, batch_size=27, lr=3e-3)
    n_models = 40
    runs = {k: _train_in_groups(train_group_dp, x, y, n_models, k, dp=dp, spec=ArchSpec("mlp", (13,)),
                                recipe=recipe, n_classes=10) for k in GROUP_SIZES}
    _assert_bit_identical(runs, n_models)


def test_loop_cnn_under_dp_is_bit_identical_alone_and_in_a_group(digits):
    x, y = digits[0][:48], digits[1][:48]
    dp = DPConfig(noise_multiplier=0.8, max_grad_norm=1.0)
    kw = dict(dp=dp, spec=ArchSpec("cnn", width=4, depth=2), recipe=Recipe(epochs=1, batch_size=8, lr=3e-3, shift=1),
              n_classes=10, backend="loop")
    runs = {k: _train_in_groups(train_group_dp, x, y, 5, k, **kw) for k in (1, 2, 5)}
    _assert_bit_identical(runs, 5)


def test_every_models_block_starts_on_the_same_alignment():
    """The mechanism: model k's parameters start at a multiple of LANE elements, 64-byte aligned,
    so no model's elements fall in a kernel's scalar tail or on another alignment than model 0's."""
    stacked = torch.randn(7, 10, 3)
    buf = pad_stack(stacked)
    assert buf.shape == (7, LANE) and buf.data_ptr() % 64 == 0
    assert torch.equal(unpad(buf, (10, 3)), stacked) and not buf[:, 30:].any()
    assert all((unpad(buf, (10, 3))[k].data_ptr() - buf.data_ptr()) % 256 == 0 for k in range(7))
    assert all(unpad(buf, (10, 3))[k].data_ptr() % 64 == 0 for k in range(7))
    group = WideMLP(ArchSpec("mlp", (5,)), (13,), 3, {"1.weight": torch.randn(7, 5, 13), "1.bias": torch.randn(7, 5),
                                                      "3.weight": torch.randn(7, 3, 5), "3.bias": torch.randn(7, 3)})
    assert group.rows(27, torch.float32) % 16 == 0 and group.rows(27, torch.float32) >= 27
    out = group.forward_each(torch.randn(7, 27, 13))
    assert out.shape == (7, 27, 3)
