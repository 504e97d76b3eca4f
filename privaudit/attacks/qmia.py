"""QMIA, membership inference by quantile regression (Bertran, Tang, Roth, Kearns, Morgenstern, Wu,
"Scalable Membership Inference Attacks via Quantile Regression", NeurIPS 2023; official code
amazon-science/quantile-mia).

No reference models: the attacker knows the audited model's score on samples it did *not* train on
(known non-members) and fits a regressor that predicts, from a sample's input and label alone, the
distribution of the model's score on non-members like it. A sample whose score lies far above what
is predicted for it is a member.

**Signal** ``s`` (default ``hinge``): the logit margin ``z_y - max_{y' != y} z_{y'}``, the score of
the official code (``label_logit_and_hinge_scoring_fn``; ``hinge`` in
:mod:`privaudit.signals.transforms`), averaged over the augmented queries.

**Score** (``loss="gaussian"``, the paper's Gaussian parametrisation, the official code's
``gaussian_loss_fn``): the non-member score at (x, y) is ``N(mu(x, y), sigma(x, y)^2)``, fitted by
minimising the Gaussian negative log-likelihood over the known non-members,

    ``NLL = log sigma(x, y) + (s - mu(x, y))^2 / (2 sigma(x, y)^2)``,

and the attack score is the standardised margin ``score = (s - mu(x, y)) / sigma(x, y)``, higher =
member. It is monotone in the implied quantile ``Phi(score)`` of s among non-members like x, so one
score serves every FPR: thresholding at ``Phi^{-1}(1 - alpha)`` is the paper's test at FPR alpha
(Sec. 3, the predicted ``1 - alpha`` quantile ``mu + sigma Phi^{-1}(1 - alpha)``).
``loss="pinball"``: one quantile ``q_{1-alpha}(x, y)`` by the pinball loss (the paper's Eq. 2) and
``score = s - q_{1-alpha}``, exact at that FPR only.

**Cross-fitting** (``folds=K``, default 5). Every row of the pool is put in one of K seeded folds;
regressor k is fitted on the known non-members (``public``) *outside* fold k and scores the rows
*in* fold k. So each row, member or not, is scored by a regressor that never saw it, and members
and non-members of a fold are scored by the same function: under shuffled membership the scores of
the two are exchangeable and the attack is at chance. When the auditor owns the non-members (an
audit of its own model and data), ``public`` can be *all* the target's non-members: then every
sample is evaluated, nothing is left out of the ROC, and each regressor sees (K-1)/K of the
non-members -- a legitimate protocol because no row's score depends on its own membership label
other than through the held-out fold (``benchmarks/qmia_vs_lira.py`` reports it as
``qmia_crossfit``). This is what the population protocol does (:mod:`privaudit.evaluation.protocol`:
``public`` = all of each target's non-members when ``folds >= 2``). ``folds=0``: one regressor on
all public rows, which are then scored in-sample, so the protocol gives it a seeded half of the
non-members and leaves that half out of the ROC.

**Regressor** (``regressor``). ``mlp`` (default): a network from the model registry
(:mod:`privaudit.models.architectures`: ``mlp`` with ``hidden`` units, or ``cnn`` of ``width``)
on the input x, with ``3 C`` outputs: C class logits, C means and C log-standard deviations; the
label y selects its own (mu, log sigma) (the label's one-hot enters as in the official code's
per-class outputs). Trained with Adam (``lr``, batches of ``batch_size``) on the Gaussian NLL of the
standardised scores plus ``aux`` x the cross-entropy of the class logits on the same public rows,
early-stopped on the NLL of a seeded 20% of them (``patience`` epochs, at most ``max_epochs``).
If the best network does not beat the constant fit (mean and ddof-0 std of the fitting rows) on
that held-out 20%, the constant is used: a regressor that learned no difficulty would only add
noise to s (on a 1,000-image CIFAR-10 pool the network's mu *lowered* the AUC from 0.638, the raw
hinge, to 0.576 on 3 targets; with this check QMIA is back at 0.638).
Why the auxiliary classification loss: the paper's regressor is an ImageNet-pretrained ConvNeXt, so
its features already know which images are hard; a small network trained from scratch on a few
hundred to a few thousand scores does not, and learning to classify the same public non-members
gives its trunk that notion of difficulty without any pretrained weights or extra data (measured on
mnist5k, 3 targets, cross-fitted on all non-members: AUC 0.536 with ``aux=0``, 0.543 with 1,
0.546 with 3; correlation of mu with the reference models' mean OUT score 0.81 -> 0.87).
``boosting``: scikit-learn's ``HistGradientBoostingRegressor`` on the flattened input plus the
one-hot label (mu by squared error; log sigma^2 by the gamma deviance on out-of-fold squared
residuals, which for fixed mu *is* the Gaussian NLL in sigma^2, since ``log sigma^2 + r^2/sigma^2``
is the gamma deviance of r^2 under mean sigma^2 up to terms free of sigma), early-stopped on 20%:
meant for tabular features; on pixels it was below the network on mnist5k and 5-7x slower.

**Measured** (``benchmarks/qmia_vs_lira.py``, 8 targets, 2 shared CPU cores, 1 thread; AUC
[95% interval], ``benchmarks/RESULTS.md``). Cost per target, K=5, ``mlp`` (wall time on a loaded
machine, up to 2x between runs): 0.9-1.8 s on digits (1,797 samples, 64 pixels), 2-3 s (public
half) and 6.5-13.5 s (all non-members) on mnist5k (5,000, 784 pixels), 1.6-2.4 s on the 1,000-image
CIFAR-10 pool; ``boosting`` on the public half, no cross-fitting: 1.3-1.6 s on digits, 22-56 s on
mnist5k, 12-25 s on CIFAR-10.

* digits, 9 queries: cross-fitted on all non-members 0.512 [0.506, 0.517] (public half 0.508,
  LOSS 0.510); identity query (``configs/digits.yaml``): 0.527 [0.518, 0.536] (public half 0.521
  [0.507, 0.534], LOSS 0.522, offline LiRA 0.583).
* mnist5k: cross-fitted 0.540 [0.534, 0.546], public half 0.533 [0.523, 0.544] (boosting on the
  public half, the previous default, 0.527 [0.520, 0.534]; LOSS 0.520).
* 1,000-image CIFAR-10 pool (16 CNNs, 2 queries): public half 0.643 [0.624, 0.662], cross-fitted
  0.640 [0.623, 0.657] (boosting on the public half 0.633, LOSS 0.634, offline LiRA with 1
  reference 0.661): from 400-800 images and no pretrained features the network learns almost no
  difficulty (a CNN regressor's mu correlates ~0.15 with the reference models' mean OUT score;
  the MLP's ~0.87 on MNIST), so the constant-fit check above mostly falls back to a global
  threshold on the hinge.

QMIA's ceiling is an *offline* difficulty calibration: what offline LiRA estimates from reference
models' OUT scores of the very sample, QMIA must predict from the input alone, so it stays below
offline LiRA with a few references on every population measured here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import warnings

import numpy as np

from privaudit.attacks._common import choice, query_mean, single_threaded, validate
from privaudit.errors import SignalError

if TYPE_CHECKING:   # scikit-learn is imported where it is used: its import costs ~1 s of every run
    from sklearn.ensemble import HistGradientBoostingRegressor

MIN_PUBLIC = 10          # fewer public rows (per fold): no regressor, the public mean/std (a global threshold)
VAR_FLOOR = 1e-12        # relative floor of the predicted variance (gamma deviance needs r^2 > 0)
RESIDUAL_FOLDS = 5       # boosting: out-of-fold residuals for the variance fit
LOG_SIGMA = 7.0          # network: log sigma of the standardised score clipped to [-7, 7]
REGRESSORS = ("mlp", "cnn", "boosting")


def inputs(features: np.ndarray, labels: np.ndarray, n_classes: int, with_label: bool) -> np.ndarray:
    """Regressor inputs ``float32 [n, d (+ n_classes)]``: flattened features and the one-hot label."""
    x = np.asarray(features, dtype=np.float32).reshape(len(labels), -1)
    if not with_label:
        return x
    return np.hstack([x, np.eye(n_classes, dtype=np.float32)[labels]])


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """``int [n]``: the cross-fitting fold of every row (seeded; ``folds`` folds of near-equal size)."""
    from sklearn.model_selection import KFold

    out = np.empty(n, dtype=np.int64)
    for k, (_, test) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(np.arange(n))):
        out[test] = k
    return out


# -- boosting ----------------------------------------------------------------------------------------

def _booster(loss: str, seed: int, **kw) -> HistGradientBoostingRegressor:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(loss=loss, early_stopping=True, validation_fraction=0.2,
                                         n_iter_no_change=10, random_state=seed, **kw)


def _fit(loss: str, x: np.ndarray, y: np.ndarray, seed: int, kw: dict) -> HistGradientBoostingRegressor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # tiny public sets: small-data notices are not errors
        return _booster(loss, seed, **kw).fit(x, y)


def out_of_fold(x: np.ndarray, s: np.ndarray, folds: int, seed: int, kw: dict) -> np.ndarray:
    """``mu_{-k}(x_i)`` for every row: each fold predicted by a mean model fitted on the others."""
    from sklearn.model_selection import KFold

    pred = np.empty_like(s)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(x):
        pred[test] = _fit("squared_error", x[train], s[train], seed, kw).predict(x[test])
    return pred


def gaussian_fit(x_pub: np.ndarray, s_pub: np.ndarray, *, seed: int, kw: dict, folds: int = RESIDUAL_FOLDS):
    """Boosting: the fitted ``(mu, var)`` predictors (callables on inputs) of the non-member score."""
    if len(s_pub) < MIN_PUBLIC:
        return constant_fit(s_pub)
    mu = _fit("squared_error", x_pub, s_pub, seed, kw)
    r2 = (s_pub - out_of_fold(x_pub, s_pub, min(folds, len(s_pub)), seed, kw)) ** 2
    floor = VAR_FLOOR * max(float(r2.mean()), VAR_FLOOR)
    var = _fit("gamma", x_pub, r2 + floor, seed, kw)
    return mu.predict, (lambda x: np.maximum(var.predict(x), floor))


def constant_fit(s_pub: np.ndarray):
    """Too few public rows for a regressor: the public mean and (ddof 0) variance for every input."""
    m, v = float(s_pub.mean()), float(max(s_pub.var(), VAR_FLOOR))
    return (lambda x: np.full(len(x), m)), (lambda x: np.full(len(x), v))


def pinball_fit(x_pub: np.ndarray, s_pub: np.ndarray, quantile: float, *, seed: int, kw: dict):
    """Boosting: the fitted ``quantile``-quantile predictor of the non-member score (pinball loss)."""
    if len(s_pub) < MIN_PUBLIC:
        q = float(np.quantile(s_pub, quantile))
        return lambda x: np.full(len(x), q)
    return _fit("quantile", x_pub, s_pub, seed, kw | {"quantile": quantile}).predict


# -- network -----------------------------------------------------------------------------------------

def network_fit(features: np.ndarray, labels: np.ndarray, s: np.ndarray, train: np.ndarray, *, n_classes: int,
                loss: str, quantile: float, arch: str, hidden: int, width: int, aux: float, lr: float,
                batch_size: int, max_epochs: int, patience: int, seed: int):
    """Network regressor fitted on the rows ``train``: returns ``predict(rows) -> (mu, sigma)``
    (``gaussian``) or ``(q, None)`` (``pinball``), in the units of ``s``.

    Outputs ``[n, 3C]`` (``2C`` for pinball): C class logits (auxiliary cross-entropy, weight
    ``aux``), then per class mu (or q), then per class log sigma; the label selects its own."""
    import torch
    import torch.nn.functional as F

    from privaudit.models.architectures import init_model
    from privaudit.models.architectures._common import ArchSpec

    C = n_classes
    x_all = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if arch == "mlp":
        x_all = x_all.reshape(len(x_all), -1)
    y_all = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    n_out = (3 if loss == "gaussian" else 2) * C
    net = init_model(ArchSpec(kind=arch, hidden=(hidden,), width=width), tuple(x_all.shape[1:]), n_out, seed)
    center, scale = float(s[train].mean()), float(s[train].std()) or 1.0
    target = torch.as_tensor((s - center) / scale, dtype=torch.float32)
    g = torch.Generator().manual_seed(int(seed))
    rows = torch.as_tensor(np.flatnonzero(train))
    rows = rows[torch.randperm(len(rows), generator=g)]
    n_val = max(1, len(rows) // 5)
    val, fit = rows[:n_val], rows[n_val:]
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def heads(idx):
        out = net(x_all[idx])
        pick = lambda block: out[:, block * C:(block + 1) * C].gather(1, y_all[idx][:, None])[:, 0]
        return out[:, :C], pick(1), (pick(2).clamp(-LOG_SIGMA, LOG_SIGMA) if loss == "gaussian" else None)

    def fit_loss(mu, log_sigma, t):
        if loss == "gaussian":
            return log_sigma + 0.5 * torch.exp(-2.0 * log_sigma) * (t - mu) ** 2
        d = t - mu
        return torch.relu(d) * quantile + torch.relu(-d) * (1.0 - quantile)

    best, state, bad = np.inf, None, 0
    for _ in range(max_epochs):
        net.train()
        order = fit[torch.randperm(len(fit), generator=g)]
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            if len(b) < 2:
                continue
            logits, mu, log_sigma = heads(b)
            l = fit_loss(mu, log_sigma, target[b]).mean()
            if aux:
                l = l + aux * F.cross_entropy(logits, y_all[b])
            opt.zero_grad()
            l.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            _, mu, log_sigma = heads(val)
            v = float(fit_loss(mu, log_sigma, target[val]).mean())
        if v < best - 1e-4:
            best, state, bad = v, {k: t.clone() for k, t in net.state_dict().items()}, 0
        else:
            bad += 1
            if bad >= patience:
                break
    # the network must beat the constant fit (the mean / ddof-0 std, or the quantile, of the
    # fitting rows) on the held-out rows, else the constant is used: a regressor that learned no
    # difficulty only adds noise to s (measured on a 1,000-image CIFAR-10 pool)
    t_fit, t_val = target[fit], target[val]
    if loss == "gaussian":
        c_mu, c_log_sigma = t_fit.mean(), torch.log(t_fit.std(unbiased=False).clamp_min(1e-6))
        constant = float(fit_loss(c_mu, c_log_sigma, t_val).mean())
    else:
        c_mu, c_log_sigma = torch.quantile(t_fit, quantile), None
        constant = float(fit_loss(c_mu, None, t_val).mean())
    if state is None or best >= constant:
        mu_c = float(c_mu) * scale + center
        sigma_c = None if c_log_sigma is None else float(torch.exp(c_log_sigma)) * scale
        return lambda idx: (np.full(len(idx), mu_c), None if sigma_c is None else np.full(len(idx), sigma_c))
    net.load_state_dict(state)
    net.eval()

    def predict(idx: np.ndarray):
        with torch.no_grad():
            _, mu, log_sigma = heads(torch.as_tensor(idx))
        mu = mu.double().numpy() * scale + center
        return mu, (None if log_sigma is None else np.exp(log_sigma.double().numpy()) * scale)

    return predict


def standardized_margin(s: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """QMIA's attack score ``(s - mu) / sigma``: higher = member."""
    return (np.asarray(s, np.float64) - mu) / sigma


def _score_rows(rows, train, *, s, x, features, labels, n_classes, loss, alpha, regressor, kw, net_kw, seed):
    """Scores of ``rows`` by a regressor fitted on ``train`` (both bool [n])."""
    if train.sum() < MIN_PUBLIC:
        if loss == "pinball":
            return s[rows] - float(np.quantile(s[train], 1.0 - alpha))
        mu, var = constant_fit(s[train])
        return standardized_margin(s[rows], mu(s[rows]), np.sqrt(var(s[rows])))
    if regressor == "boosting":
        if loss == "pinball":
            return s[rows] - pinball_fit(x[train], s[train], 1.0 - alpha, seed=seed, kw=kw)(x[rows])
        mu, var = gaussian_fit(x[train], s[train], seed=seed, kw=kw)
        return standardized_margin(s[rows], mu(x[rows]), np.sqrt(var(x[rows])))
    predict = network_fit(features, labels, s, train, n_classes=n_classes, loss=loss, quantile=1.0 - alpha,
                          arch=regressor, seed=seed, **net_kw)
    mu, sigma = predict(np.flatnonzero(rows))
    return s[rows] - mu if sigma is None else standardized_margin(s[rows], mu, sigma)


def qmia(target, ref=None, ref_keep=None, *, labels, features, public, loss: str = "gaussian",
         alpha: float = 0.01, folds: int = 5, regressor: str = "mlp", aux: float = 3.0, hidden: int = 128,
         width: int = 16, lr: float = 1e-3, batch_size: int = 64, max_epochs: int = 100, patience: int = 10,
         with_label: bool = True, max_iter: int = 200, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
         min_samples_leaf: int = 10, seed: int = 0) -> np.ndarray:
    """QMIA (Bertran et al. 2023; module docstring): ``score = (s - mu(x, y)) / sigma(x, y)``, the
    regressors fitted on the rows ``public`` (known non-members of the target) only.

    ``target [n, A]``: the model's score (``hinge``); ``features [n, ...]``: the pool's inputs;
    ``public bool [n]``. Every row is scored: with ``folds=K >= 2`` (cross-fitting) each row by the
    regressor fitted on the public rows of the other K-1 folds, so no row is scored by a regressor
    that saw it; with ``folds=0`` (or fewer than 2 public rows outside some fold, or K > n) by one
    regressor on all public rows (public rows in-sample). A fold regressor with fewer than
    ``MIN_PUBLIC`` public rows is the constant ``(mean, ddof-0 std)`` of those rows.
    ``ref``/``ref_keep`` are not used (no reference models). ``loss``: ``gaussian`` (default) or
    ``pinball`` at quantile ``1 - alpha``. ``regressor``: ``mlp`` / ``cnn`` (a registry network on
    the input, per-class outputs selected by the label, Gaussian NLL + ``aux`` x cross-entropy;
    ``hidden``, ``width``, ``lr``, ``batch_size``, ``max_epochs``, ``patience``) or ``boosting``
    (``HistGradientBoostingRegressor`` on the flattened input, plus the one-hot label when
    ``with_label``; ``max_iter``, ``learning_rate``, ``max_leaf_nodes``, ``min_samples_leaf``).
    ``seed`` fixes the folds, the initialisations and the early-stopping splits.
    """
    name = "qmia"
    choice(name, "loss", loss, ("gaussian", "pinball"))
    choice(name, "regressor", regressor, REGRESSORS)
    target, _, _, labels = validate(target, ref, ref_keep, labels, name=name, need_ref=False)
    public = np.asarray(public)
    if public.shape != labels.shape or public.dtype != bool:
        raise SignalError(f"{name}: public must be bool [{labels.size}], got {public.dtype} {public.shape}")
    if public.sum() < 2:
        raise SignalError(f"{name}: needs at least 2 public non-members to fit on, got {int(public.sum())}")
    if np.shape(features)[:1] != labels.shape or not np.isfinite(features).all():
        raise SignalError(f"{name}: features must be finite [n={labels.size}, ...], got {np.shape(features)}")
    if loss == "pinball" and not 0.0 < alpha < 1.0:
        raise SignalError(f"{name}: alpha must lie in (0, 1), got {alpha}")
    if folds == 1 or folds < 0:
        raise SignalError(f"{name}: folds must be 0 (no cross-fitting) or >= 2, got {folds}")
    if regressor == "cnn" and np.ndim(features) != 4:
        raise SignalError(f"{name}: regressor 'cnn' needs image features [n, C, H, W], got {np.shape(features)}")
    s = query_mean(target)
    n_classes = int(labels.max(initial=0)) + 1
    x = inputs(features, labels, n_classes, with_label) if regressor == "boosting" else None
    common = dict(s=s, x=x, features=features, labels=labels, n_classes=n_classes, loss=loss, alpha=alpha,
                  regressor=regressor, seed=seed,
                  kw=dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                          min_samples_leaf=min_samples_leaf),
                  net_kw=dict(hidden=hidden, width=width, aux=aux, lr=lr, batch_size=batch_size,
                              max_epochs=max_epochs, patience=patience))
    out = np.empty(len(s))
    with single_threaded():
        fold = fold_of(len(s), folds, seed) if 2 <= folds <= len(s) else None
        if fold is None or min((public & (fold != k)).sum() for k in range(folds)) < 2:
            out[:] = _score_rows(np.ones(len(s), dtype=bool), public, **common)   # one regressor, no cross-fit
            return out
        for k in range(folds):
            rows = fold == k
            if rows.any():
                out[rows] = _score_rows(rows, public & ~rows, **{**common, "seed": seed + k})
    return out
