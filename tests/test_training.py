"""Population training: membership designs, augmentation, backends agree, grouping invariance."""

import numpy as np
import pytest
import torch

from privaudit.data.membership import make_keep
from privaudit.errors import ConfigError
from privaudit.models.architectures import ArchSpec
from privaudit.models.group import VmapGroup, WideMLP, group_from_state, stack_states
from privaudit.training.augment import query_grid, shift_and_mirror
from privaudit.training.recipe import Recipe
from privaudit.models.architectures import init_model
from privaudit.training.trainer import epoch_plan, steps_per_epoch, train_group, training_threads


def test_balanced_design_puts_each_sample_in_exactly_half():
    keep = make_keep(16, 500, pkeep=0.5, seed=3)
    assert keep.shape == (16, 500) and keep.dtype == bool
    assert (keep.sum(axis=0) == 8).all()
    assert not np.array_equal(keep, make_keep(16, 500, seed=4))
    assert np.array_equal(keep, make_keep(16, 500, seed=3))


def test_bernoulli_and_paired_designs_grow_without_changing_existing_models():
    b8, b12 = make_keep(8, 2000, design="bernoulli", pkeep=0.3), make_keep(12, 2000, design="bernoulli", pkeep=0.3)
    assert np.array_equal(b8, b12[:8]) and abs(b8.mean() - 0.3) < 0.02
    p = make_keep(6, 100, design="paired")
    assert (p.sum(axis=0) == 3).all() and np.array_equal(p[0], ~p[1])


@pytest.mark.parametrize("kwargs, msg", [({"n_models": 1}, "at least 2 models"), ({"pkeep": 1.0}, "pkeep"),
                                         ({"design": "nope"}, "unknown membership design")])
def test_bad_designs_are_rejected(kwargs, msg):
    args = {"n_models": 4, "n_samples": 10} | kwargs
    with pytest.raises(ConfigError, match=msg):
        make_keep(**args)


def test_shift_and_mirror_matches_hand_computed_reflect_padding():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = shift_and_mirror(x, torch.tensor([False]), torch.tensor([1]), torch.tensor([0]), pad=1)
    # shifting the crop window right by one column: row [0,1,2,3] -> [1,2,3,2] (reflect)
    assert out[0, 0, 0].tolist() == [1.0, 2.0, 3.0, 2.0]
    flipped = shift_and_mirror(x, torch.tensor([True]), torch.tensor([0]), torch.tensor([0]), pad=0)
    assert flipped[0, 0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    assert len(query_grid(mirror=True, shift=4, stride=4)) == 18


def test_epoch_plan_depends_only_on_seed_and_model():
    rec = Recipe(batch_size=8, mirror=True, shift=2)
    members = np.arange(0, 100, 3)
    a, b = epoch_plan(0, 5, 2, members, 4, rec), epoch_plan(0, 5, 2, members, 4, rec)
    assert np.array_equal(a.idx, b.idx) and np.array_equal(a.dx, b.dx)
    assert set(a.idx.ravel()) <= set(members)
    assert not np.array_equal(a.idx, epoch_plan(0, 6, 2, members, 4, rec).idx)


def _toy(n=240, d=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(1)).long()
    return x, y


def test_wide_and_loop_backends_train_the_same_models():
    x, y = _toy()
    keep = make_keep(4, len(y), seed=0)
    spec, rec = ArchSpec("mlp", (16,)), Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05)
    steps = steps_per_epoch(keep, 16)
    wide = train_group(x, y, keep, [0, 1, 2, 3], spec=spec, recipe=rec, n_classes=3, root_seed=1, steps=steps,
                       backend="wide")
    loop = train_group(x, y, keep, [0, 1, 2, 3], spec=spec, recipe=rec, n_classes=3, root_seed=1, steps=steps,
                       backend="loop")
    for name, t in wide.state().items():
        assert torch.allclose(t, loop.state()[name], atol=1e-5), name
    # and the models actually moved away from their initialisation
    init = train_group(x, y, keep, [0], spec=spec, recipe=Recipe(epochs=1, batch_size=16, lr=0.0, optimizer="sgd"),
                       n_classes=3, root_seed=1, steps=steps, backend="wide")
    assert not torch.allclose(init.state()["1.weight"][0], wide.state()["1.weight"][0])


def test_grouping_does_not_change_a_model():
    x, y = _toy(seed=2)
    keep = make_keep(4, len(y), seed=1)
    spec, rec = ArchSpec("mlp", (16,)), Recipe(epochs=3, batch_size=16, lr=0.01)
    steps = steps_per_epoch(keep, 16)
    together = train_group(x, y, keep, [0, 1, 2, 3], spec=spec, recipe=rec, n_classes=3, root_seed=0, steps=steps)
    alone = train_group(x, y, keep, [2], spec=spec, recipe=rec, n_classes=3, root_seed=0, steps=steps)
    for name, t in together.state().items():
        assert torch.equal(t[2], alone.state()[name][0]), name


def test_cnn_loop_backend_trains_with_augmentation_and_checkpoints():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=g)
    y = torch.randint(0, 2, (64,), generator=g)
    x[y == 1, :, :4] += 2.0
    keep = make_keep(2, 64, seed=0)
    seen = {}
    rec = Recipe(epochs=4, batch_size=8, lr=0.01, mirror=True, shift=1, checkpoints=(2,))
    group = train_group(x, y, keep, [0, 1], spec=ArchSpec("cnn", width=4, depth=2), recipe=rec, n_classes=2,
                        root_seed=0, steps=steps_per_epoch(keep, 8),
                        on_checkpoint=lambda e, s: seen.setdefault(e, s))
    assert list(seen) == [2] and seen[2]["0.weight"].shape[0] == 2
    with torch.no_grad():
        acc = (group.forward(x).argmax(-1) == y).float().mean().item()
    assert acc > 0.7
    rebuilt = group_from_state(ArchSpec("cnn", width=4, depth=2), (1, 8, 8), 2, group.state(), "loop")
    with torch.no_grad():
        assert torch.allclose(rebuilt.forward(x), group.forward(x), atol=1e-6)


def test_wide_mlp_matches_its_single_models():
    x, y = _toy()
    keep = make_keep(3, len(y), seed=0)
    group = train_group(x, y, keep, [0, 1, 2], spec=ArchSpec("mlp", (8, 8)), recipe=Recipe(epochs=1, batch_size=16),
                        n_classes=3, root_seed=0, steps=2)
    assert isinstance(group, WideMLP)
    with torch.no_grad():
        stacked = group.forward(x)
        singles = torch.stack([m(x) for m in group.models()])
    assert torch.allclose(stacked, singles, atol=1e-5)


@pytest.mark.parametrize("hidden", [(8,), (7, 5)])   # (7, 5): weight blocks not 64-byte multiples
def test_wide_mlp_input_derivatives_match_vmap_up_to_second_order(hidden):
    """The curvature estimators differentiate ``forward_each`` twice w.r.t. its input: the stacked
    layer's custom backward must be differentiable and agree with the ``vmap`` backend."""
    spec = ArchSpec("mlp", hidden, activation="tanh")
    state = stack_states([init_model(spec, (13,), 3, seed=s) for s in range(3)])
    wide, vmap = WideMLP(spec, (13,), 3, state), VmapGroup(spec, (13,), 3, state)
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(3, 27, 13, generator=g), torch.randn(3, 27, 13, generator=g)
    y = torch.randint(0, 3, (3, 27), generator=g)
    out = []
    for group in (wide, vmap):
        xk = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(group.forward_each(xk).reshape(-1, 3), y.reshape(-1), reduction="sum")
        (grad,) = torch.autograd.grad(loss, xk, create_graph=True)
        (hv,) = torch.autograd.grad((grad * v).sum(), xk)
        out.append((grad.detach(), hv))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-6) and torch.allclose(out[0][1], out[1][1], atol=1e-5)
    # and the parameter gradient of the custom layer matches autograd's through vmap
    for group in (wide, vmap):
        group.zero_grad()
        torch.nn.functional.cross_entropy(group.forward_each(x).reshape(-1, 3), y.reshape(-1)).backward()
    for i, name in enumerate(wide.linear_names):
        grad_w = wide.weights[i].grad[:, :wide.weight(i)[0].numel()].reshape(3, *wide.shapes[i])
        grad_v = vmap.stacked[vmap.names.index(f"{name}.weight")].grad[:, :grad_w[0].numel()]
        assert torch.allclose(grad_w.transpose(1, 2).reshape(3, -1), grad_v, atol=1e-6), name
        assert not wide.weights[i].grad[:, grad_w[0].numel():].any()        # the padding gets no gradient


def test_training_pins_one_thread_and_restores_the_callers():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []
        x, y = _toy()
        keep = make_keep(2, len(y), seed=0)
        train_group(x, y, keep, [0], spec=ArchSpec("mlp", (8,)), recipe=Recipe(epochs=1, batch_size=16), n_classes=3,
                    root_seed=0, steps=2, on_progress=lambda n: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        with training_threads("cuda"):           # a GPU run keeps the caller's threads
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
