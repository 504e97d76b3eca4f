"""What every command shares: the console, one-line errors and warnings, and opening an existing run."""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import typer
import yaml
from rich.console import Console

from privaudit.errors import PrivauditError

console = Console()                # tables and results (stdout)
progress_console = Console(stderr=True)   # progress bars (stderr), kept out of piped results


def _error_line(message: str) -> None:
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")   # one line, never wrapped


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for people: ``warning: <text>`` on one line, no source path."""
    sys.stderr.write(f"warning: {' '.join(str(message).split())}\n")


@contextmanager
def user_errors(resume_hint: bool = False) -> Iterator[None]:
    """Turn privaudit's errors (and a full disk) into one line and exit 2; Ctrl-C into a hint;
    a Python warning into one line without its source path."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            yield
    except PrivauditError as err:
        _error_line(str(err))
        raise typer.Exit(2)
    except OSError as err:
        _error_line(f"{err.strerror or err}{': ' + str(err.filename) if err.filename else ''}")
        raise typer.Exit(2)
    except KeyboardInterrupt:
        hint = "; rerun the same command to resume (finished work is kept)" if resume_hint else ""
        sys.stderr.write(f"interrupted{hint}\n")
        sys.stdout.flush()
        sys.stderr.flush()
        # Leave at once: after an interrupted multi-threaded torch run the interpreter's shutdown can
        # abort in torch's C++ teardown ("terminate called without an active exception"). Everything
        # written is already complete on disk (atomic writes) and the run's lock dies with the process.
        os._exit(130)


def open_run(run_dir: Path, **updates: Any):
    """An existing run and its stored config, with ``updates`` (dotted keys) validated like a config."""
    from privaudit.config import dump_config, parse_config, set_path
    from privaudit.runtime.run import Run

    run = Run.open(run_dir)
    cfg = run.config()
    if updates:
        data = yaml.safe_load(dump_config(cfg))
        for key, value in updates.items():
            set_path(data, key, value)
        cfg = parse_config(data, "command line")
    return run, cfg


def per_sample_attack(name: str, study: str, *, every_checkpoint: bool = False) -> str:
    """The attack a study scores every sample of every target with: refused, in one line, when it
    leaves samples unscored (QMIA's public half) or, across checkpoints, needs a signal stored for
    the final epoch only (the label-only noise distance)."""
    from privaudit.attacks.registry import ATTACKS
    from privaudit.errors import ConfigError

    spec = ATTACKS.get(name)
    if spec is not None and spec.needs_public:
        raise ConfigError(f"{study}: --attack {name} leaves each target's public half unscored; the study needs "
                          f"a score for every sample: choose another attack (e.g. lira_online)")
    if spec is not None and every_checkpoint and spec.signal == "label_noise_distance":
        raise ConfigError(f"{study}: --attack {name} needs the label-noise distance, computed for the final "
                          f"epoch only: choose another attack (e.g. lira_online)")
    return name
