"""Width-reduced ResNet and WideResNet populations on a small real CIFAR-10 subset, through the
whole pipeline (train, query, attack): they learn (train accuracy above chance), their BatchNorm
statistics are stored per model, and the audit's numbers come out."""

from pathlib import Path

import numpy as np
import pytest

from privaudit.config import parse_config
from privaudit.pipeline import run_all
from privaudit.runtime.run import Layout, Run

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_jpeg"


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR / "CIFAR-10-images.zip").is_file(), reason="the CIFAR-10 zip is not in ../shared/data")
@pytest.mark.parametrize("model", [{"arch": "resnet", "depth": 18, "width": 4},
                                   {"arch": "wrn", "depth": 10, "widen": 1}], ids=["resnet18-w4", "wrn-10-1"])
def test_a_narrow_population_trains_and_is_audited_on_cifar10(tmp_path, model):
    cfg = parse_config({
        "name": model["arch"], "out": str(tmp_path), "data": {"name": "cifar10", "root": str(CIFAR), "n": 300},
        "population": {"n_models": 4, "models_per_group": 2}, "model": model,
        "training": {"epochs": 12, "batch_size": 32, "optimizer": "adam", "lr": 0.003, "warmup_epochs": 0.5,
                     "mirror": True, "shift": 2, "workers": 2},
        "attacks": ["loss", "lira_offline"], "evaluation": {"targets": 2, "bootstrap": 0}})
    run_all(cfg)
    run = Run(cfg.run_dir)
    state = run.load_torch(Layout.group_models([0, 1]))["state"]
    assert any(n.endswith("running_mean") for n in state) and all(t.shape[0] == 2 for t in state.values())
    logits = run.signal("logits", 12)[:, :, 0]
    keep, labels = run.keep(), run.labels()
    train_acc = [(logits[m].argmax(-1) == labels)[keep[m]].mean() for m in range(4)]
    assert min(train_acc) > 0.3, train_acc            # ten classes: chance is 0.1
    metrics = run.load_json(Layout.epoch_metrics(12))
    assert set(metrics["attacks"]) == {"loss", "lira_offline"}
    assert all(np.isfinite(m["summary"]["auc"]["mean"]) for m in metrics["attacks"].values())
