"""No user model file can run code: ``.safetensors`` state dicts (with the architecture privaudit
builds) and ``torch.export`` archives inspected before loading; every way torch 2.13's
``torch.export.load`` would run code from an archive is refused with one line (or, for guard code,
never compiled); TorchScript and pickles are refused."""

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from privaudit.errors import DataError
from privaudit.models.loading import load_model, read_model_file, safe_sym_expr, state_mismatch

CPU = torch.device("cpu")


class Shell:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 10)).eval()


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    """A real exported program (dynamic batch, BatchNorm buffers)."""
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(_net(), (torch.zeros(4, 1, 8, 8),), dynamic_shapes=({0: batch},)),
                      str(path))
    return path


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """A copy of the archive ``src`` with ``edit(files)`` applied to ``{entry: bytes}``."""
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    edit(files)
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return dst


def _entry(files: dict, suffix: str) -> str:
    return next(n for n in files if n.endswith(suffix))


def _edit_json(files: dict, suffix: str, edit) -> None:
    name = _entry(files, suffix)
    doc = json.loads(files[name])
    edit(doc)
    files[name] = json.dumps(doc).encode()


def _pickled_weight(marker: Path):
    """The issue's attack: a weight marked ``use_pickle`` whose payload is a pickle that runs
    ``touch marker``."""
    def edit(files):
        name = _entry(files, "data/weights/model_weights_config.json")
        config = json.loads(files[name])
        config["config"]["1.weight"]["use_pickle"] = True
        files[name] = json.dumps(config).encode()
        buffer = io.BytesIO()
        torch.save(Shell(f"touch {marker}"), buffer)
        files[_entry(files, "data/weights/" + config["config"]["1.weight"]["path_name"])] = buffer.getvalue()
    return edit


def test_the_issues_pickled_weight_is_refused_by_the_run_and_never_runs(tmp_path, program):
    evil = _rewrite(program, tmp_path / "evil.pt2", _pickled_weight(tmp_path / "pwned"))
    # the archive is a working exploit: torch.export.load runs the payload
    probe = tmp_path / "probe.pt2"
    _rewrite(program, probe, _pickled_weight(tmp_path / "pwned_by_torch"))
    script = f"import torch\ntry: torch.export.load({str(probe)!r})\nexcept Exception: pass"
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert (tmp_path / "pwned_by_torch").exists()

    members = np.zeros(1797, dtype=bool)
    members[::2] = True
    np.save(tmp_path / "members.npy", members)
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump({
        "name": "evil", "out": str(tmp_path / "runs"), "population": {"n_models": 4},
        "training": {"epochs": 1, "workers": 1}, "evaluation": {"targets": 1},
        "target": {"model": "evil.pt2", "members": "members.npy"}}))
    result = subprocess.run([sys.executable, "-m", "privaudit.cli", "run", "audit.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: target.model: evil.pt2 stores '1.weight' as a pickle")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "runs" / "evil" / "models").exists()   # refused before any training


def _target(node_target: str, command: str):
    def edit(files):
        def swap(doc):
            node = doc["graph_module"]["graph"]["nodes"][0]
            node["target"] = node_target
            node["inputs"] = [{"name": "command", "arg": {"as_string": command}, "kind": 1}]
        _edit_json(files, "models/model.json", swap)
    return edit


def _expression(command: str):
    def edit(files):
        name = _entry(files, "models/model.json")
        text = files[name].decode()
        sym = text[text.index("Symbol('s"):].split(")", 1)[0] + ")"
        files[name] = text.replace(sym, f"__import__('os').system('{command}') or {sym}").encode()
    return edit


def _sample_inputs(command: str):
    def edit(files):
        files[_entry(files, "data/sample_inputs/model.pt")] = pickle.dumps(Shell(command))
    return edit


def _tensor_name(command: str):
    """A parameter name that would break out of ``getattr(self, "<name>")`` in generated code."""
    bad = f'x"); __import__("os").system("{command}"); ("'
    def edit(files):
        _edit_json(files, "models/model.json", lambda d: d["graph_module"]["signature"]["input_specs"][0]
                   ["parameter"].__setitem__("parameter_name", bad))
        def rename(cfg):
            cfg["config"][bad] = cfg["config"].pop("1.weight")
        _edit_json(files, "data/weights/model_weights_config.json", rename)
    return edit


def _opaque_constant(command: str):
    def edit(files):
        _edit_json(files, "data/constants/model_constants_config.json",
                   lambda c: c["config"].__setitem__("obj", {"path_name": "opaque_obj_0", "is_param": False,
                                                             "use_pickle": True, "tensor_meta": None}))
        files[_entry(files, "archive_format").replace("archive_format", "data/constants/opaque_obj_0")] = \
            pickle.dumps(Shell(command))
    return edit


def _compiled_code(command: str):
    def edit(files):
        files[_entry(files, "archive_format").replace("archive_format", "data/aotinductor/model/model.so")] = b"\x7fELF"
    return edit


@pytest.mark.parametrize("attack, needle", [
    (partial(_target, "torch.os.system"), "calls 'torch.os.system', which is not an ATen operator"),
    (_expression, "symbolic shape expression"),
    (_sample_inputs, "sample inputs that are not plain tensors"),
    (_tensor_name, "names a tensor"),
    (_opaque_constant, "opaque_obj_0, which torch.export.save does not write"),
    (_compiled_code, "aotinductor/model/model.so, which torch.export.save does not write"),
])
def test_every_way_an_archive_could_run_code_is_refused(tmp_path, program, attack, needle):
    marker = tmp_path / "pwned"
    path = _rewrite(program, tmp_path / "evil.pt2", attack(f"touch {marker}"))
    with pytest.raises(DataError, match=needle) as err:
        load_model(read_model_file(path), path.name, CPU)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_an_archive_with_a_repeated_entry_is_refused(tmp_path, program):
    """Zip readers may pick different copies of a repeated name: the copy inspected could be
    benign and the one loaded a pickle."""
    evil = _rewrite(program, tmp_path / "evil.pt2", _pickled_weight(tmp_path / "pwned"))
    path = tmp_path / "twice.pt2"
    with zipfile.ZipFile(evil) as bad, zipfile.ZipFile(program) as good, zipfile.ZipFile(path, "w") as out:
        config = _entry({n: None for n in good.namelist()}, "model_weights_config.json")
        out.writestr(config, bad.read(config))
        with pytest.warns(UserWarning, match="Duplicate name"):
            for name in good.namelist():
                out.writestr(name, good.read(name))
    with pytest.raises(DataError, match="repeats an entry name"):
        load_model(read_model_file(path), path.name, CPU)
    assert not (tmp_path / "pwned").exists()


def test_guard_code_in_an_archive_is_never_compiled(tmp_path, program):
    marker = tmp_path / "pwned"
    guard = f"__import__('os').system('touch {marker}') == 0"
    path = _rewrite(program, tmp_path / "guards.pt2", lambda files: _edit_json(
        files, "models/model.json", lambda d: d.__setitem__("guards_code", [guard])))
    model = load_model(read_model_file(path), path.name, CPU)
    np.testing.assert_allclose(model(torch.ones(3, 1, 8, 8)).detach(), _net()(torch.ones(3, 1, 8, 8)).detach(),
                               rtol=1e-5, atol=1e-6)
    assert not marker.exists()


def test_a_clean_program_loads_and_matches_the_exported_model(program):
    model = load_model(read_model_file(program), program.name, CPU)
    x = torch.randn(5, 1, 8, 8)
    np.testing.assert_allclose(model(x).detach(), _net()(x).detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_and_pickles_are_refused(tmp_path):
    torch.jit.script(_net()).save(str(tmp_path / "net.pt"))
    torch.save(Shell(f"touch {tmp_path / 'pwned'}"), tmp_path / "net.pth")
    for name in ("net.pt", "net.pth"):
        with pytest.raises(DataError, match="not a .safetensors or .pt2 file; privaudit loads no format that can run"):
            read_model_file(tmp_path / name)
    (tmp_path / "net.safetensors").write_bytes((tmp_path / "net.pth").read_bytes())   # a pickle, renamed
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_model(read_model_file(tmp_path / "net.safetensors"), "net.safetensors", CPU, build=_net)
    assert not (tmp_path / "pwned").exists()


def test_symbolic_expressions_allow_arithmetic_on_shape_symbols_only():
    for ok in ("s0", "2*s26", "Symbol('s31', positive=True, integer=True)", "Mul(Integer(2), Symbol('s2'))",
               "FloorDiv(s0, 2) + Mod(s1, 3)", "Max(1, s0) <= 2048", "Float('1.5', precision=53)"):
        assert safe_sym_expr(ok), ok
    for bad in ("__import__('os').system('id')", "s0.__class__", "Symbol('x; import os')", "(lambda: 1)()",
                "Integer(s0, evaluate=__import__)", "Symbol(*s0)", "s0[0]", "open('f')", "Symbol('s0').func"):
        assert not safe_sym_expr(bad), bad


# -- safetensors state dicts --------------------------------------------------------------------------

FACTORY = '''
from torch import nn


def make_net(width=12):
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
'''


def test_a_factory_state_dict_round_trips_with_its_batchnorm_buffers(tmp_path):
    from privaudit.config import ModelConfig, parse_config
    from privaudit.models.architectures import build_model
    from privaudit.models.factory import add_search_path
    from privaudit.runtime.plan import arch_spec

    (tmp_path / "usernets.py").write_text(FACTORY)
    add_search_path(tmp_path)
    cfg = parse_config({"target": {"model": "net.safetensors", "members": "m.npy", "factory": "usernets:make_net",
                                   "kwargs": {"width": 12}}})
    assert cfg.target_model() == ModelConfig(factory="usernets:make_net", kwargs={"width": 12}) == cfg.model
    spec = arch_spec(cfg, cfg.target_model())
    trained = build_model(spec, (1, 8, 8), 10).train()
    with torch.no_grad():
        for _ in range(3):   # move the running statistics away from their initial values
            trained(torch.randn(16, 1, 8, 8) * 3 + 1)
    trained.eval()
    assert trained[1].num_batches_tracked.item() == 3 and not torch.allclose(trained[1].running_var,
                                                                             torch.ones(12))
    save_file(trained.state_dict(), str(tmp_path / "net.safetensors"))
    loaded = load_model(read_model_file(tmp_path / "net.safetensors"), "net.safetensors", CPU,
                        build=lambda: build_model(spec, (1, 8, 8), 10))
    for name, value in trained.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    x = torch.randn(7, 1, 8, 8)
    torch.testing.assert_close(loaded(x), trained(x))
    assert not loaded.training


def test_a_state_dict_with_the_wrong_keys_or_shapes_is_refused_naming_them(tmp_path):
    state = _net().state_dict()
    cases = {
        "missing": ({k: v for k, v in state.items() if k != "2.running_mean"}, r"missing 2\.running_mean"),
        "unexpected": (state | {"head.weight": torch.zeros(3)}, r"unexpected head\.weight"),
        "shape": (state | {"4.weight": torch.zeros(10, 8)}, r"wrong shape 4\.weight \[10, 8\] \(expected \[10, 16\]\)"),
    }
    for name, (bad, needle) in cases.items():
        save_file(bad, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(DataError, match=needle) as err:
            load_model(read_model_file(tmp_path / f"{name}.safetensors"), f"{name}.safetensors", CPU, build=_net)
        assert "\n" not in str(err.value)
    assert state_mismatch(_net(), state) is None
    save_file(state, str(tmp_path / "ok.safetensors"))
    with pytest.raises(DataError, match="holds only weights; name its architecture"):
        load_model(read_model_file(tmp_path / "ok.safetensors"), "ok.safetensors", CPU)
