"""Tests for privaudit.signals.curvature (input-loss curvature of K models at once)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from privaudit.errors import SignalError
from privaudit.signals.curvature import (
    _STREAM_PROBE,
    _STREAM_ZO_U,
    _STREAM_ZO_V,
    gradient_difference_curvature,
    hutchinson,
    hutchinson_trace,
    hutchinson_trace_sq,
    rademacher,
    zero_order_curvature,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def identity_loss(out, y):
    return out


# ------------------------------------------------------------------------------------------
# Synthetic groups
# ------------------------------------------------------------------------------------------
def quadratic_group(k: int, d: int, seed: int, diag: tuple[float, float] | None = (1.0, 3.0)):
    """K quadratics q_k(x) = 1/2 x^T A_k x (loss_fn = identity, so H = A_k exactly)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(k, d, d, generator=g, dtype=F64) / math.sqrt(d)
    a = (m + m.transpose(1, 2)) / 2
    if diag is not None:
        lo, hi = diag
        a = a + torch.diag_embed(lo + (hi - lo) * torch.rand(k, d, generator=g, dtype=F64))

    def forward_each(xk):
        return 0.5 * torch.einsum("kni,kij,knj->kn", xk, a, xk)

    def forward(x):
        return forward_each(x.unsqueeze(0).expand(k, *x.shape))

    return a, forward_each, forward


def mlp_group_params(k: int, d: int, hidden: int, c: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(k, d, hidden, generator=g, dtype=F64) / math.sqrt(d),
            torch.randn(k, hidden, generator=g, dtype=F64) * 0.1,
            torch.randn(k, hidden, c, generator=g, dtype=F64) * 2 / math.sqrt(hidden))


def mlp_forward_each(params):
    w1, b1, w2 = params

    def forward_each(xk):  # [K, N, d] -> [K, N, C], softplus/tanh: smooth
        z = torch.tanh(torch.bmm(xk.flatten(2), w1) + b1[:, None, :])
        return torch.bmm(F.softplus(z * 2.0), w2)

    return forward_each


def shared(forward_each, k):
    return lambda x: forward_each(x.unsqueeze(0).expand(k, *x.shape))


def hutch_var(a: torch.Tensor) -> float:
    """Variance of one Rademacher-Hutchinson sample v^T A v: 2(||A||_F^2 - sum A_ii^2)."""
    return float(2 * (a.square().sum() - a.diagonal().square().sum()))


# ------------------------------------------------------------------------------------------
# Rademacher generator
# ------------------------------------------------------------------------------------------
def test_rademacher_keyed_by_sample_id_not_position():
    ids = torch.tensor([7, 3, 1000, 2**40 + 5, -2])
    r = rademacher(ids, (3, 5, 5), seed=11, index=4)
    assert r.shape == (5, 3, 5, 5) and set(r.unique().tolist()) == {-1.0, 1.0}
    for j in range(5):
        assert torch.equal(rademacher(ids[j:j + 1], (3, 5, 5), seed=11, index=4), r[j:j + 1])
    assert torch.equal(rademacher(ids.flip(0), (3, 5, 5), seed=11, index=4), r.flip(0))
    base = rademacher(ids, (75,), seed=11, index=4).flatten()
    for other in (rademacher(ids, (75,), seed=12, index=4), rademacher(ids, (75,), seed=11, index=5),
                  rademacher(ids, (75,), seed=11, index=4, stream=_STREAM_ZO_U),
                  rademacher(ids + 1, (75,), seed=11, index=4)):
        assert (other.flatten() == base).float().mean() < 0.7


def test_rademacher_balanced_and_uncorrelated():
    r = rademacher(torch.arange(400), (257,), seed=3, index=0, dtype=F64)
    assert abs(r.mean().item()) < 4 / math.sqrt(r.numel())
    gram = (r @ r.T) / r.shape[1]
    off = gram[~torch.eye(400, dtype=torch.bool)]
    assert abs(off.std().item() * math.sqrt(257) - 1) < 0.05   # independent rows
    lag = (r[:, :-1] * r[:, 1:]).mean().item()                  # independent entries
    assert abs(lag) < 4 / math.sqrt(r.numel())


# ------------------------------------------------------------------------------------------
# Quadratic models: known Hessians
# ------------------------------------------------------------------------------------------
def test_hutchinson_recovers_trace_and_trace_sq_of_quadratics():
    k, d, b, probes = 3, 100, 400, 5
    a, forward_each, _ = quadratic_group(k, d, seed=0)
    x = torch.randn(b, d, dtype=F64)
    y = torch.zeros(b)
    est = hutchinson(forward_each, x, y, n_models=k, probes=probes, seed=1, dtype=F64, loss_fn=identity_loss)
    assert est.trace.shape == est.trace_sq.shape == (k, b) and est.trace.dtype == F64
    for j in range(k):
        a2 = a[j] @ a[j]
        for values, target, var1 in ((est.trace[j], a[j].trace(), hutch_var(a[j])),
                                     (est.trace_sq[j], a2.trace(), hutch_var(a2))):
            se = math.sqrt(var1 / (probes * b))
            assert abs(values.mean().item() - target.item()) < 5 * se
            # per-sample spread is the Rademacher-Hutchinson variance (a Gaussian probe would give
            # 2||A||_F^2 / probes, ~10x larger here because the diagonal dominates)
            ratio = values.var().item() / (var1 / probes)
            assert 0.7 < ratio < 1.4, ratio


def test_hutchinson_wrappers_match_combined():
    k, d = 2, 20
    _, forward_each, _ = quadratic_group(k, d, seed=5)
    x, y = torch.randn(9, d, dtype=F64), torch.zeros(9)
    kw = dict(n_models=k, probes=3, seed=2, dtype=F64, loss_fn=identity_loss)
    est = hutchinson(forward_each, x, y, **kw)
    assert torch.equal(hutchinson_trace(forward_each, x, y, **kw), est.trace)
    assert torch.equal(hutchinson_trace_sq(forward_each, x, y, **kw), est.trace_sq)


def test_zero_order_is_exactly_the_released_formula_on_quadratics():
    # loss exactly quadratic => t1 - t2 - t3 + t4 = 4 v^T A u, so each round gives h |r^T A s|
    k, d, b, h, rounds = 2, 30, 16, 1e-3, 3
    a, _, forward = quadratic_group(k, d, seed=1)
    x = torch.randn(b, d, dtype=F64)
    ids = torch.arange(100, 100 + b)
    z = zero_order_curvature(forward, x, torch.zeros(b), n_models=k, h=h, rounds=rounds, seed=4,
                             sample_ids=ids, dtype=F64, loss_fn=identity_loss)
    expect = torch.zeros(k, b, dtype=F64)
    for t in range(rounds):
        r = rademacher(ids, (d,), seed=4, index=t, stream=_STREAM_ZO_V, dtype=F64)
        s = rademacher(ids, (d,), seed=4, index=t, stream=_STREAM_ZO_U, dtype=F64)
        expect += h * torch.einsum("bi,kij,bj->kb", r, a, s).abs() / rounds
    torch.testing.assert_close(z, expect, rtol=1e-7, atol=1e-10)


def test_zero_order_estimates_frobenius_norm_for_large_d():
    k, d, b, h, rounds = 2, 200, 1000, 1e-3, 10
    a, _, forward = quadratic_group(k, d, seed=2, diag=None)
    x = torch.randn(b, d, dtype=F64)
    z = zero_order_curvature(forward, x, torch.zeros(b), n_models=k, h=h, rounds=rounds,
                             dtype=F64, loss_fn=identity_loss)
    for j in range(k):
        fro = a[j].square().sum().sqrt().item()
        rel = z[j].mean().item() / (h * math.sqrt(2 / math.pi) * fro)
        assert abs(rel - 1) < 0.03, rel
        assert abs(z[j].mean().item() / h - abs(a[j].trace().item())) > 0.3 * fro  # not tr(A)


def test_zero_order_matches_exact_expectation_for_small_d():
    d, b, h, rounds = 5, 4000, 1e-2, 5
    a, _, forward = quadratic_group(1, d, seed=3)
    # exact E|r^T A s| and its sd by enumerating all 2^10 sign pairs
    signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=F64)
    vals = torch.einsum("pi,ij,qj->pq", signs, a[0], signs).abs().flatten()
    exact, sd = vals.mean().item(), vals.std().item()
    x = torch.randn(b, d, dtype=F64)
    z = zero_order_curvature(forward, x, torch.zeros(b), n_models=1, h=h, rounds=rounds,
                             dtype=F64, loss_fn=identity_loss, batch_size=1500)
    se = sd / math.sqrt(b * rounds)
    assert abs(z.mean().item() / h - exact) < 4 * se
    # the per-sample values are averages of `rounds` draws of |r^T A s|
    assert abs(z.var().item() / h**2 / (sd**2 / rounds) - 1) < 0.15


# ------------------------------------------------------------------------------------------
# K models at once == one model at a time; invariance to batching and sample order
# ------------------------------------------------------------------------------------------
def _all_estimators(forward_each, x, y, k, **kw):
    common = dict(n_models=k, seed=9, dtype=F64, **kw)
    return {
        "zo": zero_order_curvature(shared(forward_each, k), x, y, h=1e-2, rounds=3, **common),
        "tr": hutchinson_trace(forward_each, x, y, probes=3, **common),
        "tr2": hutchinson_trace_sq(forward_each, x, y, probes=3, **common),
        "gd": gradient_difference_curvature(forward_each, x, y, h=1e-3, probes=3, **common),
        "gd1": gradient_difference_curvature(forward_each, x, y, h=1e-3, probes=2, squared=False, **common),
    }


def test_group_equals_per_model_and_is_batching_invariant():
    k, d, b, c = 3, 6, 23, 4
    params = mlp_group_params(k, d, 8, c, seed=0)
    x = torch.randn(b, d, dtype=F64)
    y = torch.randint(0, c, (b,))
    ids = torch.arange(b) * 3 + 50
    full = _all_estimators(mlp_forward_each(params), x, y, k, sample_ids=ids, batch_size=64)
    for name, v in full.items():
        assert v.shape == (k, b) and bool((v[:, :-1] != v[:, 1:]).any()), name

    for j in range(k):
        one = _all_estimators(mlp_forward_each([p[j:j + 1] for p in params]), x, y, 1,
                              sample_ids=ids, batch_size=64)
        for name in full:
            torch.testing.assert_close(one[name][0], full[name][j], rtol=1e-9, atol=1e-12, msg=name)

    small = _all_estimators(mlp_forward_each(params), x, y, k, sample_ids=ids, batch_size=5)
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(0))
    permuted = _all_estimators(mlp_forward_each(params), x[perm], y[perm], k, sample_ids=ids[perm],
                               batch_size=7)
    sub = torch.tensor([4, 17, 2])
    subset = _all_estimators(mlp_forward_each(params), x[sub], y[sub], k, sample_ids=ids[sub])
    for name in full:
        torch.testing.assert_close(small[name], full[name], rtol=1e-9, atol=1e-12, msg=name)
        torch.testing.assert_close(permuted[name], full[name][:, perm], rtol=1e-9, atol=1e-12, msg=name)
        torch.testing.assert_close(subset[name], full[name][:, sub], rtol=1e-9, atol=1e-12, msg=name)
    # different sample ids => different probes
    other = _all_estimators(mlp_forward_each(params), x, y, k, sample_ids=ids + 1)
    assert not torch.allclose(other["zo"], full["zo"])


# ------------------------------------------------------------------------------------------
# Real torch.nn models (smooth activations, fp64) against autograd Hessians
# ------------------------------------------------------------------------------------------
def _nn_group(k, c, seed):
    torch.manual_seed(seed)
    models = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 16), torch.nn.Tanh(),
                                  torch.nn.Linear(16, 16), torch.nn.Softplus(), torch.nn.Linear(16, c))
              .double().eval() for _ in range(k)]

    def forward_each(xk):
        return torch.stack([m(xk[j]) for j, m in enumerate(models)])

    return models, forward_each


def _exact_hessians(models, x, y):
    out = []
    for m in models:
        hs = []
        for i in range(x.shape[0]):
            def loss(xi, i=i):
                return F.cross_entropy(m(xi.unsqueeze(0)), y[i:i + 1])
            hs.append(torch.autograd.functional.hessian(loss, x[i]).reshape(6, 6))
        out.append(torch.stack(hs))
    return torch.stack(out)  # [K, B, d, d]


def test_nn_mlp_against_autograd_hessian():
    k, c, b, probes = 2, 5, 3, 4
    models, forward_each = _nn_group(k, c, seed=0)
    x = torch.randn(b, 2, 3, dtype=F64) * 2
    y = torch.randint(0, c, (b,))
    ids = torch.tensor([5, 0, 42])
    hess = _exact_hessians(models, x, y)
    assert torch.allclose(hess, hess.transpose(-1, -2))
    v = torch.stack([rademacher(ids, (6,), seed=3, index=p, stream=_STREAM_PROBE, dtype=F64)
                     for p in range(probes)])  # [P, B, d]
    hv = torch.einsum("kbij,pbj->pkbi", hess, v)
    with torch.no_grad():  # the estimator must re-enable autograd itself
        est = hutchinson(forward_each, x, y, n_models=k, probes=probes, seed=3, sample_ids=ids, dtype=F64)
    torch.testing.assert_close(est.trace, torch.einsum("pkbi,pbi->pkb", hv, v).mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(est.trace_sq, hv.square().sum(-1).mean(0), rtol=1e-10, atol=1e-12)

    # gradient differences -> h^2 ||Hv||^2 and h ||Hv|| (error O(h))
    h = 1e-4
    gd = gradient_difference_curvature(forward_each, x, y, n_models=k, h=h, probes=probes, seed=3,
                                       sample_ids=ids, dtype=F64)
    torch.testing.assert_close(gd / h**2, est.trace_sq, rtol=1e-3, atol=1e-8)
    gd1 = gradient_difference_curvature(forward_each, x, y, n_models=k, h=h, probes=probes, seed=3,
                                        sample_ids=ids, dtype=F64, squared=False)
    torch.testing.assert_close(gd1 / h, hv.square().sum(-1).sqrt().mean(0), rtol=1e-3, atol=1e-8)

    # zero-order: the exact finite-difference formula, and h |r^T H s| up to O(h^2) relative
    h, rounds = 1e-3, 3
    zo = zero_order_curvature(shared(forward_each, k), x, y, n_models=k, h=h, rounds=rounds, seed=3,
                              sample_ids=ids, dtype=F64)
    fd = torch.zeros(k, b, dtype=F64)
    taylor = torch.zeros(k, b, dtype=F64)
    for t in range(rounds):
        vv = h * rademacher(ids, (2, 3), seed=3, index=t, stream=_STREAM_ZO_V, dtype=F64)
        uu = h * rademacher(ids, (2, 3), seed=3, index=t, stream=_STREAM_ZO_U, dtype=F64)
        with torch.no_grad():
            ls = [torch.stack([F.cross_entropy(m(x + sv * vv + su * uu), y, reduction="none") for m in models])
                  for sv, su in ((1, 1), (-1, 1), (1, -1), (-1, -1))]
        fd += ((ls[0] - ls[1] - ls[2] + ls[3]) / (4 * h)).abs() / rounds
        taylor += torch.einsum("bi,kbij,bj->kb", vv.flatten(1), hess, uu.flatten(1)).abs() / h / rounds
    # the estimator's default loss is the stable form of the same cross-entropy: fp64 rounding of
    # the two forms differs by ~1e-8 relative after the 4-point difference
    torch.testing.assert_close(zo, fd, rtol=1e-7, atol=1e-13)
    torch.testing.assert_close(zo, taylor, rtol=1e-4, atol=1e-9)


def test_default_cross_entropy_dtype_handling():
    k, c, b = 2, 3, 10
    params = mlp_group_params(k, 4, 8, c, seed=1)
    fe64 = mlp_forward_each(params)
    seen = []

    def forward_each(xk):
        seen.append(xk.dtype)
        return fe64(xk.to(F64)).to(xk.dtype)

    x = torch.randn(b, 4)
    y = torch.randint(0, c, (b,))
    z32 = zero_order_curvature(shared(forward_each, k), x, y, n_models=k, h=0.1, rounds=2)
    assert z32.dtype == torch.float32 and seen[-1] == torch.float32 and bool((z32 > 0).all())
    z64 = zero_order_curvature(shared(forward_each, k), x, y, n_models=k, h=0.1, rounds=2, dtype=F64)
    assert z64.dtype == F64 and seen[-1] == F64
    torch.testing.assert_close(z32.double(), z64, rtol=1e-3, atol=1e-6)  # fp32 fine at h = 0.1
    t32 = hutchinson_trace(forward_each, x, y, n_models=k, probes=2)
    t64 = hutchinson_trace(forward_each, x, y, n_models=k, probes=2, dtype=F64)
    assert t32.dtype == torch.float32
    torch.testing.assert_close(t32.double(), t64, rtol=1e-4, atol=1e-5)


def test_zero_hessian_gives_zero():
    w = torch.randn(2, 5, dtype=F64)

    def forward_each(xk):  # linear "loss": H = 0
        return torch.einsum("knd,kd->kn", xk, w)

    x, y = torch.randn(4, 5, dtype=F64), torch.zeros(4)
    est = hutchinson(forward_each, x, y, n_models=2, probes=2, dtype=F64, loss_fn=identity_loss)
    assert bool((est.trace == 0).all()) and bool((est.trace_sq == 0).all())
    const = hutchinson(lambda xk: torch.ones(xk.shape[:2], dtype=F64), x, y, n_models=2, dtype=F64,
                       loss_fn=identity_loss)
    assert bool((const.trace == 0).all())
    zo = zero_order_curvature(shared(forward_each, 2), x, y, n_models=2, dtype=F64, loss_fn=identity_loss)
    assert float(zo.abs().max()) < 1e-9


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------
def _fe(xk):
    return torch.zeros(xk.shape[0], xk.shape[1], 3, dtype=xk.dtype) + xk.flatten(2).sum(-1, keepdim=True)


@pytest.mark.parametrize("call, match", [
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(5, dtype=torch.long),
                                  n_models=2), "y must have shape"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4), torch.zeros(4, dtype=torch.long),
                                  n_models=2), "x must be a tensor of shape"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.tensor([[1.0, float("nan")]] * 4),
                                  torch.zeros(4, dtype=torch.long), n_models=2), "finite"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                  n_models=2, h=0.0), "h must be"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                  n_models=2, h=float("inf")), "h must be"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                  n_models=2, rounds=0), "rounds"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                  n_models=3), "forward must return"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.full((4,), 3),
                                  n_models=2), "labels"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4),
                                  n_models=2), "integer class labels"),
    (lambda: zero_order_curvature(shared(_fe, 2), torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                  n_models=2, sample_ids=torch.arange(3)), "sample_ids"),
    (lambda: hutchinson_trace(_fe, torch.randn(4, 3), torch.zeros(4, dtype=torch.long), n_models=2,
                              probes=0), "probes"),
    (lambda: hutchinson_trace(_fe, torch.randn(4, 3), torch.zeros(4, dtype=torch.long), n_models=0),
     "n_models"),
    (lambda: hutchinson_trace(_fe, torch.randn(4, 3), torch.zeros(4), n_models=2,
                              loss_fn=lambda o, y: o.sum(-1, keepdim=True)), "loss_fn must return"),
    (lambda: gradient_difference_curvature(_fe, torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                           n_models=2, h=-1e-3), "h must be"),
    (lambda: gradient_difference_curvature(_fe, torch.randn(4, 3), torch.zeros(4, dtype=torch.long),
                                           n_models=2, batch_size=0), "batch_size"),
    (lambda: hutchinson_trace(lambda xk: torch.log(xk.flatten(2)[..., :3] - 10), torch.randn(4, 3),
                              torch.zeros(4, dtype=torch.long), n_models=2), "NaN"),
    (lambda: zero_order_curvature(shared(mlp_forward_each([p.float() for p in mlp_group_params(2, 3, 4, 3, 0)]), 2),
                                  torch.randn(4, 3), torch.zeros(4, dtype=torch.long), n_models=2, dtype=F64),
     "cast the models"),
])
def test_validation_raises_one_line_signal_error(call, match):
    with pytest.raises(SignalError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
