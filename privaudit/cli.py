"""The ``privaudit`` command line (typer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from privaudit.errors import PrivauditError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how much a trained neural network leaks about its training data.")
console = Console()


def _fail(err: Exception) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
    raise typer.Exit(2)


def _overrides(models: Optional[int], epochs: Optional[int], group: Optional[int], out: Optional[str],
               name: Optional[str], workers: Optional[int], sets: list[str]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for key, value in (("population.n_models", models), ("training.epochs", epochs),
                       ("population.models_per_group", group), ("out", out), ("name", name),
                       ("training.workers", workers)):
        if value is not None:
            o[key] = value
    for item in sets:
        if "=" not in item:
            raise PrivauditError(f"--set expects KEY=VALUE (e.g. training.lr=0.01), got {item!r}")
        key, value = item.split("=", 1)
        o[key] = yaml.safe_load(value)
    return o


def _attack_list(spec: Optional[str]):
    from privaudit.attacks.registry import ATTACKS
    from privaudit.config import AttackConfig

    if spec is None:
        return None
    names = list(ATTACKS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    return [AttackConfig(name=n) for n in names]


def _attack_runnable(store, names):
    """Drop attacks whose signal this run does not have (e.g. curvature when none was computed)."""
    from privaudit.attacks.registry import get_attack

    has_curv = any(store.path("signals").glob("epoch_*/curvature.npy"))
    return [a for a in names if get_attack(a.name).signal != "curvature" or has_curv]


@app.command()
def run(config: Path = typer.Argument(..., help="YAML run config (see configs/)"),
        models: Optional[int] = typer.Option(None, "--models", help="number of models in the population"),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs"),
        models_per_group: Optional[int] = typer.Option(None, "--models-per-group", help="models trained at once"),
        out: Optional[str] = typer.Option(None, "--out", help="parent folder of the run directory"),
        name: Optional[str] = typer.Option(None, "--name", help="run name (folder under --out)"),
        workers: Optional[int] = typer.Option(None, "--workers", help="worker processes (1 = in-process)"),
        attacks: Optional[str] = typer.Option(None, "--attacks", help="comma list, or 'all'"),
        sets: list[str] = typer.Option([], "--set", help="override any config field: KEY=VALUE")) -> None:
    """Train a population, query it, run the attacks and write the report (resumes where it stopped)."""
    from privaudit.config import load_config
    from privaudit.runtime import pipeline as stages

    try:
        cfg = load_config(config, _overrides(models, epochs, models_per_group, out, name, workers, sets))
        stages.run_all(cfg, attacks=_attack_list(attacks), console=console)
    except PrivauditError as err:
        _fail(err)


@app.command()
def attack(run_dir: Path = typer.Argument(..., help="an existing run directory"),
           attacks: Optional[str] = typer.Option(None, "--attacks", help="comma list, or 'all'"),
           targets: Optional[int] = typer.Option(None, "--targets", help="number of target models"),
           epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)")) -> None:
    """Re-score and re-plot an existing run without retraining or re-querying."""
    from privaudit.runtime import pipeline as stages
    from privaudit.runtime.pipeline import read_config
    from privaudit.runtime.store import RunStore

    try:
        store = RunStore(run_dir)
        cfg = read_config(store)
        if targets is not None:
            cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"targets": targets})})
        chosen = _attack_list(attacks)
        if chosen is not None and attacks == "all":
            chosen = _attack_runnable(store, chosen)
        stages.attack_and_report(cfg, store, attacks=chosen, epoch=epoch, console=console)
    except PrivauditError as err:
        _fail(err)


@app.command()
def datasets() -> None:
    """List the registered datasets and where each one comes from."""
    from privaudit.data.datasets import list_datasets

    table = Table(title="datasets")
    for col in ("name", "samples", "shape", "classes", "offline", "source / how to get"):
        table.add_column(col)
    for d in list_datasets():
        table.add_row(d.name, str(d.n_train or "-"), "x".join(map(str, d.input_shape)) or "-", str(d.n_classes or "-"),
                      "yes" if d.offline else "no", d.how_to_get)
    console.print(table)


@app.command()
def attacks() -> None:
    """List the registered attacks, their signal and citation."""
    from privaudit.attacks.registry import ATTACKS

    table = Table(title="attacks")
    for col in ("name", "signal", "mode", "citation"):
        table.add_column(col)
    for spec in ATTACKS.values():
        table.add_row(spec.name, spec.signal, spec.mode, spec.citation)
    console.print(table)


def _register_commands() -> None:
    """Commands of the analysis stages live in ``privaudit.commands.<name>`` (``register(app)``)."""
    import importlib

    for name in ("memorization", "dynamics", "audit"):
        try:
            module = importlib.import_module(f"privaudit.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"privaudit.commands.{name}":
                raise
            continue
        module.register(app)


_register_commands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
