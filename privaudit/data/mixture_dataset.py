"""A run's pool as an over/under-represented mixture (Choi, Tople, Chandrasekaran & Jha, "Why Train
More? Effective and Efficient Membership Inference via Memorization", arXiv 2310.08015, 2023; §4,
§6, App. C), built from the registered datasets.

``data.mixture`` (a free dict in :class:`privaudit.config.DataConfig`) is validated here by
:class:`MixtureConfig`; the pipeline's ``write_pool`` calls :func:`load_mixture` and saves the
returned group ids as ``data/group.npy`` (0 = over-represented base set, 1 = under-represented).

The base set D_over is ``data.name`` / ``data.n`` exactly as without a mixture. D_under is one of

* ``kind: ood`` -- (a) ``n_under`` random, class-balanced samples of another dataset (``source``),
  converted to the base's input format (e.g. CIFAR-10 -> grayscale 28x28 for MNIST, BT.601 luma
  and area resizing, :func:`privaudit.data.mixtures.to_grayscale_resized`);
* ``kind: subpopulation`` -- (b) the same ``n_under`` random candidates, then the penultimate-layer
  activations of ONE small model trained on the base set (:func:`privaudit.training.trainer.
  train_group`; Choi et al. used an EfficientNet) -> PCA(``pca_dim``) -> KMeans(``clusters``) -> only
  the smallest cluster joins the pool (:func:`privaudit.data.mixtures.smallest_cluster`);
* ``kind: augmented`` -- (c') ``n_under`` augmented copies of images of ``source`` (default: the
  base dataset, its test split when it has one): random rotation + elastic deformation + Gaussian
  noise (:func:`privaudit.data.mixtures.augment_images`). This is NOT Choi et al.'s PixMix with
  fractals ("augMNIST"); it is reported as e.g. ``mnist-rot-elastic``.

Choi et al.'s third design, (c) "singletons" (memorization above a threshold), needs a trained
population and is selected afterwards from its Feldman-Zhang scores (``privaudit memorization``).

Labels: source class c becomes base class ``label_map[c]`` (default: the identity, e.g. CIFAR-10
airplane -> digit 0 as in Choi et al.; -1 drops a class), so both groups share one label space.
When the source is the base dataset and split, source images identical to a base image are
excluded, so no image is in both groups.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from privaudit.data.datasets import Dataset, list_datasets, load_dataset
from privaudit.data.mixtures import (
    AUGMENTATIONS,
    GROUP_UNDER,
    augment_images,
    make_mixture,
    smallest_cluster,
    to_grayscale_resized,
)
from privaudit.errors import ConfigError, DataError

__all__ = ["MixtureConfig", "parse_mixture", "load_mixture", "penultimate_features"]

_KIND_FIELDS = {"augmented": {"augmentation"},
                "subpopulation": {"pca_dim", "clusters", "feature_arch", "feature_hidden",
                                  "feature_epochs"}}


class MixtureConfig(BaseModel):
    """``data.mixture``: how the under-represented group is built (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ood", "subpopulation", "augmented"]
    n_under: int = Field(gt=0)                      # samples drawn (subpopulation: candidates)
    source: str | None = None                       # dataset of the group (augmented: base)
    source_root: str | None = None                  # default: next to data.root
    source_split: Literal["train", "test"] | None = None
    source_n: int | None = Field(None, gt=0)        # size of the random source pool loaded
    balanced: bool = True                           # class-balanced draw (seed App. C)
    label_map: tuple[int, ...] | None = None        # source class c -> base class (-1: drop)
    augmentation: Literal[tuple(AUGMENTATIONS)] = "strong"   # type: ignore[valid-type]
    pca_dim: int = Field(10, ge=1)
    clusters: int = Field(5, ge=2)
    feature_arch: Literal["mlp", "cnn"] = "mlp"
    feature_hidden: int = Field(256, ge=1)          # MLP hidden width / CNN base width
    feature_epochs: int = Field(5, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "MixtureConfig":
        if self.source is None and self.kind != "augmented":
            raise ValueError(f"kind {self.kind!r} needs a source dataset (e.g. source: cifar10)")
        for kind, names in _KIND_FIELDS.items():
            stray = sorted(names & self.model_fields_set) if self.kind != kind else []
            if stray:
                raise ValueError(f"{', '.join(stray)} only apply to kind {kind!r}")
        if self.label_map is not None and any(v < -1 for v in self.label_map):
            raise ValueError("label_map entries must be class ids or -1 (drop)")
        return self


def parse_mixture(mixture: dict[str, Any]) -> MixtureConfig:
    """Validate ``data.mixture``; a :class:`ConfigError` names the field, on one line."""
    if not isinstance(mixture, dict):
        raise ConfigError(f"data.mixture must be a mapping, got {type(mixture).__name__}")
    try:
        return MixtureConfig.model_validate(mixture)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(["data.mixture", *map(str, first["loc"])])
        msg = first["msg"].removeprefix("Value error, ").splitlines()[0]
        more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
        raise ConfigError(f"{where}: {msg}{more}") from None


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------

def _split_size(name: str, split: str) -> int | None:
    for info in list_datasets():
        if info.name == name:
            return info.n_test if split == "test" else info.n_train
    return None


def _has_test_split(name: str) -> bool:
    return any(info.name == name and "test" in info.splits for info in list_datasets())


def _source_root(mix: MixtureConfig, data_root: str | None) -> Path | None:
    """``source_root``, relative ones against data.root's folder; default: that folder (datasets
    side by side, as in a shared data directory); None: the loader's own search path."""
    parent = Path(data_root).parent if data_root else None
    if mix.source_root is None:
        return parent
    root = Path(mix.source_root).expanduser()
    return root if root.is_absolute() or parent is None else parent / root


def _normalisation_of(base: Dataset) -> dict[str, Any]:
    """``load_dataset`` arguments that reproduce ``base``'s inputs for more of the same dataset
    (so identical samples are byte-identical: the dedupe below relies on it)."""
    if base.normalization == "none":
        return {"normalize": "none"}
    return {"normalize": "given", "mean": base.mean, "std": base.std}


def _load_source(mix: MixtureConfig, data_cfg: Any, seed: int,
                 base: Dataset) -> tuple[Dataset, str, bool]:
    """The source pool, its name, and whether it is the base dataset and split (dedupe needed).
    Another dataset keeps its own standard normalisation (it is converted through pixels)."""
    name = (mix.source or data_cfg.name).strip().lower()
    same = name == data_cfg.name.strip().lower()
    split = mix.source_split or ("test" if mix.kind == "augmented" and same
                                 and _has_test_split(name) else data_cfg.split)
    same_split = same and split == data_cfg.split
    root = Path(data_cfg.root) if same and data_cfg.root else _source_root(mix, data_cfg.root)
    size = _split_size(name, split)
    n = mix.source_n
    if n is None and not same_split and size is not None:
        n = min(size, max(4 * mix.n_under, 2000))    # a random stratified pool, not the whole set
    if n is not None and size is not None and n >= size:
        n = None
    try:
        ds = load_dataset(name, root=root, split=split, n=n, seed=seed + 1,
                          download=data_cfg.download, **(_normalisation_of(base) if same else {}))
    except DataError as err:
        raise DataError(f"data.mixture.source={name!r}: {err}") from None
    return ds, f"{name}/{split}", same_split


def _pixels(ds: Dataset) -> np.ndarray:
    return ds.denormalize().astype(np.float32)


def _denormalise(x: np.ndarray, base: Dataset) -> np.ndarray:
    """The base set's normalised inputs -> pixel values (inverse of :func:`_normalise`)."""
    if base.mean is None or not base.is_image:
        return x.astype(np.float32)
    m = np.asarray(base.mean, np.float32)[None, :, None, None]
    s = np.asarray(base.std, np.float32)[None, :, None, None]
    return (x * s + m).astype(np.float32)


def _normalise(px: np.ndarray, base: Dataset) -> np.ndarray:
    """Pixel values -> the base set's normalised input space."""
    if base.mean is None or not base.is_image:
        return px.astype(np.float32)
    m = np.asarray(base.mean, np.float32)[None, :, None, None]
    s = np.asarray(base.std, np.float32)[None, :, None, None]
    return ((px - m) / s).astype(np.float32)


def _to_base_format(src: Dataset, base: Dataset) -> np.ndarray:
    """Source samples in the base's pixel format [n, *base.input_shape] (still in pixel space)."""
    px = _pixels(src)
    if src.input_shape == base.input_shape:
        return px
    if not (src.is_image and base.is_image):
        raise DataError(f"data.mixture.source: samples of shape {list(src.input_shape)} cannot be "
                        f"converted to the base's {list(base.input_shape)}")
    c, h, w = base.input_shape
    if c == 1:
        return to_grayscale_resized(px, (h, w))
    if c == 3 and src.input_shape[0] == 1:          # gray -> resized, repeated over RGB
        return np.repeat(to_grayscale_resized(px, (h, w)), 3, axis=1)
    raise DataError(f"data.mixture.source: cannot resize colour images {list(src.input_shape)} to "
                    f"{list(base.input_shape)} (only gray/RGB -> gray, or gray -> RGB)")


def _label_table(mix: MixtureConfig, src: Dataset, base: Dataset) -> np.ndarray:
    if mix.label_map is None:
        return np.where(np.arange(src.n_classes) < base.n_classes, np.arange(src.n_classes), -1)
    table = np.asarray(mix.label_map, dtype=np.int64)
    if table.size != src.n_classes:
        raise ConfigError(f"data.mixture.label_map: has {table.size} entries but the source has "
                          f"{src.n_classes} classes")
    if table.max(initial=-1) >= base.n_classes:
        raise ConfigError(f"data.mixture.label_map: maps to class {int(table.max())} but the base "
                          f"set has classes 0..{base.n_classes - 1}")
    return table


def _not_in_base(src_x: np.ndarray, base_x: np.ndarray) -> np.ndarray:
    """bool [n_src]: source samples that are not byte-identical to any base sample."""
    row = lambda a: np.ascontiguousarray(a.reshape(len(a), -1)).view(
        np.dtype((np.void, a[0].nbytes))).ravel() if len(a) else np.empty(0, dtype="V1")
    return ~np.isin(row(src_x), row(base_x))


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch and BLAS/OpenMP on one thread (restored after): small fits, and on a shared 2-core
    machine two threads per process measured up to 50x slower (thread oversubscription)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def penultimate_features(base: Dataset, x: np.ndarray, *, arch: str, hidden: int, epochs: int,
                         seed: int) -> np.ndarray:
    """Penultimate-layer activations on ``x`` of one model trained on the whole ``base`` set
    (:func:`privaudit.training.trainer.train_group`, Adam, cosine schedule; ``loop`` backend, so
    the model is a plain ``nn.Sequential`` whose last layer is the linear head)."""
    import torch

    from privaudit.models.architectures import ArchSpec
    from privaudit.training.recipe import Recipe
    from privaudit.training.trainer import steps_per_epoch, train_group

    keep = np.ones((1, len(base)), dtype=bool)
    recipe = Recipe(epochs=epochs, batch_size=128, lr=2e-3)
    spec = ArchSpec(kind=arch, hidden=(hidden,), width=hidden if arch == "cnn" else 32, depth=3)
    group = train_group(torch.from_numpy(base.x), torch.from_numpy(base.y), keep, [0], spec=spec,
                        recipe=recipe, n_classes=base.n_classes, root_seed=seed,
                        steps=steps_per_epoch(keep, recipe.batch_size), backend="loop")
    model = next(iter(group.models()))
    with torch.no_grad():
        feats = [model[:-1](torch.from_numpy(np.ascontiguousarray(x[i:i + 1024])))
                 for i in range(0, len(x), 1024)]
    return torch.cat(feats).reshape(len(x), -1).numpy().astype(np.float64)


def load_mixture(data_cfg: Any, *, seed: int) -> tuple[Dataset, np.ndarray]:
    """The pool D_over ∪ D_under described by ``data_cfg.mixture`` (module docstring).

    ``data_cfg``: a :class:`privaudit.config.DataConfig` (name, root, split, n, download,
    mixture). Returns ``(Dataset, group)``: base samples first, then the under-represented ones
    (in the base's normalisation, labels in the base's classes); ``group`` int8 [n], 0 = base,
    1 = under-represented. Deterministic given ``seed``.
    """
    mix = parse_mixture(data_cfg.mixture)
    base = load_dataset(data_cfg.name, root=data_cfg.root, split=data_cfg.split, n=data_cfg.n,
                        seed=seed, download=data_cfg.download,
                        normalize=getattr(data_cfg, "normalize", "auto"),
                        mean=getattr(data_cfg, "mean", None), std=getattr(data_cfg, "std", None))
    src, src_name, same = _load_source(mix, data_cfg, seed, base)
    table = _label_table(mix, src, base)
    src_px = _to_base_format(src, base)
    usable = np.ones(len(src), dtype=bool)
    if same:
        usable = _not_in_base(src.x, base.x)           # same dataset: same normalisation
        if not usable.any():
            raise DataError(f"data.mixture.source={src_name!r}: every source image is already in "
                            f"the base set; use source_split or a smaller data.n")
    try:
        x, y, group = make_mixture(base.x, base.y, _normalise(src_px[usable], base), src.y[usable],
                                   n_under=mix.n_under, seed=seed, balanced=mix.balanced,
                                   extra_label_map=table)
    except (ConfigError, DataError) as err:
        raise type(err)(f"data.mixture (n_under={mix.n_under}, source {src_name}): {err}") from None
    under = group == GROUP_UNDER
    name = f"{base.name}+{src_name.split('/')[0]}"
    if mix.kind == "augmented":
        px = augment_images(_denormalise(x[under], base), seed, mix.augmentation)
        x[under] = _normalise(px, base)
        name = f"{base.name}+{src_name.split('/')[0]}-rot-elastic-{mix.augmentation}"
    elif mix.kind == "subpopulation":
        with _one_thread():
            feats = penultimate_features(base, x[under], arch=mix.feature_arch,
                                         hidden=mix.feature_hidden, epochs=mix.feature_epochs,
                                         seed=seed)
            small = smallest_cluster(feats, pca_dim=mix.pca_dim, k=mix.clusters, seed=seed)
        rows = np.concatenate([np.flatnonzero(~under), np.flatnonzero(under)[small]])
        x, y, group = x[rows], y[rows], group[rows]
        name = f"{name}-subpopulation"
    ds = Dataset(name, np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64),
                 base.n_classes, base.mean, base.std, base.normalization)
    return ds, group.astype(np.int8)
