"""The run configuration: a pydantic schema, YAML in, resolved YAML out.

Every field has a default, so a config file names only what differs; unknown keys are errors
(a typo must not be silently ignored). Validation errors name the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict as StrictType, ValidationError, field_validator, \
    model_validator

from privaudit.errors import ConfigError

# No silent coercion: ``epochs: true`` or ``lr: "0.1"`` are errors, not 1 and 0.1 (an int is a float).
Int = Annotated[int, StrictType()]
Float = Annotated[float, StrictType()]
Bool = Annotated[bool, StrictType()]
MAX_BATCH = 1 << 20
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-\[\]=,]*$")
CURVATURE_SIGNAL = "curvature"


def check_name(value: str, what: str) -> str:
    """A single path component made of safe characters: names and labels can never leave the run."""
    if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value or len(value) > 120:
        raise ConfigError(f"{what} {value!r} must be one folder/file name of letters, digits and _ . - + [ ] = , "
                          f"(no '/', no '..', at most 120 characters)")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    name: str = "digits"
    root: str | None = None          # folder or file the loader reads (relative to the config file)
    split: Literal["train", "test"] = "train"
    n: Int | None = Field(None, gt=0)  # seeded random subset of the pool
    download: Bool = False
    mixture: dict[str, Any] | None = None  # under-represented group design, see privaudit.data.mixture_dataset
    # What the models see. auto: a built-in dataset's standard per-channel standardisation, a user's
    # npz exactly as stored; none: as stored; per_channel: standardised with the pool's own per-channel
    # statistics; given: standardised with ``mean``/``std`` below.
    normalize: Literal["auto", "none", "per_channel", "given"] = "auto"
    mean: tuple[Float, ...] | None = None
    std: tuple[Float, ...] | None = None

    @model_validator(mode="after")
    def _given_needs_stats(self) -> "DataConfig":
        if (self.normalize == "given") != (self.mean is not None and self.std is not None):
            raise ValueError("normalize: given needs both data.mean and data.std (one value per channel), "
                             "and mean/std are used only with normalize: given")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("data.std must be > 0 for every channel")
        return self


class CanaryConfig(Strict):
    """Audit targets inserted into the pool (they follow the membership design like any sample)."""

    mislabeled: Int = Field(0, ge=0)   # natural samples given a random wrong label
    blank: Int = Field(0, ge=0)        # all-zero (in pixel space) inputs with random labels
    noise: Int = Field(0, ge=0)        # uniform-noise inputs with random labels
    natural: Int = Field(0, ge=0)      # unmodified samples marked as audit targets


class PoisonConfig(Strict):
    """Truth Serum (Tramer et al. CCS 2022): ``copies`` mislabeled copies of each of ``targets``
    pool samples added to EVERY model's training set; the clean targets are attacked as usual."""

    targets: Int = Field(250, ge=1)
    copies: Int = Field(8, ge=0)


class DPConfig(Strict):
    """DP-SGD (Abadi et al. 2016): per-sample clipping + Gaussian noise, Opacus accountant."""

    noise_multiplier: Float | None = Field(None, ge=0.0)
    target_epsilon: Float | None = Field(None, gt=0.0)
    delta: Float = Field(1e-5, gt=0.0, lt=1.0)
    max_grad_norm: Float = Field(1.0, gt=0.0)
    sampling: Literal["poisson", "shuffle"] = "poisson"
    accountant: Literal["rdp", "prv"] = "rdp"
    bug: Literal["none", "noise_not_scaled", "clip_after_average"] = "none"  # deliberately broken variants

    @model_validator(mode="after")
    def _one_of(self) -> "DPConfig":
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("give exactly one of noise_multiplier or target_epsilon")
        return self


class PopulationConfig(Strict):
    n_models: Int = Field(64, ge=2)
    pkeep: Float = Field(0.5, gt=0.0, lt=1.0)
    design: Literal["balanced", "bernoulli", "paired"] = "balanced"
    models_per_group: Int = Field(32, ge=1)


class ModelConfig(Strict):
    """A registered architecture (``arch``, ``privaudit models`` lists them) with its size fields --
    a field left out takes that architecture's default -- or the user's own ``factory``
    (``"package.module:function"``, called with ``kwargs``, returning an ``nn.Module``)."""

    arch: str = "mlp"
    factory: str | None = None
    kwargs: dict[str, Any] = {}
    hidden: tuple[Int, ...] | None = None        # mlp: hidden widths
    width: Int | None = Field(None, ge=1)        # cnn/resnet/airbench: base channels; wrn: unused
    depth: Int | None = Field(None, ge=1)        # cnn: blocks; resnet: 18 or 34; wrn: 6n+4
    widen: Int | None = Field(None, ge=1)        # wrn: widening factor k (WRN-depth-k)
    norm: Literal["batch", "group", "none"] | None = None   # resnet/wrn/airbench normalisation layers
    activation: Literal["relu", "tanh", "gelu", "softplus"] = "relu"

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_architecture(cls, data: Any) -> Any:
        """Fill the fields an architecture uses and the config leaves out with its defaults, so the
        resolved config shows the numbers a run trains with."""
        from privaudit.models.architectures import ARCHITECTURES

        if not isinstance(data, dict):
            return data
        if data.get("factory") is not None:
            data = {"arch": "factory", **data}
            if data["arch"] != "factory":
                raise ValueError(f"give model.arch ({data['arch']!r}) or model.factory, not both")
            return data
        arch = data.get("arch", "mlp")
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))} "
                             f"(`privaudit models` lists them), or give model.factory")
        return {**ARCHITECTURES[arch].defaults, **{k: v for k, v in data.items() if v is not None}}

    @model_validator(mode="after")
    def _valid_for_the_architecture(self) -> "ModelConfig":
        from privaudit.models.architectures import ARCHITECTURES
        from privaudit.models.factory import check_factory_path

        if self.arch == "factory":
            check_factory_path(self.factory)
            return self
        if self.kwargs:
            raise ValueError("model.kwargs are passed to model.factory; a registered architecture takes its "
                             "size fields (hidden, width, depth, widen, norm)")
        problem = ARCHITECTURES[self.arch].check(self)
        if problem:
            raise ValueError(problem)
        return self


class TrainingConfig(Strict):
    epochs: Int = Field(30, ge=1)
    batch_size: Int = Field(64, ge=1, le=MAX_BATCH)
    optimizer: Literal["adam", "sgd", "sam"] = "adam"   # sam: SAM (Foret et al. 2021) around SGD
    lr: Float = Field(1e-3, gt=0.0)
    sam_rho: Float = Field(0.05, gt=0.0)              # SAM's neighbourhood radius
    warmup_epochs: Float = Field(0.0, ge=0.0)         # linear learning-rate warm-up before the schedule
    label_smoothing: Float = Field(0.0, ge=0.0, lt=1.0)
    precision: Literal["fp32", "bf16"] = "fp32"       # bf16: autocast on the forward (GPU speed; CPU stays fp32)
    compile: Bool = False                             # torch.compile the model (GPU; costs start-up time)
    momentum: Float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: Float = Field(0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    milestones: tuple[Float, ...] = (0.6, 0.8)
    gamma: Float = Field(0.1, gt=0.0)
    mirror: Bool = False
    shift: Int = Field(0, ge=0)
    checkpoints: tuple[Int, ...] = ()
    backend: Literal["auto", "wide", "vmap", "loop"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"   # auto: the GPU when PyTorch sees one
    workers: Int = Field(2, ge=1)                     # groups trained at a time on a CPU (threads)
    executor: Literal["local", "ray"] = "local"       # ray: the groups become Ray tasks (a cluster: RAY_ADDRESS)
    dp: DPConfig | None = None

    @model_validator(mode="after")
    def _dp_takes_the_plain_recipe(self) -> "TrainingConfig":
        if self.dp is not None:
            extras = [f for f, on in (("optimizer: sam", self.optimizer == "sam"),
                                      ("label_smoothing", self.label_smoothing > 0),
                                      ("precision: bf16", self.precision == "bf16"), ("compile", self.compile)) if on]
            if extras:
                raise ValueError(f"DP-SGD trains with the plain recipe (adam or sgd, fp32); drop {', '.join(extras)}")
        return self

    @model_validator(mode="after")
    def _checkpoints_within_training(self) -> "TrainingConfig":
        bad = [e for e in self.checkpoints if not 1 <= e <= self.epochs]
        if bad:
            raise ValueError(f"checkpoints {bad} lie outside epochs 1..{self.epochs}")
        return self


class QueryConfig(Strict):
    """Augmented queries: mirror x shifts in range(-shift, shift+1, stride) squared."""

    mirror: Bool = False
    shift: Int = Field(0, ge=0)
    stride: Int = Field(1, ge=1)


class CurvatureConfig(Strict):
    estimator: Literal["zero_order", "hutchinson", "hutchinson_sq"] = "zero_order"
    h: Float = Field(1e-3, gt=0.0)
    rounds: Int = Field(10, ge=1)
    mirror: Bool = True              # two augmentations (identity and mirror) as in the paper
    dtype: Literal["float32", "float64"] = "float32"


class AttackConfig(Strict):
    name: str
    signal: str | None = None        # override the attack's default signal
    label: str | None = None         # name shown in tables (default: name)
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known(self) -> "AttackConfig":
        """Name, signal, parameters and label checked here, before any training."""
        from privaudit.attacks.registry import ATTACKS
        from privaudit.signals.transforms import LABEL_ONLY_SIGNALS, SIGNALS, STORED_SIGNALS

        if self.name not in ATTACKS:
            raise ValueError(f"unknown attack {self.name!r}; known: {', '.join(ATTACKS)}")
        if self.signal is not None and self.signal not in (*SIGNALS, *STORED_SIGNALS):
            raise ValueError(f"unknown signal {self.signal!r}; choose one of {', '.join((*SIGNALS, *STORED_SIGNALS))}")
        if self.signal is not None and ATTACKS[self.name].label_only and self.signal not in LABEL_ONLY_SIGNALS:
            raise ValueError(f"attack {self.name!r} is label-only: its signal must be one of "
                             f"{', '.join(LABEL_ONLY_SIGNALS)}, got {self.signal!r}")
        unknown = sorted(set(self.params) - set(ATTACKS[self.name].params))
        if unknown:
            raise ValueError(f"attack {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(ATTACKS[self.name].params) or 'none'}")
        try:
            check_name(self.key, "attack label")
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return self

    @property
    def key(self) -> str:
        """This attack's name in tables and result files."""
        return self.label or (self.name if not self.signal else f"{self.name}[{self.signal}]")

    @property
    def signal_name(self) -> str:
        from privaudit.attacks.registry import ATTACKS

        return self.signal or ATTACKS[self.name].signal

    def fingerprint(self) -> dict[str, Any]:
        """What determines this attack's scores besides the run's signals."""
        return {"name": self.name, "signal": self.signal_name, "params": dict(self.params)}


class TargetConfig(Strict):
    """The user's own trained model, audited against the population."""

    model: str                       # .safetensors state dict (+ the architecture) or torch.export .pt2
    members: str                     # .npy bool[n] over the pool's rows: True = in the target's training set
    factory: str | None = None       # the target's architecture, "package.module:function" (with kwargs)
    kwargs: dict[str, Any] = {}
    arch: str | None = None          # or a registered architecture, sized by the model: section

    @model_validator(mode="after")
    def _one_architecture(self) -> "TargetConfig":
        if self.factory is not None and self.arch is not None:
            raise ValueError("give target.factory or target.arch, not both")
        if self.kwargs and self.factory is None:
            raise ValueError("target.kwargs are passed to target.factory; give target.factory too")
        return self


class EvaluationConfig(Strict):
    targets: Int = Field(8, ge=1)    # leave-one-model-out over this many target models
    fprs: tuple[Float, ...] = (1e-2,)   # add lower FPRs when each target has >= 1/alpha non-members
    tpr_mode: Literal["strict", "interp"] = "strict"
    bootstrap: Int = Field(200, ge=0)
    seed: Int = 0

    @field_validator("fprs")
    @classmethod
    def _fprs_in_range(cls, v: tuple[Float, ...]) -> tuple[Float, ...]:
        if any(not 0.0 < a < 1.0 for a in v):
            raise ValueError("every FPR must lie strictly between 0 and 1")
        return v


class RunConfig(Strict):
    name: str = "digits"
    seed: Int = 0
    out: str = "runs"                # parent folder of run directories
    data: DataConfig = DataConfig()
    canaries: CanaryConfig | None = None
    poison: PoisonConfig | None = None
    population: PopulationConfig = PopulationConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    queries: QueryConfig = QueryConfig()
    curvature: CurvatureConfig | None = None
    target: TargetConfig | None = None
    attacks: tuple[AttackConfig, ...] = (AttackConfig(name="loss"), AttackConfig(name="lira_online"),
                                         AttackConfig(name="lira_offline"))

    evaluation: EvaluationConfig = EvaluationConfig()

    @model_validator(mode="before")
    @classmethod
    def _references_default_to_the_target(cls, data: Any) -> Any:
        """A target with its own architecture (``target.factory`` or ``target.arch``) and no
        ``model:`` section: the reference models use the target's architecture."""
        if isinstance(data, dict) and isinstance(data.get("target"), dict) and "model" not in data:
            t = data["target"]
            if t.get("factory"):
                data = dict(data, model={"factory": t["factory"], "kwargs": t.get("kwargs") or {}})
            elif t.get("arch"):
                data = dict(data, model={"arch": t["arch"]})
        return data

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        try:
            return check_name(v, "name")
        except ConfigError as err:
            raise ValueError(str(err)) from None

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        """A list of names or sections, a comma list ``"loss,lira_online"``, or ``all``."""
        if isinstance(v, str):
            v = ["all"] if v.strip() == "all" else [a.strip() for a in v.split(",") if a.strip()]
        if not isinstance(v, (list, tuple)):
            raise ValueError("attacks must be a list of attack names or sections, or 'all'")
        if list(v) == ["all"]:
            from privaudit.attacks.registry import ATTACKS

            return [{"name": n} for n in ATTACKS]   # curvature attacks dropped below when not computed
        return [{"name": a} if isinstance(a, str) else a for a in v]

    @model_validator(mode="before")
    @classmethod
    def _all_without_curvature(cls, data: Any) -> Any:
        """``attacks: all`` means every attack this run can score: curvature attacks only when the
        config computes curvature."""
        if isinstance(data, dict) and isinstance(data.get("attacks"), str) and data["attacks"].strip() == "all" \
                and not data.get("curvature"):
            from privaudit.attacks.registry import ATTACKS

            data = dict(data, attacks=[n for n, s in ATTACKS.items() if s.signal != CURVATURE_SIGNAL])
        return data

    @model_validator(mode="after")
    def _enough_models(self) -> "RunConfig":
        needs_curvature = [a.key for a in self.attacks if a.signal_name == CURVATURE_SIGNAL]
        if needs_curvature and self.curvature is None:
            raise ValueError(f"attacks {', '.join(needs_curvature)} need input curvature: add a 'curvature:' "
                             f"section (e.g. curvature: {{estimator: zero_order}}) or drop them")
        keys = [a.key for a in self.attacks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two attacks share a name ({', '.join(k for k in keys if keys.count(k) > 1)}); "
                             f"give one a label")
        if self.evaluation.targets > self.population.n_models:
            raise ValueError(f"evaluation.targets={self.evaluation.targets} exceeds "
                             f"n_models={self.population.n_models}")
        if self.target is not None:
            changed = [k for k, v in (("data.n", self.data.n), ("data.mixture", self.data.mixture),
                                      ("canaries", self.canaries), ("poison", self.poison)) if v is not None]
            if changed:
                raise ValueError(f"target.members refers to the rows of the dataset as stored; "
                                 f"{', '.join(changed)} would change them (remove it to audit a target)")
        return self

    def target_model(self) -> "ModelConfig | None":
        """The target's architecture: ``target.factory`` or ``target.arch`` (sized like ``model:``
        when it names the same architecture), else ``model:`` itself (None without a target)."""
        if self.target is None:
            return None
        t = self.target
        if t.factory is not None:
            return ModelConfig(factory=t.factory, kwargs=t.kwargs)
        if t.arch is not None and t.arch != self.model.arch:
            return ModelConfig(arch=t.arch)
        return self.model

    def references_differ(self) -> str | None:
        """One line when the reference models' architecture may differ from the target's."""
        if self.target is None:
            return None
        describe = lambda m: m.factory if m.arch == "factory" else m.arch
        if Path(self.target.model).suffix == ".safetensors" or self.target.factory or self.target.arch:
            target = self.target_model()
            if target == self.model:
                return None
            return (f"the reference models ({describe(self.model)}) differ from the target's architecture "
                    f"({describe(target)}); LiRA and RMIA are strongest when they match")
        return (f"the reference models are {describe(self.model)} (model:); privaudit cannot see the "
                f"architecture inside {Path(self.target.model).name}: make model: match it")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def training_fields(self) -> dict[str, Any]:
        """What determines the trained models (a run dir may not change these and resume)."""
        d = self.model_dump(mode="json")
        return {k: d[k] for k in ("seed", "data", "model", "canaries", "poison")} | {
            "training": {k: v for k, v in d["training"].items()
                         if k not in ("workers", "backend", "device", "executor", "compile")},
            "population": {k: v for k, v in d["population"].items() if k != "models_per_group"}}


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    first = first | {"msg": first["msg"].removeprefix("Value error, ")}
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {where}: {first['msg']}{more}"


def parse_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_path(d, "training.epochs", 5)`` — used for command-line overrides."""
    *parents, leaf = dotted.split(".")
    if not leaf or not all(parents):
        raise ConfigError(f"--set {dotted}: expected KEY=VALUE with a dotted key such as training.lr")
    node = data
    for i, key in enumerate(parents):
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            where = ".".join(parents[:i + 1])
            raise ConfigError(f"--set {dotted}: {where} is a value, not a section (use --set {where}=VALUE)")
    node[leaf] = value


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config; relative ``data.root`` and ``target`` paths resolve against the config's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err.__class__.__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for section, key in (("data", "root"), ("target", "model"), ("target", "members")):
        if not isinstance(data.get(section) or {}, dict):
            raise ConfigError(f"{path}: {section} must be a section of keys (see the README), "
                              f"got {data[section]!r}")
        value = (data.get(section) or {}).get(key)
        if value and not Path(value).is_absolute():
            resolved = (path.parent / value).resolve()
            data[section][key] = str(resolved if resolved.exists() else Path(value).resolve())
    for key, value in (overrides or {}).items():
        set_path(data, key, value)
    if any(isinstance(data.get(s), dict) and data[s].get("factory") for s in ("model", "target")):
        from privaudit.models.factory import add_search_path

        add_search_path(path.parent)   # a factory module may sit next to the config file
    return parse_config(data, str(path))


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
