"""Registry of membership-inference attacks: name -> :class:`AttackSpec`.

Each :class:`AttackSpec` names the signal it consumes (``privaudit.signals.transforms.derive``
name, or a stored signal: ``"curvature"``, ``"label_noise_distance"``), whether it needs reference
models (``mode``: ``"none"``, ``"offline"`` = OUT rows only, ``"online"`` = IN and OUT rows), its
complete default parameters and its citation.

Two flags name what else an attack reads, besides signals and labels (its *context*, passed by
the evaluation protocol, never set by a config): ``needs_features`` (the pool's inputs
``features [n, ...]``) and ``needs_public`` (``public: bool [n]``, a public set of the target's
known non-members to fit on; the protocol draws it and excludes it from the evaluation, see
:mod:`privaudit.evaluation.protocol`).
:func:`run_attack` validates the arrays and calls the function with ``defaults | overrides``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from privaudit.attacks._common import validate
from privaudit.attacks.calibrated import sablayrolles, watson, ye_p, ye_r
from privaudit.attacks.curvature import curv_zo_lr, curv_zo_nll
from privaudit.attacks.label_only import gap, label_augmentation, label_noise
from privaudit.attacks.lira import lira_offline, lira_online
from privaudit.attacks.loss import loss_attack
from privaudit.attacks.qmia import qmia
from privaudit.attacks.rmia import rmia_offline, rmia_online
from privaudit.attacks.shokri import fit_shokri, shokri
from privaudit.attacks.song_mittal import fit_song_mittal, song_mittal
from privaudit.errors import ConfigError, SignalError

MODES = ("none", "offline", "online")
#: Keyword arguments of an attack function that are its context, not parameters.
CONTEXT = ("labels", "features", "public")


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack. ``defaults`` holds every keyword parameter of ``fn`` (besides
    ``labels``) with the value this variant uses."""

    name: str
    fn: Callable[..., np.ndarray]
    signal: str
    mode: str
    defaults: dict = field(default_factory=dict)
    citation: str = ""
    needs_features: bool = False     # reads the pool's inputs (``features=x [n, ...]``)
    needs_public: bool = False       # fits on ``public=bool[n]``: known non-members, excluded from the ROC
    crossfit_param: str | None = None   # needs_public: the parameter that, >= 2, scores every row out of fold
    fit: Callable | None = None      # fits on the references alone: ``fit(ref, ref_keep, labels=, **params)``
                                     # returns an object whose ``.score(target, labels)`` equals ``fn``'s

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"attack {self.name!r}: mode must be one of {MODES}, "
                              f"got {self.mode!r}")

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the keyword parameters ``fn`` accepts (besides its context :data:`CONTEXT`)."""
        return _param_names(self.fn)

    @property
    def label_only(self) -> bool:
        """The attack sees predicted labels only (its signal is label-only)."""
        from privaudit.signals.transforms import LABEL_ONLY_SIGNALS

        return self.signal in LABEL_ONLY_SIGNALS

    def __call__(self, target, ref, ref_keep, *, labels, features=None, public=None, **overrides) -> np.ndarray:
        return run_attack(self, target, ref, ref_keep, labels, features=features, public=public, **overrides)


def _param_names(fn) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in CONTEXT)


def _spec(name: str, fn, signal: str, mode: str, citation: str, *, needs_features: bool = False,
          needs_public: bool = False, crossfit_param: str | None = None, fit: Callable | None = None,
          **variant) -> AttackSpec:
    sig = inspect.signature(fn).parameters
    defaults = {k: sig[k].default for k in _param_names(fn)}
    unknown = set(variant) - set(defaults)
    assert not unknown, f"{name}: unknown defaults {unknown}"
    defaults.update(variant)
    return AttackSpec(name, fn, signal, mode, defaults, citation, needs_features, needs_public, crossfit_param, fit)


_LIRA = "Carlini et al., Membership Inference Attacks From First Principles, IEEE S&P 2022"
_YE = "Ye et al., Enhanced Membership Inference Attacks against ML Models, CCS 2022"
_RMIA = "Zarifzadeh, Liu, Shokri, Low-Cost High-Power Membership Inference Attacks, ICML 2024"
_CURV = "Ravikumar, Soufleri, Roy, Curvature Clues, NeurIPS 2024"
_QMIA = ("Bertran, Tang, Roth, Kearns, Morgenstern, Wu, Scalable Membership Inference Attacks via Quantile "
         "Regression, NeurIPS 2023")
_LABEL = "Choquette-Choo, Tramer, Carlini, Papernot, Label-Only Membership Inference Attacks, ICML 2021"

ATTACKS: dict[str, AttackSpec] = {s.name: s for s in (
    _spec("loss", loss_attack, "loss", "none",
          "Yeom et al., Privacy Risk in Machine Learning, CSF 2018 (score = -loss)"),
    _spec("lira_online", lira_online, "phi", "online", f"{_LIRA}, Algorithm 1"),
    _spec("lira_offline", lira_offline, "phi", "offline", f"{_LIRA}, Eq. (4)"),
    _spec("lira_online_global", lira_online, "phi", "online",
          f"{_LIRA}, Algorithm 1 with fixed (global) variance, Sec. VI-B", variance="global"),
    _spec("lira_offline_global", lira_offline, "phi", "offline",
          f"{_LIRA}, Eq. (4) with fixed (global) variance, Sec. VI-B", variance="global"),
    _spec("sablayrolles", sablayrolles, "loss", "online",
          "Sablayrolles et al., White-box vs Black-box, ICML 2019 (as in LiRA Sec. V-C)"),
    _spec("watson", watson, "loss", "offline",
          "Watson et al., On the Importance of Difficulty Calibration in MIAs, ICLR 2022"),
    _spec("ye_r", ye_r, "loss", "offline", f"{_YE}, Attack R"),
    _spec("ye_p", ye_p, "loss", "none", f"{_YE}, Attack P (global threshold)"),
    _spec("song_mittal", song_mittal, "probs", "online",
          "Song & Mittal, Systematic Evaluation of Privacy Risks of ML Models, USENIX Sec. 2021, "
          "Eq. (4) with class-dependent thresholds", fit=fit_song_mittal),
    _spec("shokri", shokri, "probs", "online",
          "Shokri et al., Membership Inference Attacks Against ML Models, IEEE S&P 2017", fit=fit_shokri),
    _spec("rmia_online", rmia_online, "conf", "online",
          f"{_RMIA}, online (Pr(x) over all references)"),
    _spec("rmia_offline", rmia_offline, "conf", "offline", f"{_RMIA}, offline Pr(x), tuned a"),
    _spec("rmia_taylor", rmia_online, "taylor_conf", "online",
          f"{_RMIA}, reference configuration (soft-margin Taylor softmax, gamma=2, trimmed mean)",
          gamma=2.0, trim=0.2),
    _spec("curv_zo_nll", curv_zo_nll, "curvature", "online", f"{_CURV}, Curv ZO NLL"),
    _spec("curv_zo_lr", curv_zo_lr, "curvature", "online", f"{_CURV}, Curv ZO LR"),
    _spec("qmia", qmia, "hinge", "none",
          f"{_QMIA}: Gaussian quantile regression on public non-members (cross-fitted), score (s - mu(x)) / sigma(x)",
          needs_features=True, needs_public=True, crossfit_param="folds"),
    _spec("gap", gap, "correct", "none",
          f"Yeom et al., CSF 2018, gap attack (member iff correctly classified); label-only baseline of {_LABEL}"),
    _spec("label_augmentation", label_augmentation, "correct", "online",
          f"{_LABEL}, data-augmentation attack (per-class classifier on the correctness vector)"),
    _spec("label_noise", label_noise, "label_noise_distance", "none",
          f"{_LABEL}, decision-boundary distance estimated with Gaussian noise (label-only)"),
)}


def get_attack(name: str) -> AttackSpec:
    """The registered attack ``name``; SignalError listing the known names otherwise."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise SignalError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}") from None


_KIND = {"probs": "prob", "curvature": "nonneg", "correct": "bool", "label_noise_distance": "nonneg"}


def _context(spec: AttackSpec, features, public) -> dict:
    """The context arguments ``spec`` reads, checked to be given."""
    out = {}
    for flag, key, value, what in ((spec.needs_features, "features", features, "the pool's inputs"),
                                   (spec.needs_public, "public", public, "a public set of known non-members")):
        if flag and value is None:
            raise SignalError(f"attack {spec.name!r} needs {what} ({key}=...); score it through "
                              f"privaudit.evaluation.protocol, which passes them")
        if flag:
            out[key] = value
    return out


def fit_attack(spec: AttackSpec, ref, ref_keep, labels, **overrides):
    """``spec.fit`` on the references with ``spec.defaults`` updated by ``overrides`` (checked as
    in :func:`run_attack`): a fitted attack whose ``.score(target, labels)`` scores any target."""
    _check_overrides(spec, overrides)
    params = {**spec.defaults, **overrides}
    return spec.fit(ref, ref_keep, labels=labels, **params)


def _check_overrides(spec: AttackSpec, overrides: dict) -> None:
    unknown = sorted(set(overrides) - set(spec.params))
    if unknown:
        raise ConfigError(f"attack {spec.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                          f"known: {', '.join(spec.params) or 'none'}")


def run_attack(spec: AttackSpec | str, target, ref, ref_keep, labels, *, features=None, public=None,
               **overrides) -> np.ndarray:
    """Validate shapes/values and run ``spec.fn`` with ``spec.defaults`` updated by
    ``overrides``. Returns float [n], higher = member. An unknown parameter raises ConfigError;
    bad arrays raise SignalError (both with a one-line message). ``features`` / ``public``: the
    context of an attack that ``needs_features`` / ``needs_public`` (ignored by the others)."""
    if isinstance(spec, str):
        spec = get_attack(spec)
    _check_overrides(spec, overrides)
    target, ref, ref_keep, labels = validate(
        target, ref, ref_keep, labels, name=spec.name, vector=spec.signal == "probs",
        kind=_KIND.get(spec.signal, "real"), need_ref=spec.mode != "none")
    params = {**spec.defaults, **overrides, **_context(spec, features, public)}
    score = np.asarray(spec.fn(target, ref, ref_keep, labels=labels, **params), dtype=np.float64)
    if score.shape != (target.shape[0],):
        raise SignalError(f"attack {spec.name!r} returned shape {score.shape}, "
                          f"expected ({target.shape[0]},)")
    if np.isnan(score).any():
        raise SignalError(f"attack {spec.name!r} produced NaN scores")
    return score
