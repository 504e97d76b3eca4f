"""Learning difficulty of each sample from the checkpoints of a population, and its correlation
with the sample's final vulnerability.

Chen, Wang, Baracaldo, Kadhe, Yu, "Evaluating the Dynamics of Membership Privacy in Deep
Learning", arXiv:2507.23291, 2025, report (abstract) a robust correlation between a sample's
intrinsic learning difficulty and its vulnerability. The difficulty measures here are privaudit's
choice of standard ones: the mean training loss, the epoch from which a sample stays learned, and
forgetting events (Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural
Network Learning", ICLR 2019). Training signals are ``[E, M, n]`` (checkpoint, model, sample) with
a keep ``bool[M, n]`` saying which models trained on which sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privaudit.errors import ConfigError, SignalError
from privaudit.evaluation.statistics import spearman_with_ci
from privaudit.studies.dynamics.plane import _as_keep, _check_epochs

__all__ = ["difficulty_signals", "forgetting_resolution", "mean_training_loss", "count_forgetting",
           "forgetting_events", "first_learned_epoch", "difficulty_vulnerability_correlation"]


def difficulty_signals(logits: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-checkpoint training signals from logits ``[M, n, A, C]`` (one array per checkpoint):
    cross-entropy loss and correctness of the first (un-augmented) query. Returns
    ``loss float [E, M, n]`` and ``correct bool [E, M, n]``."""
    from privaudit.signals.transforms import derive

    loss = np.stack([derive("loss", np.asarray(lg[:, :, :1]), labels)[..., 0] for lg in logits])
    correct = np.stack([np.asarray(lg[:, :, 0]).argmax(axis=-1) == labels[None] for lg in logits])
    return loss.astype(np.float32), correct


def forgetting_resolution(epochs: list[int]) -> str:
    """How faithful the forgetting count is to Toneva et al. 2019 for these checkpoint epochs."""
    if list(epochs) == list(range(1, epochs[-1] + 1)):
        return ("checkpoints at every epoch: forgetting events are exactly Toneva et al. (2019)'s count at "
                "epoch resolution (correctness of the clean input evaluated after each epoch)")
    return (f"checkpoints at epochs {list(epochs)} only: forgetting events are a SUBSAMPLED APPROXIMATION of "
            "Toneva et al. (2019) (events between checkpoints are missed, counts are lower bounds); "
            "first-learned epochs are resolved only to the checkpoint grid")


def _check_train(x: np.ndarray, keep: np.ndarray, name: str, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim != 3:
        raise SignalError(f"{name} must have shape [E, M, n] (epoch, model, sample), got {list(x.shape)}")
    keep = _as_keep(keep, x.shape[1:], "keep")
    if dtype is bool:
        if x.dtype != bool:
            if np.isin(x, (0, 1)).all():
                x = x.astype(bool)
            else:
                raise SignalError(f"{name} must be bool (or 0/1), got dtype {x.dtype}")
    else:
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise SignalError(f"{name} contains NaN or inf")
    return x, keep


def _masked_mean_over_models(v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean of ``v[M, n]`` over the models where ``keep`` is True; NaN if none. inf propagates."""
    n_in = keep.sum(axis=0)
    tot = np.where(keep, v, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_in > 0, tot / np.maximum(n_in, 1), np.nan)


def mean_training_loss(loss: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean training loss of each sample, float ``[n]``.

    A learning-difficulty measure (privaudit's choice):
    ``mean over epochs e and over models m with keep[m, i] of loss[e, m, i]``,
    i.e. the average loss the sample had *while being trained on*. Higher = harder. NaN for a
    sample that no model trains on.

    loss: float ``[E, M, n]`` (per-epoch loss of every model on every sample); keep: bool ``[M, n]``.
    """
    loss, keep = _check_train(loss, keep, "loss")
    return _masked_mean_over_models(loss.mean(axis=0), keep)


def count_forgetting(seq) -> int:
    """Number of forgetting events of one accuracy sequence ``bool[E]`` (Toneva et al. 2019,
    ICLR, "An Empirical Study of Example Forgetting", §3): transitions from correct at epoch
    ``e - 1`` to incorrect at epoch ``e``. ``[1,0,1,1,0,0,1] -> 2``."""
    s = np.asarray(seq).astype(bool).reshape(-1)
    return int((s[:-1] & ~s[1:]).sum())


def forgetting_events(correct: np.ndarray, keep: np.ndarray, *, never_learned: str = "count") -> np.ndarray:
    """Mean number of forgetting events per sample over the models that train on it: float ``[n]``.

    Counting follows Toneva et al. 2019 (a forgetting event = correct at epoch ``e-1``,
    misclassified at ``e``; here the "epochs" are the E recorded evaluations, so events between
    recordings are missed). Using it as the Dynamics paper's learning difficulty is
    privaudit's choice. ``never_learned="count"`` (default)
    just counts (a never-correct sequence has 0 events); ``"inf"`` follows Toneva et al.'s
    ranking convention and gives ``inf`` to a (model, sample) that is never correct at any
    recorded epoch (so one such IN model makes the sample's mean ``inf``). NaN for a sample that
    no model trains on.

    correct: bool ``[E, M, n]`` (was sample i correctly classified by model m after epoch e);
    keep: bool ``[M, n]``.
    """
    correct, keep = _check_train(correct, keep, "correct", dtype=bool)
    ev = (correct[:-1] & ~correct[1:]).sum(axis=0).astype(np.float64)     # [M, n]
    if never_learned == "inf":
        ev[~correct.any(axis=0)] = np.inf
    elif never_learned != "count":
        raise ConfigError(f"never_learned must be 'count' or 'inf', got {never_learned!r}")
    return _masked_mean_over_models(ev, keep)


def first_learned_epoch(correct: np.ndarray, keep: np.ndarray, *, epochs=None,
                        never: float = np.inf) -> np.ndarray:
    """Epoch from which a sample stays learned, averaged over the models that train on it: ``[n]``.

    An "epochs-to-learn" difficulty measure (privaudit's definition): for
    one (model, sample) sequence ``correct[:, m, i]``, the first-learned epoch is the smallest
    index ``e`` such that ``correct[e'] `` is True for *every* ``e' >= e`` (it is classified
    correctly from ``e`` to the end; earlier correct-then-forgotten spells do not count). If the
    sample is misclassified at the last recorded epoch it is never learned and gets ``never``
    (default ``inf``; pass e.g. ``E`` to treat it as "learned just after the end"). Values are
    indices into the E axis (0 = learned from the first recording) unless ``epochs`` (length E,
    the epoch number of each recording) is given, in which case ``epochs[e]`` is returned. The
    mean over IN models is ``inf`` as soon as one IN model never learns the sample (with the
    default ``never``); NaN for a sample no model trains on.
    ``[0,1,0,1,1] -> 3``, ``[1,1,1] -> 0``, ``[1,1,0] -> never``.
    """
    correct, keep = _check_train(correct, keep, "correct", dtype=bool)
    e_ = correct.shape[0]
    wrong = ~correct
    # index of the last misclassification (-1 if none): first True in the reversed sequence
    last_wrong = np.where(wrong.any(axis=0), e_ - 1 - np.argmax(wrong[::-1], axis=0), -1)   # [M, n]
    first = (last_wrong + 1).astype(np.float64)
    if epochs is not None:
        ep = _check_epochs(epochs, e_, "epochs")
        first = np.where(first < e_, ep[np.minimum(first, e_ - 1).astype(np.int64)], first)
    first[last_wrong == e_ - 1] = never
    return _masked_mean_over_models(first, keep)


def difficulty_vulnerability_correlation(difficulty: np.ndarray, final_vulnerability: np.ndarray, *,
                                         n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Spearman's rho between a per-sample learning-difficulty measure and the final
    vulnerability, with a bootstrap interval and p-value:
    :func:`privaudit.evaluation.statistics.spearman_with_ci` (its ``to_json``).

    Spearman's rho is rank-based, so it does not depend on the units of the difficulty measure
    and handles ``inf`` (never learned: ranked hardest); pairs with a NaN are dropped.
    """
    return spearman_with_ci(difficulty, final_vulnerability, n_boot=n_boot, seed=seed, level=level,
                            names=("the difficulty measure", "the final vulnerability")).to_json()
