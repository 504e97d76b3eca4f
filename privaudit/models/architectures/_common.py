"""What every architecture module shares: the :class:`ArchSpec` a run asks for, the activations,
and the :class:`Architecture` entry a module registers (imported by the registry in
:mod:`privaudit.models.architectures`; the leading underscore keeps it from being collected)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from privaudit.errors import ConfigError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


@dataclass(frozen=True)
class ArchSpec:
    """What network to build: ``kind`` is a registered architecture, or ``factory`` for the user's
    own (``factory`` = ``"package.module:function"``, called with ``kwargs``). The size fields
    mean what each architecture's module says; unused ones are ignored."""

    kind: str = "mlp"
    hidden: tuple[int, ...] = (128,)
    width: int = 32
    depth: int = 3
    activation: str = "relu"
    widen: int = 1
    norm: str = "batch"
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    @property
    def is_stackable_mlp(self) -> bool:
        """The ``wide`` backend applies (a plain MLP of this package)."""
        return self.kind == "mlp"


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class Architecture:
    """One registered architecture: ``build(spec, input_shape, n_classes)`` returns a freshly
    initialised ``nn.Module``; ``description`` is the one line ``list_architectures`` shows."""

    name: str
    build: Callable[[ArchSpec, tuple[int, ...], int], nn.Module]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)   # model: fields it uses, with their defaults
    check: Callable[[Any], str | None] = lambda model: None  # a ModelConfig -> an error line, or None
