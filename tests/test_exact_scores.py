"""Scores are stored exactly as computed (float64), so every stage that reuses them reproduces
``metrics.json`` exactly."""

import json

import numpy as np

from privaudit.config import parse_config
from privaudit.evaluation.protocol import result_from_scores
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run


def test_metrics_recomputed_from_saved_scores_equal_metrics_json(tmp_path):
    cfg = parse_config({"name": "exact", "out": str(tmp_path), "data": {"name": "digits"},
                        "population": {"n_models": 8, "models_per_group": 8}, "model": {"hidden": [64]},
                        "training": {"epochs": 4, "workers": 1},
                        "attacks": ["loss", "lira_online", "song_mittal", "ye_r"],
                        "evaluation": {"targets": 3, "bootstrap": 20}})
    run_all(cfg)
    run = Run(cfg.run_dir)
    doc = json.loads(run.path(Layout.metrics).read_text())
    keep_t = run.keep()[:3]
    ev = cfg.evaluation
    for a in cfg.attacks:
        saved = run.load_npy(Layout.scores(a.key, cfg.training.epochs))
        assert saved.dtype == np.float64
        again = result_from_scores(a.key, a.signal_name, saved, keep_t, [0, 1, 2], fprs=tuple(ev.fprs),
                                   mode=ev.tpr_mode, n_boot=ev.bootstrap, seed=ev.seed).to_dict()
        assert json.loads(json.dumps(again)) == doc["attacks"][a.key], a.key
        reused = run.scores(a, cfg.training.epochs, 3)     # the one reuse rule gives the same array
        assert np.array_equal(reused, saved)


def test_scores_saved_under_another_scoring_protocol_are_recomputed(tmp_path, monkeypatch):
    from privaudit.evaluation import protocol

    cfg = parse_config({"name": "proto", "out": str(tmp_path), "data": {"name": "digits", "n": 300},
                        "population": {"n_models": 4, "models_per_group": 4}, "model": {"hidden": [16]},
                        "training": {"epochs": 2, "workers": 1}, "attacks": ["loss"],
                        "evaluation": {"targets": 2, "bootstrap": 0}})
    run_all(cfg)
    run = Run(cfg.run_dir)
    attack, rel = cfg.attacks[0], Layout.scores("loss", 2)
    fake = np.zeros((2, run.keep().shape[1]))
    with run.writer():                       # scores of the same attack, saved under an older protocol
        monkeypatch.setattr(protocol, "PROTOCOL", protocol.PROTOCOL - 1)
        run.save_scores("loss", 2, fake, run.meta(rel)["fingerprint"] | {"protocol": protocol.PROTOCOL})
        assert np.array_equal(run.scores(attack, 2, 2), fake)          # same protocol: reused
        monkeypatch.undo()
        assert not np.array_equal(run.scores(attack, 2, 2), fake)      # another protocol: recomputed
