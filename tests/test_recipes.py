"""Training recipes: learning-rate warm-up, label smoothing, SAM (per-model norms, against a
hand-written single-model SAM), bf16 autocast, torch.compile, and BatchNorm models (ResNet, WRN)
under the ``loop`` and ``vmap`` backends."""

import math
import os
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from privaudit.config import parse_config
from privaudit.data.membership import make_keep
from privaudit.models.architectures import ArchSpec, init_model
from privaudit.models.group import VmapGroup, stack_states
from privaudit.runtime import plan
from privaudit.training import trainer
from privaudit.training.recipe import SAM, FusedAdam, Recipe, lr_factor, make_optimizer, warmup_steps
from privaudit.training.trainer import epoch_plan, model_seed, step_loss, steps_per_epoch, train_group

RESNET = ArchSpec("resnet", depth=18, width=4)
WRN = ArchSpec("wrn", depth=10, widen=1)


def _toy(n=240, d=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :classes].argmax(1)


def _images(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def _train(x, y, ids, spec, recipe, backend, n_models=4, n_classes=3, root_seed=1):
    keep = make_keep(n_models, len(y), seed=0)
    return train_group(x, y, keep, ids, spec=spec, recipe=recipe, n_classes=n_classes, root_seed=root_seed,
                       steps=steps_per_epoch(keep, recipe.batch_size), backend=backend)


def test_the_config_reaches_the_recipe():
    fields = dict(optimizer="sam", sam_rho=0.1, warmup_epochs=1.5, label_smoothing=0.2, precision="bf16",
                  compile=True)
    rec = plan.recipe(parse_config({"name": "r", "data": {"name": "digits"}, "training": fields}))
    assert {k: getattr(rec, k) for k in fields} == fields


# -- learning rate ---------------------------------------------------------------------------------
def test_warmup_then_schedule_over_the_remaining_steps():
    # 4 epochs x 5 steps; warm-up 0.6 epochs = round(3.0) = 3 steps, then 17 steps of schedule
    rec = Recipe(epochs=4, warmup_epochs=0.6, schedule="cosine")
    assert warmup_steps(rec, 20) == 3
    got = [lr_factor(rec, s, 20) for s in range(20)]
    want = [1 / 3, 2 / 3, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 17)) for k in range(17)]
    assert got == pytest.approx(want, abs=1e-12)
    step = Recipe(epochs=2, warmup_epochs=1.0, schedule="step", milestones=(0.5,), gamma=0.1)
    assert [lr_factor(step, s, 8) for s in range(8)] == pytest.approx([.25, .5, .75, 1, 1, 1, .1, .1])
    assert warmup_steps(Recipe(epochs=1, warmup_epochs=5.0), 4) == 4            # capped at the run
    plain = Recipe(epochs=2, schedule="cosine")                                  # no warm-up: unchanged
    assert lr_factor(plain, 0, 10) == 1.0 and lr_factor(plain, 5, 10) == pytest.approx(0.5)


# -- loss --------------------------------------------------------------------------------------------
def test_label_smoothing_loss_is_the_hand_formula_summed_over_models():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(2, 5, 4, generator=g), torch.randint(0, 4, (2, 5), generator=g)
    eps = 0.1
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    per_sample = (1 - eps) * nll + eps * (-logp).mean(-1)
    want = per_sample.mean(1).sum()                        # each model's mean, summed over models
    got = step_loss(logits, y, Recipe(batch_size=5, label_smoothing=eps))
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(step_loss(logits, y, Recipe(batch_size=5)), want, atol=1e-3)


# -- SAM -------------------------------------------------------------------------------------------
SAM_RECIPE = Recipe(epochs=2, batch_size=16, optimizer="sam", lr=0.1, momentum=0.9, weight_decay=5e-4,
                    sam_rho=0.2, warmup_epochs=0.5, label_smoothing=0.1)


def reference_sam(x, y, keep, m, spec, rec, root_seed, steps):
    """Foret et al. 2021, Alg. 1 for one plain model, written out by hand: gradient at w, ascend to
    w + rho g / ||g||, gradient there, back to w, SGD step with the second gradient."""
    model = init_model(spec, tuple(x.shape[1:]), 3, model_seed(root_seed, m))
    params = list(model.parameters())
    sgd = torch.optim.SGD(params, lr=rec.lr, momentum=rec.momentum, weight_decay=rec.weight_decay, nesterov=True)
    loss_at = lambda xb, yb: F.cross_entropy(model(xb), yb, label_smoothing=rec.label_smoothing)
    total = rec.epochs * steps
    for epoch in range(1, rec.epochs + 1):
        plan = epoch_plan(root_seed, m, epoch, np.flatnonzero(keep[m]), steps, rec)
        for s in range(steps):
            idx = torch.from_numpy(plan.idx[s])
            sgd.param_groups[0]["lr"] = rec.lr * lr_factor(rec, (epoch - 1) * steps + s, total)
            g1 = torch.autograd.grad(loss_at(x[idx], y[idx]), params)
            norm = torch.sqrt(sum((g ** 2).sum() for g in g1))
            w = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p, g in zip(params, g1):
                    p.add_(rec.sam_rho * g / (norm + 1e-12))
            g2 = torch.autograd.grad(loss_at(x[idx], y[idx]), params)
            with torch.no_grad():
                for p, old, g in zip(params, w, g2):
                    p.copy_(old)
                    p.grad = g
            sgd.step()
    return {n: t.detach() for n, t in model.state_dict().items()}


@pytest.mark.parametrize("backend", ["wide", "loop"])
def test_sam_matches_a_hand_written_single_model_sam(backend):
    x, y = _toy()
    keep = make_keep(4, len(y), seed=0)
    spec, steps = ArchSpec("mlp", (16,)), steps_per_epoch(keep, 16)
    group = train_group(x, y, keep, [0, 1, 2], spec=spec, recipe=SAM_RECIPE, n_classes=3, root_seed=1, steps=steps,
                        backend=backend).state()
    sgd = train_group(x, y, keep, [0, 1, 2], spec=spec, recipe=replace(SAM_RECIPE, optimizer="sgd"),
                      n_classes=3, root_seed=1, steps=steps, backend=backend).state()
    for m in range(3):
        ref = reference_sam(x, y, keep, m, spec, SAM_RECIPE, 1, steps)
        for name, t in ref.items():
            torch.testing.assert_close(group[name][m], t, rtol=1e-5, atol=1e-6, msg=f"model {m} {name}")
        assert (sgd["1.weight"][m] - ref["1.weight"]).abs().max() > 1e-3      # SAM is not plain SGD here


@pytest.mark.parametrize("backend", ["wide", "loop"])
def test_sam_model_is_the_same_alone_and_in_a_group_of_3(backend):
    x, y = _toy(seed=3)
    spec = ArchSpec("mlp", (13, 7))
    together = _train(x, y, [0, 1, 2], spec, SAM_RECIPE, backend).state()
    alone = _train(x, y, [1], spec, SAM_RECIPE, backend).state()
    for name, t in together.items():
        assert torch.equal(t[1], alone[name][0]), name


def test_sam_norm_is_per_model_on_stacked_parameters():
    """Two stacked models with gradients of very different size each ascend by exactly rho."""
    p = torch.nn.Parameter(torch.zeros(2, 64))
    q = torch.nn.Parameter(torch.zeros(2, 64))
    p.grad, q.grad = torch.zeros(2, 64), torch.zeros(2, 64)
    p.grad[0, :3], q.grad[0, 0] = torch.tensor([1.0, 2.0, 2.0]), 4.0          # model 0: ||g|| = 5
    p.grad[1, 5] = 1e-3                                                       # model 1: ||g|| = 1e-3
    sam = SAM([p, q], rho=0.5, stacked=True, lr=0.1, momentum=0.0)
    sam.first_step()
    ascent = torch.cat([p.detach(), q.detach()], 1).norm(dim=1)
    assert torch.allclose(ascent, torch.tensor([0.5, 0.5]))
    sam.second_step()
    assert torch.allclose(p.detach(), -0.1 * p.grad) and torch.allclose(q.detach(), -0.1 * q.grad)


@pytest.mark.parametrize("backend", ["loop", "vmap"])
def test_sam_running_statistics_come_from_the_forward_at_w(backend):
    """One step: SAM's second forward (at the perturbed point) leaves BatchNorm's statistics as
    the first forward at w set them, i.e. as one plain SGD step does (same batch, same w)."""
    x, y = _images(64)
    one_step = dict(epochs=1, batch_size=32, lr=0.1)
    sam = _train(x, y, [0, 1], WRN, Recipe(optimizer="sam", **one_step), backend, n_models=2, n_classes=10).state()
    sgd = _train(x, y, [0, 1], WRN, Recipe(optimizer="sgd", **one_step), backend, n_models=2, n_classes=10).state()
    stats = [n for n in sam if "running" in n or "num_batches" in n]
    assert stats
    for name in stats:
        assert torch.equal(sam[name], sgd[name]), name
    assert not torch.allclose(sam["net.0.weight"], sgd["net.0.weight"])


def test_sam_without_a_closure_says_why():
    opt = make_optimizer(Recipe(optimizer="sam"), [torch.nn.Parameter(torch.zeros(1, 64))])
    with pytest.raises(Exception, match="two gradients per step"):
        opt.step()


# -- BatchNorm architectures, loop vs vmap -------------------------------------------------------------
@pytest.mark.parametrize("spec", [RESNET, WRN], ids=["resnet", "wrn"])
def test_batchnorm_models_train_under_loop_and_vmap(spec):
    """1 epoch (4 steps) on 128 random 3x16x16 images, with augmentation, under both backends:
    finite weights, running statistics moved, one update of them per step."""
    x, y = _images()
    rec = Recipe(epochs=1, batch_size=16, optimizer="sgd", lr=0.05, mirror=True, shift=2, label_smoothing=0.1)
    for backend in ("loop", "vmap"):
        state = _train(x, y, [0, 1], spec, rec, backend, n_models=2, n_classes=10).state()
        assert all(torch.isfinite(t.float()).all() for t in state.values()), backend
        means = [n for n in state if n.endswith("running_mean")]
        assert means and all(state[n].abs().max() > 0 for n in means), backend
        assert all(int(state[n][0]) == 4 for n in state if n.endswith("num_batches_tracked")), backend


@pytest.mark.parametrize("spec", [RESNET, WRN], ids=["resnet", "wrn"])
def test_loop_and_vmap_give_the_same_batchnorm_models(spec, float64):
    """Same seed, 4 steps with augmentation and label smoothing: the same weights and running
    statistics from both backends. In float64, so that the comparison is tight (1e-9): in float32
    these tiny random-label nets amplify rounding differences to ~1e-2 within 4 steps (both
    backends agree to 2e-7 after one step)."""
    x, y = _images()
    rec = Recipe(epochs=1, batch_size=16, optimizer="sgd", lr=0.05, mirror=True, shift=2, label_smoothing=0.1)
    loop = _train(x.double(), y, [0, 1], spec, rec, "loop", n_models=2, n_classes=10).state()
    vmap = _train(x.double(), y, [0, 1], spec, rec, "vmap", n_models=2, n_classes=10).state()
    assert loop.keys() == vmap.keys() and next(iter(loop.values())).dtype == torch.float64
    for name, t in loop.items():
        torch.testing.assert_close(vmap[name], t, rtol=1e-9, atol=1e-9, msg=name)
    assert any("running_var" in n for n in loop)


# -- precision and compilation ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["loop", "vmap"])
def test_bf16_autocast_trains_finite_models_close_to_fp32(backend):
    """bf16 changes the numbers (gap > 0) but not the training (gap well below the distance moved),
    on a CNN without BatchNorm; a BatchNorm ResNet trains to finite weights (its bf16 gradients are
    far noisier at initialisation: ~30% relative L2 error on a CPU, see the trainer's docstring)."""
    x, y = _images(64)
    y = y % 2
    x[y == 1, :, :6] += 1.0
    base = dict(epochs=2, batch_size=16, optimizer="sgd", lr=0.05)
    cnn = ArchSpec("cnn", width=8, depth=2)
    run = lambda spec, **kw: _train(x, y, [0, 1], spec, Recipe(**(base | kw)), backend, n_models=2, n_classes=2).state()
    fp32, bf16, init = run(cnn), run(cnn, precision="bf16"), run(cnn, lr=0.0)
    assert all(torch.isfinite(t).all() and t.dtype == torch.float32 for t in bf16.values())
    for name in ("0.weight", "3.weight", "8.weight"):
        moved, gap = (fp32[name] - init[name]).norm(), (bf16[name] - fp32[name]).norm()
        assert 0 < gap < 0.1 * moved, name
    resnet = run(RESNET, precision="bf16")
    assert all(torch.isfinite(t.float()).all() and t.dtype in (torch.float32, torch.int64) for t in resnet.values())


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(fn):
        def call(*a, **k):
            raise RuntimeError("no compiler here")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    x, y = _images(64)
    rec = Recipe(epochs=1, batch_size=16, optimizer="sgd", lr=0.05)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no compiler here"):
        compiled = _train(x, y, [0], WRN, replace(rec, compile=True), "loop", n_models=2,
                          n_classes=10).state()
    eager = _train(x, y, [0], WRN, rec, "loop", n_models=2, n_classes=10).state()
    assert all(torch.equal(compiled[n], t) for n, t in eager.items())


@pytest.mark.skipif(os.environ.get("PRIVAUDIT_TEST_COMPILE") != "1",
                    reason="slow: ~25 s on a 2-core CPU with a cold Inductor cache (it builds C++ kernels), "
                           "~6 s warm; set PRIVAUDIT_TEST_COMPILE=1 to run it")
@pytest.mark.parametrize("backend", ["wide", "loop"])
def test_compiled_training_matches_eager(backend):
    x, y = _toy()
    rec = Recipe(epochs=1, batch_size=16, optimizer="sgd", lr=0.05)
    spec = ArchSpec("mlp", (16,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)     # a fallback to eager would fail the test
        compiled = _train(x, y, [0, 1], spec, replace(rec, compile=True), backend).state()
    eager = _train(x, y, [0, 1], spec, rec, backend).state()
    for name, t in eager.items():
        torch.testing.assert_close(compiled[name], t, rtol=1e-5, atol=1e-6, msg=name)


def test_vmap_batches_are_channels_last_per_model_on_cuda_only():
    xb = torch.randn(3, 4, 2, 5, 5)
    cl = trainer.stacked_channels_last(xb)
    assert torch.equal(cl, xb)
    assert all(cl[k].stride(1) == 1 and cl[k].stride(3) == 3 * 2 for k in range(3))  # channels innermost
    grouped = cl.movedim(0, 1).reshape(4, 3 * 2, 5, 5)             # what vmap's conv rule builds: a view
    assert grouped.data_ptr() == cl.data_ptr() and grouped.is_contiguous(memory_format=torch.channels_last)
    spec = ArchSpec("cnn", width=2, depth=1)
    group = VmapGroup(spec, (2, 5, 5), 3, stack_states([init_model(spec, (2, 5, 5), 3, s) for s in range(3)]))
    on_gpu, on_cpu = trainer.batch_layout(group, torch.device("cuda")), trainer.batch_layout(group, torch.device("cpu"))
    assert on_gpu(xb).stride() == cl.stride() and on_cpu(xb).stride() == xb.stride()


@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
def test_fused_adam_equals_torch_adam_bit_for_bit(weight_decay):
    """``recipe.FusedAdam`` (the default optimizer, without torch.optim.Optimizer and its
    torch._dynamo import) makes exactly torch.optim.Adam(fused=True)'s steps, with a changing
    learning rate and a parameter that gets no gradient on some steps."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(4, 7, 5)), torch.nn.Parameter(torch.randn(4, 5)),
            torch.nn.Parameter(torch.randn(3))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = ours[2].detach().clone()
    opts = (make_optimizer(Recipe(optimizer="adam", lr=0.01, weight_decay=weight_decay), ours),
            torch.optim.Adam(theirs, lr=0.01, weight_decay=weight_decay, fused=True))
    assert isinstance(opts[0], FusedAdam)
    x = torch.randn(4, 3, 7)
    for step in range(30):
        for ps, opt in zip((ours, theirs), opts):
            for group in opt.param_groups:
                group["lr"] = 0.01 * (1 - step / 30)

            def closure():
                opt.zero_grad(set_to_none=True)
                loss = ((x @ ps[0]).sum(-1) + ps[1].sum(-1, keepdim=True)).pow(2).mean()
                if step % 3 == 0:
                    loss = loss + ps[2].square().sum()       # ps[2]: a gradient every third step
                loss.backward()
                return loss
            opt.step(closure)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert not torch.equal(ours[2], start)          # the sometimes-updated parameter did move


def test_default_audit_optimizer_does_not_import_dynamo():
    """Constructing and stepping the default optimizer leaves torch._dynamo unimported (its import
    is 1.2-1.6 s of the default audit); checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from privaudit.training.recipe import Recipe, make_optimizer\n"
            "p = torch.nn.Parameter(torch.ones(3)); opt = make_optimizer(Recipe(optimizer='adam'), [p])\n"
            "def closure():\n    opt.zero_grad(); l = (p * p).sum(); l.backward(); return l\n"
            "opt.step(closure); assert p.grad is not None\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out
