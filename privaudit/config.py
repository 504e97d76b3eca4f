"""The run configuration: a pydantic schema, YAML in, resolved YAML out.

Every field has a default, so a config file names only what differs; unknown keys are errors
(a typo must not be silently ignored). Validation errors name the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from privaudit.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    name: str = "digits"
    root: str | None = None          # folder or file the loader reads (relative to the config file)
    split: Literal["train", "test"] = "train"
    n: int | None = Field(None, gt=0)  # seeded random subset of the pool
    download: bool = False
    mixture: dict[str, Any] | None = None  # under-represented group design, see privaudit.data.mixture_dataset


class CanaryConfig(Strict):
    """Audit targets inserted into the pool (they follow the membership design like any sample)."""

    mislabeled: int = Field(0, ge=0)   # natural samples given a random wrong label
    blank: int = Field(0, ge=0)        # all-zero (in pixel space) inputs with random labels
    noise: int = Field(0, ge=0)        # uniform-noise inputs with random labels
    natural: int = Field(0, ge=0)      # unmodified samples marked as audit targets


class PoisonConfig(Strict):
    """Truth Serum (Tramer et al. CCS 2022): ``copies`` mislabeled copies of each of ``targets``
    pool samples added to EVERY model's training set; the clean targets are attacked as usual."""

    targets: int = Field(250, ge=1)
    copies: int = Field(8, ge=0)


class DPConfig(Strict):
    """DP-SGD (Abadi et al. 2016): per-sample clipping + Gaussian noise, Opacus accountant."""

    noise_multiplier: float | None = Field(None, ge=0.0)
    target_epsilon: float | None = Field(None, gt=0.0)
    delta: float = Field(1e-5, gt=0.0, lt=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    sampling: Literal["poisson", "shuffle"] = "poisson"
    accountant: Literal["rdp", "prv"] = "rdp"
    bug: Literal["none", "noise_not_scaled", "clip_after_average"] = "none"  # deliberately broken variants

    @model_validator(mode="after")
    def _one_of(self) -> "DPConfig":
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("give exactly one of noise_multiplier or target_epsilon")
        return self


class PopulationConfig(Strict):
    n_models: int = Field(64, ge=2)
    pkeep: float = Field(0.5, gt=0.0, lt=1.0)
    design: Literal["balanced", "bernoulli", "paired"] = "balanced"
    models_per_group: int = Field(32, ge=1)


class ModelConfig(Strict):
    arch: Literal["mlp", "cnn"] = "mlp"
    hidden: tuple[int, ...] = (128,)
    width: int = Field(32, ge=1)
    depth: int = Field(3, ge=1)
    activation: Literal["relu", "tanh", "gelu", "softplus"] = "relu"


class TrainingConfig(Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    milestones: tuple[float, ...] = (0.6, 0.8)
    gamma: float = Field(0.1, gt=0.0)
    mirror: bool = False
    shift: int = Field(0, ge=0)
    checkpoints: tuple[int, ...] = ()
    backend: Literal["auto", "wide", "vmap", "loop"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"   # auto: the GPU when PyTorch sees one
    workers: int = Field(2, ge=1)                     # CPU worker processes (one process on a GPU)
    executor: Literal["local", "ray"] = "local"       # ray: the groups become Ray tasks (a cluster: RAY_ADDRESS)
    dp: DPConfig | None = None

    @model_validator(mode="after")
    def _checkpoints_within_training(self) -> "TrainingConfig":
        bad = [e for e in self.checkpoints if not 1 <= e <= self.epochs]
        if bad:
            raise ValueError(f"checkpoints {bad} lie outside epochs 1..{self.epochs}")
        return self


class QueryConfig(Strict):
    """Augmented queries: mirror x shifts in range(-shift, shift+1, stride) squared."""

    mirror: bool = False
    shift: int = Field(0, ge=0)
    stride: int = Field(1, ge=1)


class CurvatureConfig(Strict):
    estimator: Literal["zero_order", "hutchinson", "hutchinson_sq"] = "zero_order"
    h: float = Field(1e-3, gt=0.0)
    rounds: int = Field(10, ge=1)
    mirror: bool = True              # two augmentations (identity and mirror) as in the paper
    dtype: Literal["float32", "float64"] = "float32"


class AttackConfig(Strict):
    name: str
    signal: str | None = None        # override the attack's default signal
    label: str | None = None         # name shown in tables (default: name)
    params: dict[str, Any] = {}

    @property
    def key(self) -> str:
        """This attack's name in tables and result files."""
        return self.label or (self.name if not self.signal else f"{self.name}[{self.signal}]")


class TargetConfig(Strict):
    """The user's own trained model, audited against the population (DESIGN §1.2)."""

    model: str                       # TorchScript (torch.jit.save) or torch.export (.pt2) file: x[B, ...] -> logits[B, C]
    members: str                     # .npy bool[n] over the pool's rows: True = in the target's training set


class EvaluationConfig(Strict):
    targets: int = Field(8, ge=1)    # leave-one-model-out over this many target models
    fprs: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    tpr_mode: Literal["strict", "interp"] = "strict"
    bootstrap: int = Field(200, ge=0)
    seed: int = 0

    @field_validator("fprs")
    @classmethod
    def _fprs_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < a < 1.0 for a in v):
            raise ValueError("every FPR must lie strictly between 0 and 1")
        return v


class RunConfig(Strict):
    name: str = "digits"
    seed: int = 0
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

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        return [{"name": a} if isinstance(a, str) else a for a in v]

    @model_validator(mode="after")
    def _enough_models(self) -> "RunConfig":
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

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def training_fields(self) -> dict[str, Any]:
        """What determines the trained models (a run dir may not change these and resume)."""
        d = self.model_dump(mode="json")
        return {k: d[k] for k in ("seed", "data", "model", "canaries", "poison")} | {
            "training": {k: v for k, v in d["training"].items() if k not in ("workers", "backend", "device", "executor")},
            "population": {k: v for k, v in d["population"].items() if k != "models_per_group"}}


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
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
    node = data
    for key in parents:
        node = node.setdefault(key, {})
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
    return parse_config(data, str(path))


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
