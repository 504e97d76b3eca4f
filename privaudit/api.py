"""The Python API for notebooks and scripts: :func:`audit` and its :class:`AuditResult`.

>>> result = privaudit.audit(make_net, x, y, epochs=20, lr=3e-3)                 # audit a recipe
>>> result = privaudit.audit(make_net, x, y, model=net, members=mask, epochs=20)  # audit a trained model
>>> print(result.markdown()); result.scores("lira_online"); result.report()

The arrays are written to the run directory as an npz read with ``data.normalize: none``, so the
models see exactly ``x`` (as float32). A factory given as ``"module:function"``, or a function
that can be imported by that name, works like ``model.factory`` in a config. Any other callable
(defined in a notebook or in a script's ``__main__``, a lambda, a closure) is registered in this
process under a name made of its own name and code: the models train in this process (the local
executor's threads), and Ray, whose workers cannot import it, is refused.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from privaudit.config import RunConfig, check_name, parse_config
from privaudit.errors import ConfigError, DataError
from privaudit.evaluation.results import MetricsDocument, Utility
from privaudit.runtime.run import Layout, Run

Factory = Callable[..., nn.Module]
DEFAULT_MODELS = 16
DEFAULT_TARGETS = 8
_FACTORIES: dict[str, Factory] = {}   # callables not importable by name (Ray cannot ship them), by registered name


def __getattr__(name: str) -> Factory:
    """A registered factory, so that ``model.factory: "privaudit.api:<name>"`` resolves in-process."""
    if name in _FACTORIES:
        return _FACTORIES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the result ----------------------------------------------------------------------------------------

@dataclass
class AuditResult:
    """An audit's results, read from its run directory (``AuditResult(Run.open(path))`` for any run,
    also one made by ``privaudit run``). For the audit of a trained model, :attr:`metrics`,
    :meth:`table` and :meth:`scores` are that model's; otherwise the population's."""

    run: Run
    warnings: list[str] = field(default_factory=list)   # one line per Python warning raised during the audit

    @property
    def config(self) -> RunConfig:
        return self.run.config()

    @property
    def audits_a_model(self) -> bool:
        """True when a trained model (``target:``) was audited, False for a recipe."""
        return self.config.target is not None

    @property
    def population(self) -> MetricsDocument:
        """The population's leave-one-model-out metrics at the final epoch (the calibration)."""
        return MetricsDocument.from_json(self.run.load_json(Layout.metrics))

    @property
    def metrics(self) -> MetricsDocument:
        """Every attack's metrics with intervals, utility and notes (``metrics.json``)."""
        if self.audits_a_model:
            return MetricsDocument.from_json(self.run.load_json(Layout.target_metrics))
        return self.population

    @property
    def utility(self) -> Utility | None:
        """Accuracy of the audited model(s) on members (train) and non-members (test)."""
        return self.metrics.utility

    def table(self) -> list[dict[str, Any]]:
        """One dict per attack: ``attack``, ``signal`` and per metric its estimate and 95% interval
        (``auc``, ``auc_lo``, ``auc_hi``, ...; None where no number can be given), e.g. for
        ``pandas.DataFrame(result.table())``."""
        rows = []
        for key, a in self.metrics.attacks.items():
            row: dict[str, Any] = {"attack": key, "signal": a.signal}
            for metric, e in a.summary.items():
                row |= {metric: e.mean, f"{metric}_lo": e.lo, f"{metric}_hi": e.hi}
            rows.append(row)
        return rows

    def markdown(self) -> str:
        """The attack table as the console and the report show it, in Markdown."""
        from privaudit.report import format as fmt

        doc = self.metrics
        title = f"{doc.run} ({doc.n_models} reference models)" if self.audits_a_model else fmt.title(doc)
        head = ["attack"] + [h for _, h in fmt.columns(doc)]
        lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join([key, *fmt.row(doc, a)]) + " |" for key, a in doc.attacks.items()]
        return "\n".join(lines + ["", fmt.caption(doc)] + [f"note: {n}" for n in doc.notes])

    _repr_markdown_ = markdown   # Jupyter shows the table

    def scores(self, attack: str) -> np.ndarray:
        """Per-sample scores of ``attack`` (higher = more likely a member): ``float[n]`` for the
        audited model, ``float[T, n]`` (one row per target model) for a recipe."""
        if attack not in self.metrics.attacks:
            raise ConfigError(f"no scores for attack {attack!r}; this audit has {', '.join(self.metrics.attacks)}")
        if self.audits_a_model:
            return self.run.load_npy(Layout.target_scores(attack))
        return self.run.load_npy(Layout.scores(attack, self.metrics.epoch))[: len(self.metrics.targets)]

    def report(self, path: str | Path | None = None) -> Path:
        """The self-contained HTML report: its path in the run, or a copy written to ``path``."""
        source = self.run.path(Layout.report)
        if not self.run.has(Layout.report):
            raise ConfigError(f"{self.run.root} has no report yet; run the audit to the end")
        if path is None:
            return source
        return Path(shutil.copyfile(source, Path(path).expanduser()))


# -- the audit -----------------------------------------------------------------------------------------

def audit(factory: Factory | str, x: Any, y: Any, *, model: nn.Module | None = None, members: Any = None,
          training: Mapping[str, Any] | None = None, factory_kwargs: Mapping[str, Any] | None = None,
          models: int | None = None, targets: int | None = None, attacks: Sequence[str] | str | None = None,
          config: Mapping[str, Any] | None = None, out: str | Path | None = None, name: str = "audit",
          verbose: bool = False, **recipe: Any) -> AuditResult:
    """Audit a training recipe, or a trained ``model`` with its ``members`` mask.

    ``factory`` builds the architecture (``factory(**factory_kwargs)`` returns a fresh ``nn.Module``
    mapping ``x[B, ...]`` to logits): a callable or ``"module:function"``. ``x`` (``[n, d]`` or
    ``[n, C, H, W]``) and ``y`` (integer labels) are the pool, exactly as the models see it.
    Without ``model``, ``models`` models (default 16) are trained with the recipe on random halves
    of the pool and attacked leave-one-model-out over ``targets`` of them (default 8). With ``model``
    (trained on the rows where ``members`` is True), the same population is the reference set and
    ``model`` is attacked; its architecture is ``factory``, which must rebuild it exactly.

    The recipe: ``training`` (a dict like a config's ``training:``) and/or its keys as keyword
    arguments (``epochs=20, lr=3e-3``; these win). ``attacks``: names or ``"all"`` (default the
    config's: loss, lira_online, lira_offline). ``config``: any other config sections (e.g.
    ``{"evaluation": {"fprs": [0.01, 0.001]}}``). ``out``: the parent folder of the run directory
    ``out/name`` (default a new folder under the system's temporary folder; give one to keep the
    run and resume it).
    ``verbose``: progress and tables on the console; by default nothing is printed.
    """
    x, y = _pool(x, y)
    if model is not None or members is not None:
        members = _members(model, members, len(y))
    spec = _model_section(factory, factory_kwargs)
    probe = model if model is not None else _build(spec)
    n_classes = _n_classes(probe, x, y, "model" if model is not None else "factory")
    root = Path(tempfile.gettempdir()) / f"privaudit-{uuid.uuid4().hex[:12]}" if out is None else Path(out).expanduser()
    run = Run(root / check_name(name, "name"))
    cfg = _config(spec, run, name, root, training, recipe, models, targets, attacks, config, model is not None)
    inputs = {"data.npz": _npz_bytes(x, y, n_classes)}
    if model is not None:
        inputs |= {"model.safetensors": _safetensors_bytes(model), "members.npy": _npy_bytes(members)}
    _write_inputs(run, inputs)
    return _run(cfg, verbose)


def _run(cfg: RunConfig, verbose: bool) -> AuditResult:
    """The whole audit; Python warnings become lines of the result (printed too when verbose)."""
    from rich.console import Console

    from privaudit.pipeline import run_all
    from privaudit.runtime.notices import collected_warnings

    console = Console() if verbose else None
    with collected_warnings() as caught:
        run_all(cfg, console=console)
    for line in caught if console is not None else ():
        console.print(f"warning: {line}", soft_wrap=True, markup=False)
    return AuditResult(Run.open(cfg.run_dir), caught)


# -- checks, before anything is written ---------------------------------------------------------------

def _pool(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as float32 ``[n, d]`` or ``[n, C, H, W]``, ``y`` as int64 ``[n]``; one line when not."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf" or x.ndim not in (2, 4):
        raise DataError(f"x must be a numeric array [n, d] or [n, C, H, W]; got {x.dtype} {list(x.shape)}")
    if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        raise DataError(f"x {list(x.shape)} looks channels-last; privaudit passes images as [n, C, H, W]: give "
                        f"x.transpose(0, 3, 1, 2) and a model that reads that layout")
    integers = y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.array_equal(y, np.round(y)))
    if y.ndim != 1 or len(y) != len(x) or not integers:
        raise DataError(f"y must hold one integer label per row of x ({len(x)}); got {y.dtype} {list(y.shape)}")
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def _members(model: nn.Module | None, members: Any, n: int) -> np.ndarray:
    """The members mask ``bool[n]`` of a trained ``model`` (both must be given)."""
    if not isinstance(model, nn.Module) or members is None:
        raise ConfigError("auditing a trained model needs both model= (a torch.nn.Module) and members= (bool[n]: "
                          "True for the rows of x it was trained on)")
    members = np.asarray(members)
    if members.shape != (n,) or not (members.dtype == bool or np.isin(members, (0, 1)).all()):
        raise DataError(f"members must be bool[{n}] (True = the model trained on that row of x); got "
                        f"{members.dtype} {list(members.shape)}")
    members = members.astype(bool)
    if members.all() or not members.any():
        raise DataError(f"members marks {'every' if members.all() else 'no'} row as a member; an audit needs both "
                        f"members and non-members")
    return members


def _model_section(factory: Factory | str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"factory": "module:function", "kwargs": ...}`` for ``factory`` (see the module docstring)."""
    if isinstance(factory, str):
        from privaudit.models.factory import check_factory_path

        try:
            path = check_factory_path(factory)
        except ValueError as err:
            raise ConfigError(f"factory: {err}") from None
    elif callable(factory):
        path = _import_path(factory) or _register(factory)
    else:
        raise ConfigError(f"factory must be a callable returning a torch.nn.Module, or 'module:function'; got "
                          f"{type(factory).__name__}")
    return {"factory": path, "kwargs": dict(kwargs or {})}


def _import_path(fn: Factory) -> str | None:
    """``module:name`` when ``fn`` can be imported by that name (e.g. by a Ray worker), else None."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module in ("__main__", "__mp_main__") or not name.isidentifier():
        return None
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception:   # importing the user's module may raise anything
        return None
    return f"{module}:{name}" if found is fn else None


def _register(fn: Factory) -> str:
    """Register ``fn`` in this process under a name made of its name and :func:`_identity`."""
    label = re.sub(r"\W", "_", getattr(fn, "__qualname__", type(fn).__name__)).strip("_") or "factory"
    key = f"factory_{label[:40]}_{hashlib.sha256(_identity(fn).encode()).hexdigest()[:10]}"
    _FACTORIES[key] = fn
    return f"{__name__}:{key}"


def _identity(fn: Factory) -> str:
    """What tells factories apart across calls: a function's code, defaults and captured values;
    anything else's repr (which may hold its address: then a rerun trains anew, never reuses)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    cells = [c.cell_contents for c in fn.__closure__ or ()]
    return repr((fn.__qualname__, code.co_code, code.co_consts, fn.__defaults__, fn.__kwdefaults__, cells))


def _build(spec: dict[str, Any]) -> nn.Module:
    from privaudit.models.factory import build_from_factory

    return build_from_factory(spec["factory"], spec["kwargs"])


def _n_classes(net: nn.Module, x: np.ndarray, y: np.ndarray, what: str) -> int:
    """The number of logits ``net`` returns for two rows of ``x`` (at least every label of ``y``)."""
    device = next(net.parameters(), torch.empty(0)).device
    mode = net.training
    try:
        with torch.no_grad():
            out = net.eval()(torch.from_numpy(x[:2]).to(device))
    except Exception as err:   # the user's module may raise anything
        raise ConfigError(f"the {what} failed on x[:2] [2, {', '.join(map(str, x.shape[1:]))}] "
                          f"({err.__class__.__name__}: {(str(err).splitlines() or [''])[0]})") from None
    finally:
        net.train(mode)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        raise ConfigError(f"the {what} must return logits [B, n_classes]; it returned "
                          f"{list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    if int(y.max()) >= out.shape[1] or y.min() < 0:
        raise DataError(f"y holds labels {int(y.min())}..{int(y.max())} but the {what} returns {out.shape[1]} logits")
    return int(out.shape[1])


def _config(spec: dict[str, Any], run: Run, name: str, out: Path, training: Mapping[str, Any] | None,
            recipe: Mapping[str, Any], models: int | None, targets: int | None,
            attacks: Sequence[str] | str | None, extra: Mapping[str, Any] | None, has_model: bool) -> RunConfig:
    """The run's config: ``extra`` sections, then what the arguments set (validated here)."""
    doc = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (extra or {}).items()}
    owned = sorted({"name", "out", "data", "model", "target"} & set(doc))
    if owned:
        raise ConfigError(f"config: {', '.join(owned)} are set by audit()'s arguments (x, y, factory, model, out, "
                          f"name); leave them out")
    doc |= {"name": name, "out": str(out), "data": {"name": "npz", "root": str(run.path(Layout.inputs("data.npz"))),
                                                    "normalize": "none"}}
    doc["training"] = doc.get("training", {}) | dict(training or {}) | dict(recipe)
    if spec["factory"].startswith(f"{__name__}:"):
        _in_process(doc["training"], spec["factory"])
    population = doc.setdefault("population", {})
    population["n_models"] = population.get("n_models", DEFAULT_MODELS) if models is None else models
    evaluation = doc.setdefault("evaluation", {})
    if targets is not None or "targets" not in evaluation:
        evaluation["targets"] = targets if targets is not None else min(DEFAULT_TARGETS, population["n_models"])
    if attacks is not None:
        doc["attacks"] = attacks if isinstance(attacks, str) else list(attacks)
    if has_model:
        doc["target"] = {"model": str(run.path(Layout.inputs("model.safetensors"))),
                         "members": str(run.path(Layout.inputs("members.npy"))), **spec}
    else:
        doc["model"] = spec
    return parse_config(doc, "privaudit.audit()")


def _in_process(training: dict[str, Any], path: str) -> None:
    """A registered factory exists in this process only: it trains here (the local executor's
    threads), never on Ray."""
    if training.get("executor", "local") != "local":
        raise ConfigError(f"the factory is not importable by Ray workers (defined in a notebook, a script's "
                          f"__main__ or a function), so the models are trained in this process; drop executor "
                          f"or pass the factory as 'module:function' ({path})")


# -- the run directory's inputs ----------------------------------------------------------------------

def _npz_bytes(x: np.ndarray, y: np.ndarray, n_classes: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y, n_classes=np.int64(n_classes))
    return buf.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _safetensors_bytes(model: nn.Module) -> bytes:
    """The model's state dict (parameters and buffers) as safetensors, copied to the CPU."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()})


def _write_inputs(run: Run, inputs: dict[str, bytes]) -> None:
    """Write the inputs into the run directory; a run that holds other inputs is refused."""
    with run.writer():
        for file, data in inputs.items():
            rel = Layout.inputs(file)
            entry = run.manifest()["artifacts"].get(rel)
            if entry is not None and entry["sha256"] != hashlib.sha256(data).hexdigest():
                raise ConfigError(f"{run.root} holds an audit of other inputs ({file} differs); choose another "
                                  f"name= or out=, or delete that directory")
            if entry is None:
                run.save_bytes(rel, data)
