"""Utility next to leakage: train (member) / test (non-member) accuracy and the generalisation gap
of every audited model, by hand on small arrays, and in a run's metrics.json, console and report."""

import numpy as np
import pytest
import yaml

from privaudit.evaluation.results import MetricsDocument, Spread, Utility
from privaudit.evaluation.utility import accuracies, chance_accuracy, predictions, skill, utility


def _logits(preds_q0: list[list[int]], n_classes: int = 3) -> np.ndarray:
    """``[M, n, 2, C]`` whose query 0 predicts ``preds_q0`` and query 1 always class 0."""
    preds = np.asarray(preds_q0)
    out = np.zeros((*preds.shape, 2, n_classes), dtype=np.float32)
    np.put_along_axis(out[:, :, 0], preds[..., None], 5.0, axis=-1)
    out[:, :, 1, 0] = 5.0
    return out


def test_accuracies_by_hand():
    labels = np.array([0, 1, 2, 0])
    keep = np.array([[True, True, False, False], [False, True, True, False]])
    logits = _logits([[0, 1, 0, 0],      # correct 1 1 0 1: members {0, 1} -> 1.0, non-members {2, 3} -> 0.5
                      [1, 1, 2, 2]])     # correct 0 1 1 0: members {1, 2} -> 1.0, non-members {0, 3} -> 0.0
    np.testing.assert_array_equal(predictions(logits), [[0, 1, 0, 0], [1, 1, 2, 2]])
    train, test = accuracies(logits, keep, labels)
    np.testing.assert_array_equal(train, [1.0, 1.0])
    np.testing.assert_array_equal(test, [0.5, 0.0])
    u = utility(logits, keep, labels)
    assert u == Utility(2, Spread(1.0, 1.0, 1.0), Spread(0.25, 0.0, 0.5), Spread(0.75, 0.5, 1.0))
    # one model (a user's target): min = max = mean
    t = utility(logits[1:], np.array([[False, True, True, False]]), labels)
    assert t == Utility(1, Spread(1.0, 1.0, 1.0), Spread(0.0, 0.0, 0.0), Spread(1.0, 1.0, 1.0))


def test_chance_and_skill():
    assert chance_accuracy(np.array([0, 0, 0, 1])) == 0.75
    assert skill(0.75, 0.75) == 0.0 and skill(1.0, 0.75) == 1.0 and skill(0.875, 0.75) == 0.5


def test_utility_json_round_trip_and_old_files_without_it():
    u = Utility(3, Spread(0.9, 0.8, 1.0), Spread(0.7, 0.6, 0.8), Spread(0.2, 0.1, 0.3))
    assert Utility.from_json(u.to_json()) == u
    old = {"run": "r", "epoch": 1, "n_models": 2, "targets": [0], "protocol": "p", "tpr_at_fpr": "t",
           "balanced_accuracy": "b", "intervals": "i", "attacks": {}}
    doc = MetricsDocument.from_json(old)
    assert doc.utility is None and doc.notes == []
    assert "utility" not in doc.to_json() and "notes" not in doc.to_json()
    doc.utility, doc.notes = u, ["a note"]
    again = MetricsDocument.from_json(doc.to_json())
    assert again.utility == u and again.notes == ["a note"]


def test_console_and_report_render_the_same_utility_cells():
    from rich.console import Console

    from privaudit.report.format import utility_table

    table = utility_table({"population (3 models)": Utility(3, Spread(0.9, 0.8, 1.0), Spread(0.7, 0.6, 0.8),
                                                            Spread(0.2, 0.1, 0.3)),
                           "your target model": Utility(1, Spread(1.0, 1.0, 1.0), Spread(0.5, 0.5, 0.5),
                                                        Spread(0.5, 0.5, 0.5))}, epoch=7)
    assert table.rows == [["population (3 models)", "90.0% [80.0, 100.0]", "70.0% [60.0, 80.0]",
                           "20.0 points [10.0, 30.0]"],
                          ["your target model", "100.0%", "50.0%", "50.0 points"]]
    console = Console(width=200, record=True)
    console.print(table.rich())
    text, html = console.export_text(), table.html()
    for cell in (c for r in table.rows for c in r):
        assert cell in text and cell in html


@pytest.mark.slow
def test_a_runs_metrics_hold_the_utility_of_its_stored_logits(tmp_path, capsys):
    from rich.console import Console

    from privaudit.config import load_config
    from privaudit.pipeline import run_all, score_and_report
    from privaudit.runtime.run import Layout, Run

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "name": "small", "out": str(tmp_path / "runs"), "population": {"n_models": 8, "models_per_group": 8},
        "model": {"arch": "mlp", "hidden": [64]},
        "training": {"epochs": 10, "batch_size": 32, "lr": 0.003, "workers": 1, "checkpoints": [3]},
        "evaluation": {"targets": 2, "bootstrap": 10}}))
    cfg = load_config(tmp_path / "cfg.yaml")
    run_all(cfg, console=Console(width=200))
    run = Run(cfg.run_dir)
    with run.writer():
        score_and_report(run, cfg, epoch=3)   # a checkpoint's metrics hold that checkpoint's utility
    keep, labels = run.keep(), run.labels()
    for epoch in (3, 10):
        doc = MetricsDocument.from_json(run.load_json(Layout.epoch_metrics(epoch)))
        logits = run.load_npy(Layout.signal("logits", epoch))
        assert doc.utility == utility(logits, keep, labels)
        correct = logits[0, :, 0].argmax(-1) == labels   # model 0, by hand
        assert doc.utility.train.min <= correct[keep[0]].mean() <= doc.utility.train.max
    final = MetricsDocument.from_json(run.load_json(Layout.metrics)).utility
    assert final.train.mean > final.test.mean > 0.8
    assert final.gap.mean == pytest.approx(final.train.mean - final.test.mean)
    out = " ".join(capsys.readouterr().out.split())
    assert "Utility at epoch 10" in out and f"{100 * final.train.mean:.1f}%" in out
    assert "<h2>Utility</h2>" in run.read_text(Layout.report)
