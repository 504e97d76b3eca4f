"""DP-SGD in the stacked ensemble: per-sample gradients and clipping per model, noise scale,
equivalence with plain SGD, grouping invariance, and the Opacus accountant."""

import warnings

import numpy as np
import pytest
import torch

from privaudit.config import DPConfig
from privaudit.data.membership import make_keep
from privaudit.models.architectures import ArchSpec, build_model, init_model
from privaudit.models.group import stack_states
from privaudit.training import dp as dpsgd
from privaudit.training.recipe import Recipe
from privaudit.training.trainer import steps_per_epoch, train_group

SPEC = ArchSpec("mlp", (12,))


def _toy(n=160, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(1)).long()
    return x, y


def _stacked(k=3, d=6, classes=3, spec=SPEC):
    return stack_states([init_model(spec, (d,), classes, seed=s) for s in range(k)])


def _psg(params, x, y, d=6, classes=3):
    base = build_model(SPEC, (d,), classes).to("meta")
    return dpsgd.per_sample_grads(base, params, x, y)


def test_per_sample_grads_match_autograd_per_model_and_sample():
    params = _stacked()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 5, 6, generator=g), torch.randint(0, 3, (3, 5), generator=g)
    grads = _psg(params, x, y)
    for k in range(3):
        model = build_model(SPEC, (6,), 3)
        model.load_state_dict({n: t[k] for n, t in params.items()})
        for i in range(5):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x[k, i:i + 1]), y[k, i:i + 1]).backward()
            for n, p in model.named_parameters():
                assert torch.allclose(grads[n][k, i], p.grad, atol=1e-6), (k, i, n)


def test_clipping_bounds_every_per_sample_norm_by_c_for_every_model():
    params = _stacked()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 40, 6, generator=g) * torch.tensor([0.05, 1.0, 30.0]).view(3, 1, 1)  # small..huge grads
    y = torch.randint(0, 3, (3, 40), generator=g)
    grads = _psg(params, x, y)
    c = 0.5
    clipped, norms = dpsgd.clip_per_sample(grads, c)
    after = dpsgd.grad_norms(clipped)
    assert after.shape == (3, 40)
    assert (after <= c * (1 + 1e-5)).all()
    assert (norms > c).any() and (norms < c).any()            # both regimes occur
    small = norms < c
    assert torch.allclose(after[small], norms[small], rtol=1e-5)           # untouched below C
    assert torch.allclose(after[~small], torch.full_like(after[~small], c), rtol=1e-4)  # exactly C above
    for n in grads:                                            # direction kept
        cos = torch.nn.functional.cosine_similarity(grads[n].flatten(2), clipped[n].flatten(2), dim=-1)
        assert (cos[norms > 1e-6] > 1 - 1e-5).all()
    # a model's clipping never depends on another model's gradients
    x2 = x.clone()
    x2[2] *= 100
    clipped2, _ = dpsgd.clip_per_sample(_psg(params, x2, y), c)
    for n in grads:
        assert torch.allclose(clipped2[n][:2], clipped[n][:2])
    # the training path (clip factors + weighted sum) is the sum of these clipped gradients
    mask = (torch.rand(3, 40, generator=g) < 0.7).float()
    zero = {n: torch.zeros_like(t[:, 0]) for n, t in grads.items()}
    noisy = dpsgd.privatize(grads, mask, zero, max_norm=c, sigma=1.0, expected_batch=10.0)
    masked, _ = dpsgd.clip_per_sample(grads, c, mask)
    for n in grads:
        assert torch.allclose(noisy[n], masked[n].sum(1) / 10.0, atol=1e-6)


def _train(x, y, keep, ids, dp, rec, seed=0):
    return dpsgd.train_group_dp(x, y, keep, ids, dp=dp, spec=SPEC, recipe=rec, n_classes=3, root_seed=seed,
                                steps=steps_per_epoch(keep, rec.batch_size))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_no_noise_and_huge_clip_norm_is_plain_sgd_on_the_same_batches(optimizer):
    x, y = _toy()
    keep = make_keep(4, len(y), seed=0)
    rec = Recipe(epochs=2, batch_size=16, optimizer=optimizer, lr=0.05, momentum=0.9, schedule="cosine")
    dp = DPConfig(noise_multiplier=0.0, max_grad_norm=1e6, sampling="shuffle")
    private = _train(x, y, keep, [0, 1, 2, 3], dp, rec, seed=3)
    plain = train_group(x, y, keep, [0, 1, 2, 3], spec=SPEC, recipe=rec, n_classes=3, root_seed=3,
                        steps=steps_per_epoch(keep, 16), backend="vmap")
    init = stack_states([init_model(SPEC, (6,), 3, dpsgd.model_seed(3, m)) for m in range(4)])
    for name, t in plain.state().items():
        assert not torch.allclose(t, init[name], atol=1e-3), name          # training moved the models
        assert torch.allclose(private.state()[name], t, atol=1e-5), name
    # and clipping at a small C changes the result (the comparison can fail)
    clipped = _train(x, y, keep, [0, 1, 2, 3], dp.model_copy(update={"max_grad_norm": 0.01}), rec, seed=3)
    assert not torch.allclose(clipped.state()["1.weight"], plain.state()["1.weight"], atol=1e-3)


@pytest.mark.parametrize("bug,scale", [("none", lambda s, c: s * c), ("noise_not_scaled", lambda s, c: s)])
def test_noise_std_is_sigma_times_c_over_batch(bug, scale):
    """One SGD step (lr 1) with and without noise on the same Poisson batch: the parameter
    difference is the noise, N(0, (sigma C / B)^2) per coordinate, independent across models."""
    x, y = _toy(n=400)
    keep = make_keep(8, len(y), seed=1)
    sigma, c, b = 1.3, 4.0, 20
    rec = Recipe(epochs=1, batch_size=b, optimizer="sgd", lr=1.0, momentum=0.0, schedule="constant")
    run = lambda s: dpsgd.train_group_dp(x, y, keep, list(range(8)), spec=SPEC, recipe=rec, n_classes=3,
                                         root_seed=0, steps=1, dp=DPConfig(noise_multiplier=s, max_grad_norm=c,
                                                                           bug=bug)).state()
    noisy, clean = run(sigma), run(0.0)
    diff = torch.cat([(clean[n] - noisy[n]).reshape(8, -1) for n in clean], dim=1)   # [K, P]
    expected = scale(sigma, c) / b
    per_model = diff.std(dim=1)
    assert torch.allclose(per_model, torch.full_like(per_model, expected), rtol=0.12), (per_model, expected)
    assert abs(diff.std().item() / expected - 1) < 0.04
    assert abs(diff.mean().item()) < 4 * expected / diff.numel() ** 0.5
    corr = np.corrcoef(diff.numpy())[np.triu_indices(8, 1)]
    assert np.abs(corr).max() < 0.2


def test_poisson_batches_have_the_expected_size_and_vary():
    members = np.arange(1000)
    rec = Recipe(batch_size=50)
    sizes = [len(idx) for e in range(1, 6) for idx, _ in dpsgd.poisson_epoch(0, 7, e, members, 20, 0.05, rec)]
    assert abs(np.mean(sizes) - 50) < 2.5 and np.std(sizes) > 3           # Binomial(1000, 0.05): sd 6.9
    again = [len(idx) for e in range(1, 6) for idx, _ in dpsgd.poisson_epoch(0, 7, e, members, 20, 0.05, rec)]
    assert sizes == again


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_grouping_does_not_change_a_dp_model(sampling):
    x, y = _toy(seed=2)
    keep = make_keep(4, len(y), seed=1)
    rec = Recipe(epochs=2, batch_size=16, optimizer="adam", lr=0.01)
    dp = DPConfig(noise_multiplier=0.8, max_grad_norm=1.0, sampling=sampling)
    together = _train(x, y, keep, [0, 1, 2, 3], dp, rec)
    alone = _train(x, y, keep, [2], dp, rec)
    pair = _train(x, y, keep, [2, 3], dp, rec)
    for name, t in together.state().items():
        assert torch.equal(t[2], alone.state()[name][0]), name
        assert torch.equal(t[2], pair.state()[name][0]), name
        assert not torch.allclose(t[2], t[3], atol=1e-3)
    other_seed = _train(x, y, keep, [2], dp, rec, seed=1)
    assert not torch.allclose(other_seed.state()["1.weight"][0], alone.state()["1.weight"][0], atol=1e-3)


def test_accountant_matches_opacus_and_target_epsilon_is_met():
    from opacus.accountants import PRVAccountant, RDPAccountant

    keep = make_keep(6, 1000, seed=0)
    q_max = float((32 / keep.sum(axis=1)).max())
    for accountant, cls, kwargs in (("rdp", RDPAccountant, dpsgd._accountant_kwargs("rdp")),
                                    ("prv", PRVAccountant, {})):
        dp = DPConfig(noise_multiplier=1.1, delta=1e-5, accountant=accountant)
        report = dpsgd.dp_report(dp, keep, batch_size=32, total_steps=300)
        acc = cls()
        for _ in range(300):
            acc.step(noise_multiplier=1.1, sample_rate=q_max)
        assert report["epsilon"] == pytest.approx(acc.get_epsilon(delta=1e-5, **kwargs), rel=1e-6)
        assert report["sample_rate_max"] == pytest.approx(q_max)
    # the extended RDP orders only tighten Opacus' default claim
    rdp = dpsgd.dp_report(DPConfig(noise_multiplier=1.1, delta=1e-5), keep, batch_size=32, total_steps=300)
    default = RDPAccountant()
    default.history = [(1.1, q_max, 300)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # Opacus: "optimal order is the largest alpha"
        assert rdp["epsilon"] <= default.get_epsilon(delta=1e-5) + 1e-9
    for accountant in ("rdp", "prv"):
        dp = DPConfig(target_epsilon=1.5, delta=1e-5, accountant=accountant)
        claim = dpsgd.dp_report(dp, keep, batch_size=32, total_steps=300)
        assert 1.5 - 0.02 <= claim["epsilon"] <= 1.5, claim
        smaller = dpsgd.dp_report(dp.model_copy(update={"target_epsilon": 0.5}), keep, 32, 300)
        assert smaller["noise_multiplier"] > claim["noise_multiplier"]
    # a deliberately broken variant claims exactly what the correct one claims
    for bug in ("noise_not_scaled", "clip_after_average"):
        assert dpsgd.dp_report(dp.model_copy(update={"bug": bug}), keep, 32, 300)["epsilon"] == claim["epsilon"]


def test_trained_group_carries_its_claim_and_learns_without_noise():
    x, y = _toy(n=300, seed=4)
    keep = make_keep(2, len(y), seed=0)
    rec = Recipe(epochs=8, batch_size=16, optimizer="adam", lr=0.02)
    group = _train(x, y, keep, [0, 1], DPConfig(noise_multiplier=0.3, max_grad_norm=1.0), rec)
    with torch.no_grad():
        acc = (group.forward(x).argmax(-1) == y).float().mean().item()
    assert acc > 0.8
    assert group.dp_claim["epsilon"] > 0 and group.dp_claim["noise_multiplier"] == 0.3


def test_cnn_with_augmentation_trains_under_dp_and_stays_grouping_invariant():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 8, 8, generator=g)
    y = torch.randint(0, 2, (48,), generator=g)
    keep = make_keep(2, 48, seed=0)
    spec = ArchSpec("cnn", width=4, depth=2)
    rec = Recipe(epochs=2, batch_size=6, lr=0.01, mirror=True, shift=1, checkpoints=(1,))
    dp = DPConfig(noise_multiplier=0.5, max_grad_norm=1.0)
    seen = {}
    run = lambda ids, **kw: dpsgd.train_group_dp(x, y, keep, ids, dp=dp, spec=spec, recipe=rec, n_classes=2,
                                                 root_seed=0, steps=steps_per_epoch(keep, 6), backend="loop", **kw)
    both = run([0, 1], on_checkpoint=lambda e, s: seen.setdefault(e, s))
    alone = run([1])
    assert list(seen) == [1] and seen[1]["0.weight"].shape[0] == 2
    for name, t in both.state().items():
        assert torch.isfinite(t).all()
        assert torch.equal(t[1], alone.state()[name][0]), name
    with torch.no_grad():
        assert both.forward(x).shape == (2, 48, 2)
