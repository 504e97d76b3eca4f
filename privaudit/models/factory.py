"""A user's own architecture by import path: ``model: {factory: "my_pkg.nets:make_net", kwargs: {...}}``.

The factory is called as ``function(**kwargs)`` and must return a freshly initialised
``torch.nn.Module`` mapping ``x [B, *input_shape]`` to logits ``[B, n_classes]`` (it may wrap a
torchvision or timm model; privaudit needs neither). Importing the module runs its code, as any
Python import does: name only modules you trust. The module is looked up on ``sys.path``, then in
the current directory and in the config file's folder (added by :func:`privaudit.config.load_config`).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Callable

from torch import nn

from privaudit.errors import ConfigError

FACTORY_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def check_factory_path(path: str | None) -> str:
    """``path`` has the form ``package.module:function`` (checked before anything is imported)."""
    if not isinstance(path, str) or not FACTORY_PATH.match(path):
        raise ValueError(f"model.factory {path!r} must look like 'package.module:function'")
    return path


def add_search_path(folder: str | Path) -> None:
    """Let factories be imported from ``folder`` (the config's folder)."""
    folder = str(Path(folder).resolve())
    if folder not in sys.path:
        sys.path.append(folder)


def load_factory(path: str) -> Callable[..., nn.Module]:
    """The function named by ``package.module:function``; one clear line when it cannot be found."""
    check_factory_path(path)
    module_name, func_name = path.split(":")
    add_search_path(Path.cwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"model.factory {path!r}: cannot import {module_name} ({err}); run from the folder "
                          f"that holds it, put it next to the config file, or install it") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"model.factory {path!r}: {module_name} has no function {func_name}")
    return func


def build_from_factory(path: str, kwargs: dict[str, Any]) -> nn.Module:
    """``function(**kwargs)``, checked to be an ``nn.Module``."""
    try:
        model = load_factory(path)(**kwargs)
    except ConfigError:
        raise
    except Exception as err:   # the user's code may raise anything
        raise ConfigError(f"model.factory {path!r} failed with kwargs {kwargs} "
                          f"({err.__class__.__name__}: {err})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.factory {path!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
