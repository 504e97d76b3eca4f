"""attacks stage of privaudit: pure functions ``fn(target, ref, ref_keep, *, labels, **params)``
returning float [n] scores (higher = member); see ``docs/ARCHITECTURE.md`` and
:mod:`privaudit.attacks.registry`."""

from privaudit.attacks.calibrated import sablayrolles, watson, ye_p, ye_r
from privaudit.attacks.curvature import curv_zo_lr, curv_zo_nll
from privaudit.attacks.label_only import gap, label_augmentation, label_noise
from privaudit.attacks.lira import lira_offline, lira_online
from privaudit.attacks.loss import loss_attack
from privaudit.attacks.qmia import qmia
from privaudit.attacks.registry import ATTACKS, AttackSpec, get_attack, run_attack
from privaudit.attacks.rmia import rmia_offline, rmia_online, rmia_tune_a
from privaudit.attacks.shokri import shokri
from privaudit.attacks.song_mittal import song_mittal

__all__ = [
    "ATTACKS", "AttackSpec", "get_attack", "run_attack", "loss_attack", "lira_online",
    "lira_offline", "sablayrolles", "watson", "ye_r", "ye_p", "song_mittal", "shokri",
    "rmia_online", "rmia_offline", "rmia_tune_a", "curv_zo_nll", "curv_zo_lr", "qmia", "gap",
    "label_augmentation", "label_noise",
]
