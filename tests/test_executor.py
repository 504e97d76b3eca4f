"""The Ray executor: the same groups as Ray tasks give the local executor's models and metrics."""

import numpy as np
import pytest

from privaudit.config import parse_config
from privaudit.errors import ConfigError, DataError
from privaudit.runtime.executor import run_tasks

RUN = {"seed": 0, "data": {"name": "digits", "n": 600},
       "population": {"n_models": 4, "models_per_group": 2}, "model": {"arch": "mlp", "hidden": [64]},
       "training": {"epochs": 5, "batch_size": 32, "lr": 0.003, "workers": 1},
       "attacks": ["loss", "lira_online"], "evaluation": {"targets": 2, "bootstrap": 0}}


def test_unknown_executor_is_refused():
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        run_tasks(lambda on_progress: None, [{}], workers=1, advance=lambda n: None, executor="dask")


@pytest.mark.slow
def test_ray_tasks_train_and_query_the_local_executors_models(tmp_path):
    ray = pytest.importorskip("ray")
    from privaudit.pipeline import run_all

    results = {}
    try:
        for executor in ("local", "ray"):
            cfg = parse_config(RUN | {"name": executor, "out": str(tmp_path)} |
                               {"training": RUN["training"] | {"executor": executor}})
            results[executor] = run_all(cfg)
    finally:
        ray.shutdown()
    logits = {e: np.load(tmp_path / e / "signals" / "epoch_0005" / "logits.npy") for e in results}
    np.testing.assert_allclose(logits["ray"], logits["local"], atol=1e-5)
    for name in ("loss", "lira_online"):
        auc = {e: r[name].summary["auc"]["mean"] for e, r in results.items()}
        assert auc["ray"] == pytest.approx(auc["local"], abs=1e-6), name


@pytest.mark.slow
def test_a_failing_ray_task_raises_its_own_one_line_error():
    ray = pytest.importorskip("ray")

    def _fails_on_one(i, on_progress):   # local: Ray ships it by value (workers cannot import tests/)
        if i == 1:
            raise DataError("group 1 is broken")
        on_progress(1)
        return i

    try:
        with pytest.raises(DataError, match=r"^group 1 is broken$"):
            run_tasks(_fails_on_one, [{"i": i} for i in range(3)], workers=1, advance=lambda n: None,
                      executor="ray")
    finally:
        ray.shutdown()

