"""The architecture registry (one module per architecture under privaudit.models.architectures)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest
import torch
from torch import nn

import privaudit.models.architectures as arch_pkg
from privaudit.errors import ConfigError
from privaudit.models.architectures import (
    ACTIVATIONS,
    ARCHITECTURES,
    ArchSpec,
    _activation,
    build_model,
    init_model,
    list_architectures,
)


def test_list_architectures_names_and_one_line_descriptions():
    listed = list_architectures()
    assert {name for name, _ in listed} == {"mlp", "cnn", "resnet", "wrn", "airbench"}
    for name, desc in listed:
        assert desc and "\n" not in desc and len(desc) < 200, name


def test_each_module_registers_the_architecture_named_after_it():
    mods = [m.name for m in pkgutil.iter_modules(arch_pkg.__path__) if not m.name.startswith("_")]
    assert sorted(mods) == sorted(ARCHITECTURES)
    for m in mods:
        assert importlib.import_module(f"{arch_pkg.__name__}.{m}").ARCHITECTURE.name == m


def test_unknown_kind_lists_the_registered_names():
    with pytest.raises(ConfigError) as info:
        build_model(ArchSpec(kind="vgg"), (3, 32, 32), 10)
    msg = str(info.value)
    assert "unknown architecture 'vgg'" in msg and "mlp" in msg and "cnn" in msg
    with pytest.raises(ConfigError, match="unknown activation 'swish'"):
        _activation("swish")
    assert set(ACTIVATIONS) == {"relu", "tanh", "gelu", "softplus"}


@pytest.mark.parametrize("kind,shape", [("mlp", (7,)), ("mlp", (1, 8, 8)), ("cnn", (3, 16, 16))])
def test_build_shapes_and_seeded_init(kind, shape):
    spec = ArchSpec(kind=kind, hidden=(16,), width=8, depth=3)
    a = init_model(spec, shape, 5, seed=3)
    torch.manual_seed(123)                       # init_model must ignore the global RNG...
    b = init_model(spec, shape, 5, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = init_model(spec, shape, 5, seed=4)       # ...and depend on the seed
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    assert a(torch.zeros(2, *shape)).shape == (2, 5)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in a.modules())   # mlp/cnn: none


def test_cnn_needs_images():
    with pytest.raises(ConfigError, match="needs image inputs"):
        build_model(ArchSpec(kind="cnn"), (40,), 10)


def test_adding_an_architecture_is_one_file(tmp_path, monkeypatch):
    (tmp_path / "toy_arch.py").write_text('''
from torch import nn
from privaudit.models.architectures._common import Architecture


def build_toy(spec, input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(n_classes))


ARCHITECTURE = Architecture("toy_arch", build_toy, "a toy")
''')
    monkeypatch.setattr(arch_pkg, "__path__", [*arch_pkg.__path__, str(tmp_path)])
    try:
        found = arch_pkg._collect()
        assert set(found) == {"mlp", "cnn", "resnet", "wrn", "airbench", "toy_arch"}
        monkeypatch.setattr(arch_pkg, "ARCHITECTURES", found)
        assert ("toy_arch", "a toy") in list_architectures()
        model = build_model(ArchSpec(kind="toy_arch"), (4,), 3)
        assert model(torch.zeros(2, 4)).shape == (2, 3)
    finally:
        sys.modules.pop(f"{arch_pkg.__name__}.toy_arch", None)
