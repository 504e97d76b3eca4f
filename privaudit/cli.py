"""The ``privaudit`` command line (typer). Every user error ends in one unwrapped line on stderr
and exit status 2; Ctrl-C ends with a line saying that rerunning resumes (exit 130)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.table import Table

from privaudit.commands.common import console, open_run, user_errors
from privaudit.errors import PrivauditError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how much a trained neural network leaks about its training data.")
def _overrides(models: Optional[int], epochs: Optional[int], group: Optional[int], out: Optional[str],
               name: Optional[str], workers: Optional[int], attacks: Optional[str], sets: list[str]) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for key, value in (("population.n_models", models), ("training.epochs", epochs),
                       ("population.models_per_group", group), ("out", out), ("name", name),
                       ("training.workers", workers), ("attacks", attacks)):
        if value is not None:
            o[key] = value
    for item in sets:
        if "=" not in item:
            raise PrivauditError(f"--set expects KEY=VALUE (e.g. training.lr=0.01), got {item!r}")
        key, value = item.split("=", 1)
        try:
            o[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise PrivauditError(f"--set {item}: the value is not valid YAML") from None
    return o


@app.command()
def run(config: Path = typer.Argument(..., help="YAML run config (see configs/)"),
        models: Optional[int] = typer.Option(None, "--models", help="number of models in the population"),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="training epochs"),
        models_per_group: Optional[int] = typer.Option(None, "--models-per-group", help="models trained at once"),
        out: Optional[str] = typer.Option(None, "--out", help="parent folder of the run directory"),
        name: Optional[str] = typer.Option(None, "--name", help="run name (folder under --out)"),
        workers: Optional[int] = typer.Option(None, "--workers", help="groups trained at a time (threads; 1 = one after another)"),
        attacks: Optional[str] = typer.Option(None, "--attacks", help="comma list, or 'all'"),
        sets: list[str] = typer.Option([], "--set", help="override any config field: KEY=VALUE")) -> None:
    """Train a population, query it, run the attacks and write the report (resumes where it stopped)."""
    from privaudit.config import load_config
    from privaudit.pipeline import run_all

    with user_errors(resume_hint=True):
        cfg = load_config(config, _overrides(models, epochs, models_per_group, out, name, workers, attacks, sets))
        run_all(cfg, console=console)


@app.command()
def attack(run_dir: Path = typer.Argument(..., help="an existing run directory"),
           attacks: Optional[str] = typer.Option(None, "--attacks", help="comma list, or 'all'"),
           targets: Optional[int] = typer.Option(None, "--targets", help="number of target models"),
           epoch: Optional[int] = typer.Option(None, "--epoch", help="checkpoint epoch (default: final)")) -> None:
    """Re-score and re-plot an existing run without retraining or re-querying."""
    from privaudit.errors import ConfigError
    from privaudit.pipeline import score_and_report
    from privaudit.runtime.plan import signal_epochs

    with user_errors(resume_hint=True):
        updates = {k: v for k, v in (("evaluation.targets", targets), ("attacks", attacks)) if v is not None}
        run, cfg = open_run(run_dir, **updates)
        if epoch is not None and epoch not in signal_epochs(cfg):
            raise ConfigError(f"--epoch {epoch}: the run has signals at epochs {signal_epochs(cfg)}")
        with run.writer():
            run.verify()
            score_and_report(run, cfg, console, attacks=None if attacks is None else list(cfg.attacks), epoch=epoch)


@app.command()
def datasets() -> None:
    """List the registered datasets and where each one comes from."""
    from privaudit.data.datasets import list_datasets

    table = Table(title="datasets")
    for col in ("name", "samples", "shape", "classes", "offline"):
        table.add_column(col, no_wrap=col == "name")
    for d in list_datasets():
        table.add_row(d.name, str(d.n_train or "-"), "x".join(map(str, d.input_shape)) or "-", str(d.n_classes or "-"),
                      "yes" if d.offline else "no")
    console.print(table)
    console.print("how to get each dataset:")
    for d in list_datasets():   # one line each, never wrapped by privaudit: URLs stay whole
        console.print(f"  {d.name}: {d.how_to_get}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def attacks() -> None:
    """List the registered attacks, their signal and citation."""
    from privaudit.attacks.registry import ATTACKS

    table = Table(title="attacks")
    table.add_column("name", no_wrap=True)
    table.add_column("signal", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("citation", overflow="fold")
    for spec in ATTACKS.values():
        table.add_row(spec.name, spec.signal, spec.mode, spec.citation)
    console.print(table)


@app.command()
def models() -> None:
    """List the registered architectures and their default sizes (or use model.factory for your own)."""
    from privaudit.models.architectures import ARCHITECTURES

    table = Table(title="architectures (model.arch; your own nn.Module: model.factory: 'package.module:function')")
    table.add_column("name", no_wrap=True)
    table.add_column("defaults", overflow="fold")
    table.add_column("description", overflow="fold")
    for arch in ARCHITECTURES.values():
        defaults = ", ".join(f"{k}: {list(v) if isinstance(v, tuple) else v}" for k, v in arch.defaults.items())
        table.add_row(arch.name, defaults, arch.description)
    console.print(table)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"privaudit {version('privaudit')}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="print the version and exit")) -> None:
    """Measure how much a trained neural network leaks about its training data."""


def _register_commands() -> None:
    """The DP audit and report commands, and every study's command (``privaudit.studies``)."""
    from privaudit.commands import audit, report
    from privaudit.studies import studies

    audit.register(app)
    report.register(app)
    for study in studies():
        study.register(app)


_register_commands()


def main() -> None:  # pragma: no cover
    """The ``privaudit`` console script: :data:`app`, then leave at once with its exit status.

    Everything a command writes is complete on disk when it returns (atomic writes, joined
    threads), so the interpreter's teardown of torch and the other loaded libraries (1-2 s on a
    2-core CPU, a tenth of the default audit) is skipped, as after Ctrl-C
    (:func:`privaudit.commands.common.user_errors`). A Ray session gets the normal shutdown."""
    try:
        app()
        code: object = 0
    except SystemExit as leave:
        code = leave.code
    if "ray" in sys.modules:
        sys.exit(code)
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
