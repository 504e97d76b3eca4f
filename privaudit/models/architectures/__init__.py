"""Single-model architectures (plain ``nn.Module``), one module per architecture: ``mlp``,
``cnn`` (the small CNNs of Carlini et al.), ``resnet`` (CIFAR ResNet-18/34), ``wrn`` (WideResNet)
and ``airbench`` (the fast CIFAR-10 net of Keller Jordan's airbench) -- plus any user module by
import path (``ArchSpec.kind == "factory"``, :mod:`privaudit.models.factory`).

Adding an architecture is adding one file here, ``<name>.py``, that ends with
``ARCHITECTURE = Architecture("<name>", build_<name>, "one-line description", defaults, check)``;
every module whose name does not start with ``_`` is collected into :data:`ARCHITECTURES`, and
:func:`build_model` dispatches on ``ArchSpec.kind``. BatchNorm is allowed: its running statistics
are buffers, stacked and saved with the parameters (:mod:`privaudit.models.group`); a model's batch
statistics come from its own batches only, and queries and curvature run in eval mode.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

import torch
from torch import nn

from privaudit.errors import ConfigError
from privaudit.models.architectures._common import (  # _activation: re-exported
    ACTIVATIONS,
    Architecture,
    ArchSpec,
    _activation,
)

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "ArchSpec", "Architecture", "build_model", "init_model",
           "list_architectures"]


def _collect() -> dict[str, Architecture]:
    """name -> :class:`Architecture` from the ``ARCHITECTURE`` of each module of this package
    whose name does not start with ``_`` (in module-name order). A module without one, or a name
    registered twice, is a programming error and fails the import."""
    found: dict[str, Architecture] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        full = f"{__name__}.{mod.name}"
        arch = getattr(importlib.import_module(full), "ARCHITECTURE", None)
        if not isinstance(arch, Architecture):
            raise ImportError(f"{full} must define ARCHITECTURE = Architecture(name, build, "
                              f"description)")
        if arch.name in found:
            raise ImportError(f"architecture {arch.name!r} is registered twice (again by {full})")
        found[arch.name] = arch
    return found


ARCHITECTURES: dict[str, Architecture] = _collect()


def list_architectures() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered architecture."""
    return [(a.name, a.description) for a in ARCHITECTURES.values()]


# Building a model draws from torch's global generator, which init_model seeds: tasks run in threads
# (privaudit.runtime.executor), so every build holds this lock.
_GLOBAL_RNG = threading.RLock()


def build_model(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """One freshly initialised model (initialisation uses torch's global RNG: seed it first)."""
    with _GLOBAL_RNG:
        return _build(spec, input_shape, n_classes)


def _build(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    if spec.kind == "factory":
        from privaudit.models.factory import build_from_factory

        return build_from_factory(spec.factory, dict(spec.kwargs))
    arch = ARCHITECTURES.get(spec.kind)
    if arch is None:
        raise ConfigError(f"unknown architecture {spec.kind!r}; choose one of "
                          f"{', '.join(ARCHITECTURES)}")
    return arch.build(spec, input_shape, n_classes)


def init_model(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int, seed: int) -> nn.Module:
    """Model initialised from ``seed`` alone (so a model's init never depends on its group)."""
    with _GLOBAL_RNG:          # tasks run in threads (privaudit.runtime.executor)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return build_model(spec, input_shape, n_classes)
        finally:
            torch.random.set_rng_state(state)
