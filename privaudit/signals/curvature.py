"""Input-loss curvature of K models at once (membership signal of "Curvature Clues").

References
----------
* Ravikumar, Soufleri, Roy, "Curvature Clues: Decoding Deep Learning Privacy with Input Loss
  Curvature", NeurIPS 2024 -- zero-order (black-box) estimator, released code
  ``precompute_scores/precompute_cifar10_scores.py::get_curvature_for_batch_zo_v2``
  (official repository DeepakTatachar/Curvature-Clues).
* Ravikumar, Soufleri, Hashemi, Roy, "Unveiling Privacy, Memorization, and Input Curvature
  Links", ICML 2024 -- ``Curv(x) = tr(H_x)`` (Eq. 7) estimated with Hutchinson and a finite
  difference of gradients (Sec. 6.2; code ``calc_curv_fz_models.py`` in
  DeepakTatachar/Privacy-Memorization-Curvature).

What each estimator measures (derivations: ``docs/derivations.md``; ``H = d^2 loss / dx^2`` for
one model and one sample, ``d`` = number of input entries, ``r, s`` independent Rademacher vectors
in ``{-1, +1}^d``):

================================  =====================================  ==========================
function                          estimates (expectation over probes)    cost per sample and probe
================================  =====================================  ==========================
``zero_order_curvature``          ``h * E|r^T H s|`` ~ ``h sqrt(2/pi)    4 forwards (loss queries
                                  ||H||_F`` (Frobenius norm, NOT tr H)   only: black-box)
``hutchinson_trace``              ``tr(H)`` (exact HVPs)                 one double backward
``hutchinson_trace_sq``           ``tr(H^2) = ||H||_F^2`` (exact HVPs)   (same pass: ``hutchinson``
                                                                         gives both)
``gradient_difference_curvature`` ``h^2 tr(H^2)`` (``squared=True``) or  one gradient
                                  ``h E||H r||`` (``squared=False``)
================================  =====================================  ==========================

All four are finite or exact second-order quantities of the loss as a function of the model's
*input* (the normalised input space the model sees). Finite differences (zero-order and
gradient-difference) cross the kinks of ReLU / max-pool networks, so for such networks they
measure the curvature of a *smoothed* loss and, at any practical ``h``, do not approach the
autodiff Hessian as ``h`` shrinks (``docs/derivations.md``); the autodiff Hessian used by the
Hutchinson estimators ignores those kinks. With smooth activations (softplus, tanh, GELU) and fp64
they agree. As an estimate of ``v^T H v``, an fp32 loss second difference with ``h <= 3e-3`` is
dominated by rounding: pass ``dtype=torch.float64`` (and a forward that accepts fp64) or a larger
``h``. For *ranking* samples, fp32 at ``h = 1e-3`` with the stable loss used by default matches
fp64 (measured: ``benchmarks/RESULTS.md``, "h, dtype, loss numerics").

Randomness
----------
The probe vectors are *shared across the K models* and depend only on
``(seed, sample id, probe/round index, stream)`` through a counter-based hash
(``lowbias32`` mixing, 32 signs per hash). Sample ``i``'s vectors are therefore identical
whatever the batch it is in, its position, ``batch_size`` or the grouping of models, and
results for model ``k`` are the same whether it is evaluated alone or inside a group.
``sample_ids`` (default ``arange(B)``) are the global indices of the rows of ``x``. To draw
fresh vectors per augmentation, pass a different ``seed`` per augmentation. The Hutchinson and
gradient-difference estimators use the same probe stream, so with equal seeds they see the
same vectors.

Models are called as pure functions: pass eval-mode forwards (no dropout, no BatchNorm
statistics updates, no cross-sample operations).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from privaudit.device import as_device
from privaudit.errors import SignalError

__all__ = [
    "HutchinsonEstimates",
    "cross_entropy_loss",
    "gradient_difference_curvature",
    "hutchinson",
    "hutchinson_trace",
    "hutchinson_trace_sq",
    "rademacher",
    "stable_cross_entropy",
    "zero_order_curvature",
]

LossFn = Callable[[Tensor, Tensor], Tensor]

# Streams of the counter-based generator (part of the hash key).
_STREAM_ZO_V = 0
_STREAM_ZO_U = 1
_STREAM_PROBE = 2  # Hutchinson and gradient difference

_M32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Counter-based Rademacher vectors
# --------------------------------------------------------------------------------------------
def _mul32(x: Tensor, c: int) -> Tensor:
    """``(x * c) mod 2**32`` for int64 ``x`` in ``[0, 2**32)``, without int64 overflow."""
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _M32


def _mix32(x: Tensor) -> Tensor:
    """``lowbias32`` integer hash (C. Wellons) on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def rademacher(sample_ids: Tensor, shape: tuple[int, ...], *, seed: int, index: int,
               stream: int = _STREAM_PROBE, dtype: torch.dtype = torch.float32) -> Tensor:
    """Rademacher vectors ``[len(sample_ids), *shape]`` with entries in ``{-1, +1}``.

    Row ``i`` depends only on ``(seed, sample_ids[i], index, stream)`` (and ``shape``): a
    counter-based hash gives 32 signs per (key, word) so nothing depends on batch composition.
    """
    ids = sample_ids.to(torch.int64).reshape(-1, 1)
    d = math.prod(shape)
    n_words = -(-d // 32)
    seed = int(seed) & ((1 << 64) - 1)
    key = torch.full_like(ids, 0x9E3779B9)
    for part in ((seed >> 32) & _M32, seed & _M32, int(stream) & _M32, int(index) & _M32):
        key = _mix32(key ^ part)
    key = _mix32(key ^ ((ids >> 32) & _M32))
    key = _mix32(key ^ (ids & _M32))
    words = torch.arange(n_words, dtype=torch.int64, device=ids.device).reshape(1, -1)
    bits_src = _mix32(_mix32(key ^ _mul32(words, 0x2545F491)) ^ 0x68E31DA4)  # [B, n_words]
    shifts = torch.arange(0, 32, 8, dtype=torch.int64, device=ids.device)
    byte = (bits_src.unsqueeze(-1) >> shifts) & 0xFF  # [B, n_words, 4], low byte first
    signs = F.embedding(byte, _sign_table(dtype, ids.device))  # [B, n_words, 4, 8]
    return signs.reshape(ids.shape[0], n_words * 32)[:, :d].reshape(ids.shape[0], *shape)


_SIGN_TABLES: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _sign_table(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``table[b, j] = +1 if bit j of byte b is 0 else -1``, shape [256, 8]."""
    key = (dtype, device)
    if key not in _SIGN_TABLES:
        bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
        _SIGN_TABLES[key] = (1 - 2 * bits).to(dtype=dtype, device=device)
    return _SIGN_TABLES[key]


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------
def _check_logits(logits: Tensor, y: Tensor) -> tuple[int, int, int]:
    if logits.ndim != 3:
        raise SignalError(f"forward must return logits of shape [K, N, C], got {tuple(logits.shape)}")
    k, n, c = logits.shape
    if y.min() < 0 or y.max() >= c:
        raise SignalError(f"labels y must lie in 0..{c - 1} for {c} logits")
    return k, n, c


def stable_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy ``[K, N]`` (logits ``[K, N, C]``, labels ``[N]``) computed as
    ``softplus(logsumexp_{c != y} z_c - z_y)``: the estimators' default loss.

    The same function as ``F.cross_entropy`` but with full *relative* precision for confident
    predictions: ``F.cross_entropy`` evaluates ``log(1 + e^-margin)`` as ``log(sum)``, which fp32
    rounds to multiples of ~6e-8 (exactly 0 beyond a margin of ~17). A loss finite difference on a
    confident sample is then rounding noise or exactly 0 (log-curvature -50.7); on the MNIST CNN
    ~7% of all (model, sample) zero-order values were exactly 0 (``benchmarks/curvature_h.py``).
    """
    k, n, _ = _check_logits(logits, y)
    idx = y.reshape(1, n, 1).expand(k, n, 1)
    z_y = logits.gather(-1, idx).squeeze(-1)
    others = logits.scatter(-1, idx, float("-inf"))
    d = torch.logsumexp(others, dim=-1) - z_y
    return torch.logaddexp(torch.zeros_like(d), d)   # softplus without its x > 20 cut-off


def cross_entropy_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample ``F.cross_entropy`` ``[K, N]``: torch's form, which fp32 rounds for confident
    predictions (see :func:`stable_cross_entropy`); kept to measure that difference."""
    k, n, c = _check_logits(logits, y)
    target = y.reshape(1, n).expand(k, n).reshape(-1)
    return F.cross_entropy(logits.reshape(k * n, c), target, reduction="none").reshape(k, n)


def _check_inputs(x: Tensor, y: Tensor, n_models: int, sample_ids: Tensor | None,
                  batch_size: int, loss_fn: LossFn | None, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SignalError(f"x must be a tensor of shape [B, *input_shape], got {shape}")
    b = x.shape[0]
    if b == 0:
        raise SignalError("x has no samples (B = 0)")
    if not isinstance(y, Tensor) or y.ndim < 1 or y.shape[0] != b:
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise SignalError(f"y must have shape ({b},) to match x {tuple(x.shape)}, got {shape}")
    if loss_fn is None and (y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool):
        raise SignalError(f"y must be integer class labels of shape ({b},), got {y.dtype} {tuple(y.shape)}")
    if not x.dtype.is_floating_point or not bool(torch.isfinite(x).all()):
        raise SignalError("x must be a floating-point tensor with finite values (found NaN/inf or non-float)")
    if not isinstance(n_models, int) or n_models < 1:
        raise SignalError(f"n_models must be a positive integer, got {n_models!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SignalError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise SignalError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    as_device(x.device)   # on a GPU: full fp32 (TF32 rounding would swamp the finite differences)
    if sample_ids is None:
        return torch.arange(b, dtype=torch.int64, device=x.device)
    if not isinstance(sample_ids, Tensor) or sample_ids.shape != (b,) or sample_ids.dtype.is_floating_point \
            or sample_ids.dtype == torch.bool:
        shape = tuple(sample_ids.shape) if isinstance(sample_ids, Tensor) else type(sample_ids).__name__
        raise SignalError(f"sample_ids must be an integer tensor of shape ({b},), got {shape}")
    return sample_ids.to(device=x.device, dtype=torch.int64)


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SignalError(f"{name} must be an integer >= 1, got {value!r}")


def _check_h(h: float, offset: float = 0.0) -> float:
    """The finite-difference step ``h`` (and the probe ``offset`` that scales with it)."""
    if not isinstance(h, (int, float)) or isinstance(h, bool) or not math.isfinite(h) or h <= 0:
        raise SignalError(f"h must be a finite number > 0, got {h!r}")
    if not math.isfinite(offset):
        raise SignalError(f"offset must be finite, got {offset!r}")
    return float(h)


def _losses(out: Tensor, y: Tensor, loss_fn: LossFn | None, k: int, n: int) -> Tensor:
    if not isinstance(out, Tensor) or out.ndim < 2 or out.shape[0] != k or out.shape[1] != n:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise SignalError(f"forward must return shape [K={k}, N={n}, ...], got {shape}")
    loss = stable_cross_entropy(out, y) if loss_fn is None else loss_fn(out, y)
    if not isinstance(loss, Tensor) or loss.shape != (k, n):
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise SignalError(f"loss_fn must return per-sample losses of shape ({k}, {n}), got {shape}")
    return loss


def _call(forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Call the model; a dtype mismatch (fp32 model, ``dtype=float64``) becomes a SignalError."""
    try:
        return forward(x)
    except RuntimeError as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "dtype" in msg.lower() or "expected scalar type" in msg.lower():
            raise SignalError(f"forward failed on {x.dtype} inputs ({msg}); cast the models to "
                              f"{x.dtype} or pass a matching dtype=") from err
        raise


def _check_finite(result: Tensor, what: str) -> Tensor:
    if not bool(torch.isfinite(result).all()):
        raise SignalError(f"{what}: the model's losses or derivatives are NaN/inf for some samples")
    return result


# --------------------------------------------------------------------------------------------
# Zero-order (black-box) estimator
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def zero_order_curvature(forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, n_models: int,
                         h: float = 1e-3, rounds: int = 10, seed: int = 0,
                         sample_ids: Tensor | None = None, batch_size: int = 1024,
                         dtype: torch.dtype = torch.float32, loss_fn: LossFn | None = None,
                         offset: float = 0.0) -> Tensor:
    """Zero-order input-loss curvature of K models, exactly the released Curvature-Clues estimator.

    Ravikumar et al. NeurIPS 2024, official code ``get_curvature_for_batch_zo_v2``
    (DeepakTatachar/Curvature-Clues, ``precompute_scores/precompute_cifar10_scores.py``)::

        for t in 1..rounds:  v = h*r_t, u = h*s_t   (r_t, s_t Rademacher, shared by the K models)
            t1..t4 = loss(x+v+u), loss(x-v+u), loss(x+v-u), loss(x-v-u)   (per sample)
            curv  += |t1 - t2 - t3 + t4| / (4h)
        Curv_ZO = curv / rounds

    **What it estimates.** By second-order Taylor ``t1 - t2 - t3 + t4 = 4 v^T H u + O(h^4)``, so
    each round gives ``h |r^T H s|`` and ``Curv_ZO ~ h E|r^T H s|``. Since
    ``E (r^T H s)^2 = ||H||_F^2``, for large input dimension (CLT) ``Curv_ZO ~ h sqrt(2/pi)
    ||H||_F``: a Frobenius-norm curvature (square root of ``tr(H^2)``), **not** ``tr(H)``.
    ``h`` is a constant factor (a shift after the attacks' log transform). For ReLU / max-pool
    networks the finite difference measures a *smoothed* loss, not the autodiff Hessian, and
    depends on ``h``. As an estimate of the Hessian, the fp32 second difference is rounding
    noise for ``h <= 3e-3``: use ``dtype=torch.float64`` with an fp64 forward, or ``h ~ 0.1``
    (derivation: ``docs/derivations.md``).

    Parameters
    ----------
    forward : shared-input forward ``x [N, *input_shape] -> [K, N, C]`` (e.g. ``group.forward``),
        eval mode. It receives inputs of ``dtype``.
    x : ``[B, *input_shape]`` in the model's (normalised) input space; y : labels ``[B]``.
    n_models : K. h : perturbation scale (entries of v, u are ``+-h``). rounds : >= 1.
    seed, sample_ids : the probes depend only on ``(seed, sample_ids[i], round)``
        (default ``sample_ids = arange(B)``).
    batch_size : samples per forward call (the forward sees ``4 * batch_size`` inputs).
    dtype : dtype of the perturbed inputs and of the returned tensor; the second difference
        is accumulated in float64.
    loss_fn : ``(forward_output [K, N, ...], y [N]) -> per-sample loss [K, N]``; default
        cross-entropy with ``reduction='none'``.
    offset : the released code draws ``v = h*(r + 1e-7)``; ``offset=1e-7`` reproduces that
        quirk (negligible), default 0.

    Returns ``[K, B]`` (dtype ``dtype``), non-negative. Cost: ``4 * rounds`` forwards per sample.
    """
    ids = _check_inputs(x, y, n_models, sample_ids, batch_size, loss_fn, dtype)
    h = _check_h(h, offset)
    _check_count("rounds", rounds)
    b_total, shape = x.shape[0], tuple(x.shape[1:])
    out = torch.empty(n_models, b_total, dtype=dtype, device=x.device)
    for start in range(0, b_total, batch_size):
        xb = x[start:start + batch_size].to(dtype)
        yb = y[start:start + batch_size]
        idb = ids[start:start + batch_size]
        b = xb.shape[0]
        y4 = torch.cat([yb, yb, yb, yb])
        acc = torch.zeros(n_models, b, dtype=torch.float64, device=x.device)
        for t in range(rounds):
            v = h * (rademacher(idb, shape, seed=seed, index=t, stream=_STREAM_ZO_V, dtype=dtype) + offset)
            u = h * (rademacher(idb, shape, seed=seed, index=t, stream=_STREAM_ZO_U, dtype=dtype) + offset)
            x4 = torch.cat([xb + v + u, xb - v + u, xb + v - u, xb - v - u])
            loss = _losses(_call(forward, x4), y4, loss_fn, n_models, 4 * b).to(torch.float64)
            t1, t2, t3, t4 = loss.reshape(n_models, 4, b).unbind(1)
            acc += ((t1 - t2 - t3 + t4) / (4 * h)).abs()
        out[:, start:start + b] = (acc / rounds).to(dtype)
    return _check_finite(out, "zero_order_curvature")


# --------------------------------------------------------------------------------------------
# White-box estimators
# --------------------------------------------------------------------------------------------
class HutchinsonEstimates(NamedTuple):
    trace: Tensor     # [K, B]: mean over probes of v^T H v  ->  tr(H)
    trace_sq: Tensor  # [K, B]: mean over probes of ||H v||^2 ->  tr(H^2) = ||H||_F^2


def _expand_leaf(xb: Tensor, k: int) -> Tensor:
    return xb.unsqueeze(0).expand(k, *xb.shape).clone().requires_grad_(True)


def _input_grad(forward_each, xk: Tensor, y: Tensor, loss_fn, create_graph: bool) -> Tensor:
    k, n = xk.shape[:2]
    loss = _losses(_call(forward_each, xk), y, loss_fn, k, n).sum()
    if not loss.requires_grad:  # loss does not depend on x
        return torch.zeros_like(xk)
    (g,) = torch.autograd.grad(loss, xk, create_graph=create_graph, allow_unused=True)
    return torch.zeros_like(xk) if g is None else g


def hutchinson(forward_each: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, n_models: int,
               probes: int = 10, seed: int = 0, sample_ids: Tensor | None = None,
               batch_size: int = 256, dtype: torch.dtype = torch.float32,
               loss_fn: LossFn | None = None) -> HutchinsonEstimates:
    """Hutchinson estimates of ``tr(H_x)`` and ``tr(H_x^2)`` with exact Hessian-vector products.

    ``H_x`` is the autodiff Hessian of the per-sample loss w.r.t. the input, for each of the K
    models. ICML'24 companion paper Eq. 7 defines the curvature as ``tr(H_x)`` (``trace``); its
    text and code score finite differences ``||grad(x + hv) - grad(x)||^2 ~ h^2 ||H v||^2``, whose
    exact counterpart is ``trace_sq`` (see :func:`gradient_difference_curvature`).

    ``x`` is expanded to a leaf ``[K, b, *input_shape]``; ``loss = sum_{k, i} loss_k(x_{k,i})``.
    Each term depends only on its own input, so one backward (``create_graph=True``) gives every
    per-model, per-sample gradient ``g``, and a second backward of ``(g * v).sum()`` gives every
    ``H v`` at once (double backward, which on a CPU is cheaper than forward-over-reverse
    ``torch.func.jvp`` of the gradient).
    Per probe: ``v^T H v`` (unbiased for ``tr H``, variance ``2(||H||_F^2 - sum_i H_ii^2)``) and
    ``||H v||^2`` (unbiased for ``tr H^2``). ``v`` is Rademacher, shared across the K models and
    keyed by ``(seed, sample id, probe)``.

    ``forward_each``: ``x [K, N, *input_shape] -> [K, N, C]`` (``group.forward_each``), a pure
    eval-mode function accepting ``dtype`` inputs. ``batch_size`` = samples per chunk (the graph
    holds ``K * batch_size`` inputs). Cost per probe: about one double backward (3.8-4.4
    forward-equivalents measured, ``benchmarks/RESULTS.md`` "Cost of the estimators"), plus one
    forward+backward per chunk. Returns float ``[K, B]`` pairs in ``dtype``.
    """
    ids = _check_inputs(x, y, n_models, sample_ids, batch_size, loss_fn, dtype)
    _check_count("probes", probes)
    b_total, shape = x.shape[0], tuple(x.shape[1:])
    trace = torch.empty(n_models, b_total, dtype=dtype, device=x.device)
    trace_sq = torch.empty_like(trace)
    red = tuple(range(2, 2 + len(shape)))
    with torch.enable_grad():
        for start in range(0, b_total, batch_size):
            xb = x[start:start + batch_size].detach().to(dtype)
            yb = y[start:start + batch_size]
            idb = ids[start:start + batch_size]
            xk = _expand_leaf(xb, n_models)
            g = _input_grad(forward_each, xk, yb, loss_fn, create_graph=True)
            acc_tr = torch.zeros(n_models, xb.shape[0], dtype=torch.float64, device=x.device)
            acc_sq = torch.zeros_like(acc_tr)
            for p in range(probes):
                v = rademacher(idb, shape, seed=seed, index=p, stream=_STREAM_PROBE, dtype=dtype)
                if g.requires_grad:
                    (hv,) = torch.autograd.grad((g * v).sum(), xk, retain_graph=p < probes - 1,
                                                allow_unused=True)
                    hv = torch.zeros_like(xk) if hv is None else hv.detach()
                else:  # gradient constant in x: H = 0
                    hv = torch.zeros_like(xk)
                acc_tr += (hv * v).sum(dim=red, dtype=torch.float64)
                acc_sq += hv.square().sum(dim=red, dtype=torch.float64)
            n = xb.shape[0]
            trace[:, start:start + n] = (acc_tr / probes).to(dtype)
            trace_sq[:, start:start + n] = (acc_sq / probes).to(dtype)
            del g, xk
    return HutchinsonEstimates(_check_finite(trace, "hutchinson_trace"),
                               _check_finite(trace_sq, "hutchinson_trace_sq"))


def hutchinson_trace(forward_each: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, n_models: int,
                     probes: int = 10, seed: int = 0, sample_ids: Tensor | None = None,
                     batch_size: int = 256, dtype: torch.dtype = torch.float32,
                     loss_fn: LossFn | None = None) -> Tensor:
    """``[K, B]`` Hutchinson estimate of ``tr(H_x)`` (ICML'24 Eq. 7), mean of ``v^T H v`` over
    ``probes`` Rademacher probes with exact HVPs. May be negative. See :func:`hutchinson`
    (which returns this and ``tr(H^2)`` from the same pass)."""
    return hutchinson(forward_each, x, y, n_models=n_models, probes=probes, seed=seed,
                      sample_ids=sample_ids, batch_size=batch_size, dtype=dtype, loss_fn=loss_fn).trace


def hutchinson_trace_sq(forward_each: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, n_models: int,
                        probes: int = 10, seed: int = 0, sample_ids: Tensor | None = None,
                        batch_size: int = 256, dtype: torch.dtype = torch.float32,
                        loss_fn: LossFn | None = None) -> Tensor:
    """``[K, B]`` estimate of ``tr(H_x^2) = ||H_x||_F^2 = E||H v||^2`` (mean of ``||H v||^2``
    over Rademacher probes, exact HVPs). Non-negative. The limit ``h -> 0`` of
    ``gradient_difference_curvature(...) / h^2`` for smooth networks. See :func:`hutchinson`."""
    return hutchinson(forward_each, x, y, n_models=n_models, probes=probes, seed=seed,
                      sample_ids=sample_ids, batch_size=batch_size, dtype=dtype, loss_fn=loss_fn).trace_sq


def gradient_difference_curvature(forward_each: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *,
                                  n_models: int, h: float = 1e-3, probes: int = 10, seed: int = 0,
                                  squared: bool = True, sample_ids: Tensor | None = None,
                                  batch_size: int = 256, dtype: torch.dtype = torch.float32,
                                  loss_fn: LossFn | None = None, offset: float = 0.0) -> Tensor:
    """Companion-paper curvature ``(1/n) sum_i ||grad l(x + h v_i) - grad l(x)||^2``.

    Ravikumar, Soufleri, Hashemi, Roy, ICML 2024, Sec. 6.2 (official code
    ``calc_curv_fz_models.py``), ``v_i`` Rademacher, ``n = probes``.
    Since ``grad l(x + h v) - grad l(x) = h H v + O(h^2)``:

    * ``squared=True`` (paper text, default): estimates ``h^2 E||H v||^2 = h^2 tr(H^2)``;
    * ``squared=False`` (released code ``regr += ||grad_diff||_2``): estimates ``h E||H v||``,
      which is ``<= h ||H||_F`` (Jensen) and close to it when ``||H v||`` concentrates.

    Differences from the released code: gradients are of the per-sample loss (the code's
    ``CrossEntropyLoss()`` mean reduction adds a 1/batch factor, which would make scores depend
    on batch size); ``offset=1e-7`` reproduces its ``v = h (r + 1e-7)``. For ReLU / max-pool nets
    this finite difference measures a smoothed loss (``docs/derivations.md``); fp32 gradients
    limit the accuracy for small ``h`` (use ``dtype=torch.float64`` with an fp64 forward).

    Probe vectors are the same as :func:`hutchinson`'s for equal ``seed`` and ``sample_ids``.
    Cost: ``probes + 1`` forward+backward passes (about 2 forwards each) per sample.
    Returns ``[K, B]`` in ``dtype``.
    """
    ids = _check_inputs(x, y, n_models, sample_ids, batch_size, loss_fn, dtype)
    h = _check_h(h, offset)
    _check_count("probes", probes)
    b_total, shape = x.shape[0], tuple(x.shape[1:])
    out = torch.empty(n_models, b_total, dtype=dtype, device=x.device)
    red = tuple(range(2, 2 + len(shape)))
    with torch.enable_grad():
        for start in range(0, b_total, batch_size):
            xb = x[start:start + batch_size].detach().to(dtype)
            yb = y[start:start + batch_size]
            idb = ids[start:start + batch_size]
            g0 = _input_grad(forward_each, _expand_leaf(xb, n_models), yb, loss_fn, False).detach()
            acc = torch.zeros(n_models, xb.shape[0], dtype=torch.float64, device=x.device)
            for p in range(probes):
                v = h * (rademacher(idb, shape, seed=seed, index=p, stream=_STREAM_PROBE, dtype=dtype) + offset)
                g1 = _input_grad(forward_each, _expand_leaf(xb + v, n_models), yb, loss_fn, False).detach()
                sq = (g1 - g0).square().sum(dim=red, dtype=torch.float64)
                acc += sq if squared else sq.sqrt()
            out[:, start:start + xb.shape[0]] = (acc / probes).to(dtype)
    return _check_finite(out, "gradient_difference_curvature")
