"""Loading a user's trained model without running any code from the file.

Accepted formats (``MODEL_FORMATS``):

* ``.safetensors``: a state dict (parameters *and* buffers, e.g. BatchNorm running statistics)
  loaded into an architecture privaudit builds itself (a registered one or the user's factory).
  The format is a JSON header plus raw tensor bytes: reading it cannot run code.
* ``.pt2`` (``torch.export.save``): a zip archive. ``torch.export.load`` (torch 2.13) runs code
  from such an archive in several places, so the archive is inspected *before* loading and refused
  unless every part is on an allowlist:

  - a weight or constant marked ``use_pickle`` in ``data/weights/model_weights_config.json`` /
    ``data/constants/model_constants_config.json`` is read with ``torch.load(weights_only=False)``
    (``torch/export/pt2_archive/_package.py::_load_state_dict`` / ``_load_constants``), i.e. an
    arbitrary pickle; ``custom_obj_*`` / ``opaque_obj_*`` constants go to
    ``torch._C._pickle_load_obj`` / ``pickle.loads``; legacy ``data/weights/<model>.pt`` files and
    ``data/sample_inputs/<model>.pt`` go to ``deserialize_torch_artifact``, which falls back to
    ``weights_only=False`` when the safe unpickler refuses them; ``data/aotinductor/`` holds a
    shared library that is loaded (native code);
  - a graph node whose target is not an operator is resolved by ``getattr`` from ``torch``
    (``torch.os.system`` resolves) and called with the node's arguments;
  - symbolic shape expressions (``expr_str``) are parsed with ``sympy.sympify`` (``eval``);
  - parameter/buffer names become ``getattr(self, "<name>")`` in generated Python source;
  - ``guards_code`` strings are compiled by ``ExportedProgram.module(check_guards=True)``.

  So: only the entries ``torch.export.save`` writes; no pickled payload; every node an ATen
  operator (or a symbolic-int operator); every shape expression arithmetic on symbols; every
  name a dotted identifier; sample inputs readable by the safe unpickler; and the module built
  with ``check_guards=False``. torch then reads an archive rebuilt from exactly the inspected
  entries (a repeated entry name is refused: zip readers may disagree on which copy counts).

TorchScript (``torch.jit.save``) is refused: loading one runs the TorchScript code in the archive
(``__setstate__`` methods run during ``torch.jit.load``), which may call any registered operator,
and PyTorch itself stopped letting ``torch.load(weights_only=True)`` open TorchScript archives after
CVE-2025-32434 (remote code execution through that path). Plain pickles (``.pt``/``.pth``) are
refused for the same reason.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import posixpath
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from privaudit.errors import DataError

MODEL_FORMATS = (".safetensors", ".pt2")
CONVERT_HINT = ("save the state dict with safetensors.torch.save_file(model.state_dict(), 'model.safetensors') "
                "and name its architecture (target.factory or target.arch), or save a torch.export program (.pt2)")
_FQN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_SYMBOL = re.compile(r"^[a-z]+[0-9]+$")
_NUMBER = re.compile(r"^[-+]?[0-9.]+(e[-+]?[0-9]+)?$")
_ATEN = re.compile(r"^torch\.ops\.aten\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")
# Symbolic-int operators torch.export writes as targets (torch/_export/serde/serialize.py::_SYM_OPS)
_SYM_TARGETS = frozenset(
    [f"_operator.{n}" for n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "eq",
                                "ne", "lt", "le", "gt", "ge", "and_", "or_", "lshift", "rshift")]
    + ["math.trunc"] + [f"torch.{n}" for n in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max",
                                                "sym_min", "_sym_sqrt")])
# Functions a symbolic shape expression may call (torch.utils._sympy.functions and sympy basics).
_SYMPY_FUNCTIONS = frozenset((
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
    "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "TruncToFloat", "TruncToInt",
    "RoundToInt", "RoundDecimal", "ToFloat", "Identity", "IsNonOverlappingAndDenseIndicator", "Max", "Min",
    "Abs", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Integer", "Rational", "Float", "floor",
    "ceiling", "sqrt", "Piecewise", "Symbol", "Add", "Mul", "Pow", "StrictLessThan", "StrictGreaterThan",
    "LessThan", "GreaterThan", "Equality", "Unequality", "BooleanTrue", "BooleanFalse"))
_SYMPY_CONSTANTS = frozenset(("oo", "zoo", "nan", "true", "false", "True", "False"))
_SAFE_AST = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Call, ast.Name, ast.Load,
             ast.Constant, ast.keyword, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_model_file(path: str | Path, what: str = "target.model") -> bytes:
    """The file's bytes, read once (what is hashed is what is loaded)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what}: missing file {path}")
    if path.suffix not in MODEL_FORMATS:
        raise DataError(f"{what}: {path.name} is not a .safetensors or .pt2 file; privaudit loads no format that "
                        f"can run code (TorchScript and pickles can): {CONVERT_HINT}")
    return path.read_bytes()


# -- safetensors ------------------------------------------------------------------------------------

def state_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Missing and unexpected keys and shape mismatches against ``model.state_dict()``, or None."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {list(state[k].shape)} (expected {list(expected[k].shape)})"
              for k in sorted(set(expected) & set(state)) if tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = [f"{label} {_few(items)}" for label, items in (("missing", missing), ("unexpected", unexpected),
                                                            ("wrong shape", shapes)) if items]
    return "; ".join(parts) or None


def _few(items: list[str], k: int = 4) -> str:
    return ", ".join(items[:k]) + (f" (+{len(items) - k} more)" if len(items) > k else "")


def load_safetensors(data: bytes, model: nn.Module, name: str, what: str = "target.model") -> nn.Module:
    """``model`` (freshly built) with the state dict in ``data`` (strict: every parameter and buffer)."""
    from safetensors.torch import load as load_state

    try:
        state = load_state(data)
    except Exception as err:   # safetensors raises its own error types for a malformed header
        raise DataError(f"{what}: {name} is not a readable safetensors file ({err.__class__.__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    problem = state_mismatch(model, state)
    if problem:
        raise DataError(f"{what}: {name} does not fit the architecture {model.__class__.__name__}: {problem}; "
                        f"save model.state_dict() of the same architecture (buffers included)")
    model.load_state_dict(state, strict=True)
    return model.eval()


# -- torch.export programs --------------------------------------------------------------------------

def _archive_names() -> dict[str, str]:
    """The entries ``torch.export.save`` writes for its program ``model``, by torch's own names."""
    from torch._C._export import pt2_archive_constants as c

    return {"format": c.ARCHIVE_FORMAT_PATH, "version": c.ARCHIVE_VERSION_PATH,
            "program": c.MODELS_FILENAME_FORMAT.format("model"),
            "weights": c.WEIGHTS_CONFIG_FILENAME_FORMAT.format("model"),
            "constants": c.CONSTANTS_CONFIG_FILENAME_FORMAT.format("model"),
            "sample_inputs": c.SAMPLE_INPUTS_FILENAME_FORMAT.format("model"),
            "weight_file": c.WEIGHTS_DIR + c.WEIGHT_FILENAME_PREFIX, "constant_file": c.CONSTANTS_DIR
            + c.TENSOR_CONSTANT_FILENAME_PREFIX, "extra": c.EXTRA_DIR}


def _entries(archive: zipfile.ZipFile, name: str, what: str) -> tuple[str, dict[str, bytes]]:
    """The archive's root folder and ``{entry path inside it: bytes}``; refuses anything
    ``torch.export.save`` does not write for a plain program, and repeated entry names (two zip
    readers may pick different copies)."""
    names = [n for n in archive.namelist() if not n.endswith("/")]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise DataError(f"{what}: {name} is not a torch.export archive (expected one root folder)")
    if len(set(names)) != len(names):
        raise DataError(f"{what}: {name} repeats an entry name; refused (re-save it with torch.export.save)")
    a = {k: re.escape(v) for k, v in _archive_names().items()}
    allowed = re.compile("|".join([a["format"], a["version"], "byteorder", r"\.data/version",
                                   r"\.data/serialization_id", a["program"], a["weights"], a["constants"], a["sample_inputs"],
                                   a["weight_file"] + "[0-9]+", a["constant_file"] + "[A-Za-z0-9_]+",
                                   a["extra"] + r"[A-Za-z0-9_.\-]+"]))
    extra = sorted(e for n in names if not allowed.fullmatch(e := n.split("/", 1)[1]))
    if extra:
        raise DataError(f"{what}: {name} holds {_few(extra, 2)}, which torch.export.save does not write for a "
                        f"plain program (compiled code, pickles or legacy files can run code); refused")
    return roots.pop(), {n.split("/", 1)[1]: archive.read(n) for n in names}


def _payload_config(files: dict[str, bytes], entry: str, prefix: str, name: str, what: str) -> None:
    """A weights/constants config: every payload raw tensor bytes (never pickled) in a file named
    ``prefix*``, every tensor named safely."""
    if entry not in files:
        raise DataError(f"{what}: {name} lacks {entry}; re-save it with torch.export.save")
    try:
        config = json.loads(files[entry])["config"]
        items = [(fqn, dict(meta)) for fqn, meta in config.items()]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise DataError(f"{what}: {name} has an unreadable {entry}") from None
    for fqn, meta in items:
        payload = posixpath.join(posixpath.dirname(entry), str(meta.get("path_name")))
        if meta.get("use_pickle") or not payload.startswith(prefix):
            raise DataError(f"{what}: {name} stores {fqn!r} as a pickle ({entry}), which would run code when "
                            f"loaded; refused. Export the model with plain tensor weights")
        if not _FQN.match(fqn):
            raise DataError(f"{what}: {name} names a tensor {fqn!r}; only dotted identifiers are accepted")


def _nodes(obj: Any) -> Iterator[dict[str, Any]]:
    """Every graph node (a dict with ``target``, ``inputs`` and ``outputs``), nested graphs included."""
    if isinstance(obj, dict):
        if isinstance(obj.get("target"), str) and "inputs" in obj and "outputs" in obj:
            yield obj
        for v in obj.values():
            yield from _nodes(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _nodes(v)


def _values(obj: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` at any depth."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from _values(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _values(v, key)


def safe_sym_expr(expr: str) -> bool:
    """Arithmetic, comparisons and the known shape functions on numbers and shape symbols, in
    infix (``2*s0``) or sympy's ``srepr`` form (``Mul(Integer(2), Symbol('s0', integer=True))``):
    what ``sympy.sympify`` may evaluate without running anything else. Strings appear only as a
    symbol's name or a float's digits; keywords only as boolean or integer assumptions."""
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    allowed_strings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _SYMPY_FUNCTIONS):
                return False
            if any(not isinstance(k.value, ast.Constant) or not isinstance(k.value.value, (bool, int))
                   for k in node.keywords):
                return False
            pattern = {"Symbol": _SYMBOL, "Float": _NUMBER}.get(node.func.id)
            first = node.args[0] if node.args else None
            if pattern and isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and pattern.match(first.value):
                allowed_strings.add(id(first))
    for node in ast.walk(tree):
        if not isinstance(node, _SAFE_AST):
            return False
        if isinstance(node, ast.Constant) and not (isinstance(node.value, (int, float, bool))
                                                   or id(node) in allowed_strings):
            return False
        if isinstance(node, ast.Name) and not (_SYMBOL.match(node.id) or node.id in _SYMPY_FUNCTIONS
                                               or node.id in _SYMPY_CONSTANTS):
            return False
    return True


def _program(doc: dict[str, Any], name: str, what: str) -> None:
    """The serialized program: ATen operators only, safe shape expressions, safe names."""
    for node in _nodes(doc):
        target = node["target"]
        if not (_ATEN.match(target) or target in _SYM_TARGETS):
            raise DataError(f"{what}: {name} calls {target!r}, which is not an ATen operator; refused (only "
                            f"programs of ATen operators are loaded, since other targets can run code)")
    exprs = list(_values(doc, "expr_str")) + list((doc.get("range_constraints") or {}).keys())
    bad = [e for e in exprs if not (isinstance(e, str) and safe_sym_expr(e))]
    if bad:
        raise DataError(f"{what}: {name} has a symbolic shape expression {str(bad[0])[:60]!r} that is not plain "
                        f"arithmetic on shape symbols; refused (such expressions are evaluated when loaded)")
    signature = doc.get("graph_module", {}).get("signature", {})
    for spec in signature.get("input_specs", []):
        kind = next(iter(spec), None)
        if kind not in ("user_input", "parameter", "buffer", "tensor_constant"):
            raise DataError(f"{what}: {name} has a {kind!r} input; only tensors, parameters, buffers and tensor "
                            f"constants are accepted")
    names = [v for key in ("parameter_name", "buffer_name", "tensor_constant_name") for v in _values(signature, key)]
    bad = [n for n in names if not (isinstance(n, str) and _FQN.match(n))]
    if bad:
        raise DataError(f"{what}: {name} names a tensor {str(bad[0])[:60]!r}; only dotted identifiers are accepted")


def safe_pt2(data: bytes, name: str, what: str = "target.model") -> bytes:
    """Refuse (one line) a ``.pt2`` archive any part of which ``torch.export.load`` would execute or
    unpickle unsafely (see the module docstring); else the archive rebuilt from exactly the
    entries inspected, so that torch reads what was checked (no zip-reader differences)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root, files = _entries(archive, name, what)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        raise DataError(f"{what}: {name} is not a readable torch.export archive (zip); save it with "
                        f"torch.export.save") from None
    names = _archive_names()
    for entry in (names["format"], names["program"], names["sample_inputs"]):
        if entry not in files:
            raise DataError(f"{what}: {name} lacks {entry}; re-save it with torch.export.save")
    _payload_config(files, names["weights"], names["weight_file"], name, what)
    _payload_config(files, names["constants"], names["constant_file"], name, what)
    try:
        _program(json.loads(files[names["program"]]), name, what)
    except (ValueError, TypeError, AttributeError, RecursionError):
        raise DataError(f"{what}: {name} has an unreadable {names['program']}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the safe unpickler warns about protocols it may not know
            torch.load(io.BytesIO(files[names["sample_inputs"]]), weights_only=True)
    except Exception as err:   # the safe unpickler refused it: torch would retry with weights_only=False
        raise DataError(f"{what}: {name} has sample inputs that are not plain tensors ({err.__class__.__name__}); "
                        f"torch would unpickle them unsafely; refused") from None
    clean = io.BytesIO()
    with zipfile.ZipFile(clean, "w", zipfile.ZIP_STORED) as out:
        for entry, content in files.items():
            out.writestr(f"{root}/{entry}", content)
    return clean.getvalue()


class ExportedModule(nn.Module):
    """A ``torch.export`` program's module; its train/eval behaviour was fixed at export time
    (its ``eval()`` raises), so switching modes is a no-op here."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def train(self, mode: bool = True) -> "ExportedModule":
        return self


def load_pt2(data: bytes, name: str, device: torch.device, what: str = "target.model") -> nn.Module:
    """The program in ``data``, checked and rebuilt by :func:`safe_pt2`, on ``device``; its guard
    code is never compiled."""
    from torch.export.passes import move_to_device_pass

    clean = safe_pt2(data, name, what)
    try:
        program = move_to_device_pass(torch.export.load(io.BytesIO(clean)), device)   # devices fixed at export
        return ExportedModule(program.module(check_guards=False))
    except Exception as err:  # torch raises many types for archives it cannot read
        raise DataError(f"{what}: {name} is not a loadable torch.export program ({err.__class__.__name__}); "
                        f"{CONVERT_HINT}") from None


def load_model(data: bytes, name: str, device: torch.device, build: Callable[[], nn.Module] | None = None,
               what: str = "target.model") -> nn.Module:
    """The model in ``data`` (the bytes of file ``name``, from :func:`read_model_file`), in eval mode
    on ``device``. ``build`` makes the architecture of a ``.safetensors`` state dict."""
    if Path(name).suffix == ".pt2":
        return load_pt2(data, name, device, what)
    if Path(name).suffix != ".safetensors":
        raise DataError(f"{what}: {name} is not a .safetensors or .pt2 file; {CONVERT_HINT}")
    if build is None:
        raise DataError(f"{what}: {name} holds only weights; name its architecture with target.factory or "
                        f"target.arch (or the model: section)")
    return load_safetensors(data, build(), name, what).to(device)
