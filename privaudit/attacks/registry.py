"""Registry of membership-inference attacks: name -> :class:`AttackSpec`.

Each :class:`AttackSpec` names the signal it consumes (``privaudit.signals.transforms.derive``
name, or ``"curvature"``), whether it needs reference models (``mode``: ``"none"``,
``"offline"`` = OUT rows only, ``"online"`` = IN and OUT rows), its complete default parameters
and its citation.
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
from privaudit.attacks.lira import lira_offline, lira_online
from privaudit.attacks.loss import loss_attack
from privaudit.attacks.rmia import rmia_offline, rmia_online
from privaudit.attacks.shokri import shokri
from privaudit.attacks.song_mittal import song_mittal
from privaudit.errors import ConfigError, SignalError

MODES = ("none", "offline", "online")


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

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"attack {self.name!r}: mode must be one of {MODES}, "
                              f"got {self.mode!r}")

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the keyword parameters ``fn`` accepts (besides ``labels``)."""
        return _param_names(self.fn)

    def __call__(self, target, ref, ref_keep, *, labels, **overrides) -> np.ndarray:
        return run_attack(self, target, ref, ref_keep, labels, **overrides)


def _param_names(fn) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "labels")


def _spec(name: str, fn, signal: str, mode: str, citation: str, **variant) -> AttackSpec:
    sig = inspect.signature(fn).parameters
    defaults = {k: sig[k].default for k in _param_names(fn)}
    unknown = set(variant) - set(defaults)
    assert not unknown, f"{name}: unknown defaults {unknown}"
    defaults.update(variant)
    return AttackSpec(name, fn, signal, mode, defaults, citation)


_LIRA = "Carlini et al., Membership Inference Attacks From First Principles, IEEE S&P 2022"
_YE = "Ye et al., Enhanced Membership Inference Attacks against ML Models, CCS 2022"
_RMIA = "Zarifzadeh, Liu, Shokri, Low-Cost High-Power Membership Inference Attacks, ICML 2024"
_CURV = "Ravikumar, Soufleri, Roy, Curvature Clues, NeurIPS 2024"

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
          "Eq. (4) with class-dependent thresholds"),
    _spec("shokri", shokri, "probs", "online",
          "Shokri et al., Membership Inference Attacks Against ML Models, IEEE S&P 2017"),
    _spec("rmia_online", rmia_online, "conf", "online",
          f"{_RMIA}, online (Pr(x) over all references)"),
    _spec("rmia_offline", rmia_offline, "conf", "offline", f"{_RMIA}, offline Pr(x), tuned a"),
    _spec("rmia_taylor", rmia_online, "taylor_conf", "online",
          f"{_RMIA}, reference configuration (soft-margin Taylor softmax, gamma=2, trimmed mean)",
          gamma=2.0, trim=0.2),
    _spec("curv_zo_nll", curv_zo_nll, "curvature", "online", f"{_CURV}, Curv ZO NLL"),
    _spec("curv_zo_lr", curv_zo_lr, "curvature", "online", f"{_CURV}, Curv ZO LR"),
)}


def get_attack(name: str) -> AttackSpec:
    """The registered attack ``name``; SignalError listing the known names otherwise."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise SignalError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}") from None


def run_attack(spec: AttackSpec | str, target, ref, ref_keep, labels, **overrides) -> np.ndarray:
    """Validate shapes/values and run ``spec.fn`` with ``spec.defaults`` updated by
    ``overrides``. Returns float [n], higher = member. An unknown parameter raises ConfigError;
    bad arrays raise SignalError (both with a one-line message)."""
    if isinstance(spec, str):
        spec = get_attack(spec)
    unknown = sorted(set(overrides) - set(spec.params))
    if unknown:
        raise ConfigError(f"attack {spec.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                          f"known: {', '.join(spec.params) or 'none'}")
    kind = {"probs": "prob", "curvature": "nonneg"}.get(spec.signal, "real")
    target, ref, ref_keep, labels = validate(
        target, ref, ref_keep, labels, name=spec.name, vector=spec.signal == "probs", kind=kind,
        need_ref=spec.mode != "none")
    params = {**spec.defaults, **overrides}
    score = np.asarray(spec.fn(target, ref, ref_keep, labels=labels, **params), dtype=np.float64)
    if score.shape != (target.shape[0],):
        raise SignalError(f"attack {spec.name!r} returned shape {score.shape}, "
                          f"expected ({target.shape[0]},)")
    if np.isnan(score).any():
        raise SignalError(f"attack {spec.name!r} produced NaN scores")
    return score
