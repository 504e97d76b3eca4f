"""Over/under-represented data mixtures, the experimental design of Choi, Tople, Chandrasekaran &
Jha, "Why Train More? Effective and Efficient Membership Inference via Memorization" (arXiv
2310.08015, 2023; §4, §6, App. C), on in-memory arrays.

D = D_over ∪ D_under, with three ways to choose D_under from an "extra" (OOD) source:

* (a) random OOD samples, class-balanced            -> :func:`ood_random`, :func:`make_mixture`
* (b) a subpopulation: penultimate-layer features of a model trained on the base set ->
      PCA(10) -> KMeans(5) -> the smallest cluster   -> :func:`smallest_cluster`
      (the features are computed by the caller; Choi et al. used an EfficientNet)
* (c) "singletons": Feldman-Zhang memorization above a threshold -> :func:`singletons`

plus the image conversions Choi et al. used: grayscale + resize to 28x28 for MNIST + CIFAR-10/SVHN
mixtures (:func:`to_grayscale_resized`) and an augmented copy of the base set
(:func:`augment_images`). Their augMNIST/augCIFAR-10 used PixMix (Hendrycks et al. 2022) with
fractal images; we have no fractals, so :func:`augment_images` is a *different* covariate shift
(random rotation + elastic deformation + Gaussian noise) and must be reported under its own name.

Pure NumPy / SciPy / scikit-learn; images are float ``[n, C, H, W]``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from privaudit.errors import ConfigError, DataError

__all__ = [
    "GROUP_OVER",
    "GROUP_UNDER",
    "LUMA_BT601",
    "AUGMENTATIONS",
    "make_mixture",
    "ood_random",
    "smallest_cluster",
    "singletons",
    "augment_images",
    "to_grayscale_resized",
]

GROUP_OVER = 0   # over-represented base set
GROUP_UNDER = 1  # under-represented extra set

# ITU-R BT.601 luma (PIL ``convert("L")``), not necessarily Choi et al.'s formula (footnote 3).
LUMA_BT601 = (0.299, 0.587, 0.114)


def _labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{name} must have shape ({n},), got {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"{name} must hold integer class labels")
    return y.astype(np.int64)


def ood_random(extra_y: np.ndarray, *, n: int, seed: int, balanced: bool = True,
               classes: np.ndarray | None = None) -> np.ndarray:
    """(a) ``n`` random samples of the extra set, as a bool mask over ``extra_y``.

    ``balanced=True`` (Choi et al., App. C: "equal number of samples for each class"): n // K per
    class over the K ``classes`` (default: the labels present), the n % K remaining samples going
    to randomly chosen classes. Raises DataError if a class has too few samples."""
    extra_y = np.asarray(extra_y).astype(np.int64)
    if n < 0 or n > extra_y.size:
        raise ConfigError(f"cannot draw n={n} samples from an extra set of {extra_y.size}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(extra_y.size, dtype=bool)
    if not balanced:
        mask[rng.choice(extra_y.size, size=n, replace=False)] = True
        return mask
    classes = np.unique(extra_y) if classes is None else np.asarray(classes, dtype=np.int64)
    if classes.size == 0:
        raise DataError("the extra set has no samples to draw from")
    per = np.full(classes.size, n // classes.size)
    per[rng.choice(classes.size, size=n % classes.size, replace=False)] += 1
    for c, k in zip(classes, per):
        idx = np.flatnonzero(extra_y == c)
        if idx.size < k:
            raise DataError(f"class {c} has {idx.size} extra samples, {k} needed for a balanced draw")
        mask[rng.choice(idx, size=k, replace=False)] = True
    return mask


def _map_labels(y: np.ndarray, label_map) -> np.ndarray:
    """Map labels through a dict or an int array; unmapped labels (missing / negative) -> -1."""
    if isinstance(label_map, Mapping):
        uniq, inverse = np.unique(y, return_inverse=True)
        mapped = np.array([int(label_map.get(int(v), -1)) for v in uniq], dtype=np.int64)
        return np.where(mapped[inverse] < 0, -1, mapped[inverse])
    table = np.asarray(label_map, dtype=np.int64)
    out = np.full(y.shape, -1, dtype=np.int64)
    ok = (y >= 0) & (y < table.size)
    out[ok] = table[y[ok]]
    return np.where(out < 0, -1, out)


def make_mixture(base_x: np.ndarray, base_y: np.ndarray, extra_x: np.ndarray,
                 extra_y: np.ndarray, *, n_under: int, seed: int, balanced: bool = True,
                 extra_label_map=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D = D_over ∪ D_under: the whole base set plus ``n_under`` random (class-balanced by
    default) samples of the extra set (Choi et al. §4, design (a)).

    ``extra_label_map`` (dict or int array, optional) maps extra labels into the base label space
    so that the assignment is consistent (e.g. CIFAR-10 class c -> MNIST digit c; CIFAR-100 first
    10 classes -> 0..9); extra samples whose label is unmapped (missing, or mapped to < 0) are
    never drawn. The inputs must already have the same per-sample shape (convert first, e.g.
    with :func:`to_grayscale_resized`). For designs (b)/(c), pass the selected subset as
    ``extra_x``/``extra_y`` with ``n_under = len(subset)``.

    Returns ``(x, y, group)``: base samples first, then the drawn extra samples (in index order);
    ``y`` int64; ``group`` int8, 0 = over-represented base, 1 = under-represented.
    """
    base_x, extra_x = np.asarray(base_x), np.asarray(extra_x)
    if base_x.ndim < 2 or extra_x.ndim < 2:
        raise DataError(f"x arrays must be [n, ...], got {base_x.shape} and {extra_x.shape}")
    if base_x.shape[1:] != extra_x.shape[1:]:
        raise DataError(f"base samples have shape {base_x.shape[1:]} but extra samples "
                        f"{extra_x.shape[1:]}; convert first (e.g. to_grayscale_resized)")
    base_y = _labels(base_y, base_x.shape[0], "base_y")
    extra_y = _labels(extra_y, extra_x.shape[0], "extra_y")
    if extra_label_map is not None:
        extra_y = _map_labels(extra_y, extra_label_map)
    usable = np.flatnonzero(extra_y >= 0)
    classes = np.unique(extra_y[usable])
    if balanced and classes.size and base_y.size:
        missing = np.setdiff1d(classes, np.unique(base_y))
        if missing.size:
            raise DataError(f"extra labels {missing.tolist()} do not occur in the base set; "
                            "map them with extra_label_map")
    chosen = usable[ood_random(extra_y[usable], n=n_under, seed=seed, balanced=balanced)]
    x = np.concatenate([base_x, extra_x[chosen].astype(base_x.dtype, copy=False)], axis=0)
    y = np.concatenate([base_y, extra_y[chosen]])
    group = np.concatenate([np.full(base_y.size, GROUP_OVER, np.int8),
                            np.full(chosen.size, GROUP_UNDER, np.int8)])
    return x, y, group


def smallest_cluster(features: np.ndarray, *, pca_dim: int = 10, k: int = 5, seed: int = 0,
                     return_labels: bool = False):
    """(b) subpopulation (Jagielski et al. 2021 as used by Choi et al. §6(b)): project the
    ``features`` [n, f] (penultimate-layer features of a model trained on the base set, computed
    by the caller) with PCA to ``pca_dim`` dimensions, cluster with KMeans(``k``, n_init=10,
    seeded), and return the bool [n] mask of the smallest cluster (ties: the lowest cluster id).
    With ``return_labels=True`` also returns the cluster ids [n]."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise DataError(f"features must be [n, f], got shape {features.shape}")
    if not np.isfinite(features).all():
        raise DataError("features contain NaN or inf")
    n, f = features.shape
    if k < 1 or n < k:
        raise ConfigError(f"need at least k={k} >= 1 samples to form {k} clusters, got {n}")
    dim = min(pca_dim, f, n)
    from sklearn.cluster import KMeans   # here: scikit-learn's import is slow, and every report
    from sklearn.decomposition import PCA   # imports this module (singletons)

    z = PCA(n_components=dim, random_state=seed).fit_transform(features) if dim < f else features
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    counts = np.bincount(labels, minlength=k)
    counts = np.where(counts == 0, np.iinfo(np.int64).max, counts)   # empty clusters never win
    mask = labels == int(np.argmin(counts))
    return (mask, labels) if return_labels else mask


def singletons(mem: np.ndarray, threshold: float) -> np.ndarray:
    """(c) "singletons": samples whose memorization estimate exceeds ``threshold`` (strict >;
    NaN never). Choi et al. fn. 12: mem > 0.4 for MNIST, > 0.8 for CIFAR-10 single-dataset runs."""
    mem = np.asarray(mem, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(mem, nan=-np.inf) > threshold


# --------------------------------------------------------------------------------------------
# image conversions
# --------------------------------------------------------------------------------------------

AUGMENTATIONS = {
    # rotation range (degrees), elastic alpha / sigma in units of 28-pixel images, noise std as a
    # fraction of the per-channel std of the batch
    "strong": {"rotate": 30.0, "elastic_alpha": 34.0, "elastic_sigma": 4.0, "noise": 0.1},
    "light": {"rotate": 10.0, "elastic_alpha": 0.0, "elastic_sigma": 4.0, "noise": 0.03},
}


def _images(x: np.ndarray, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise DataError(f"{name} must be images [n, C, H, W], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataError(f"{name} contains NaN or inf")
    return x


def augment_images(x: np.ndarray, seed: int, kind: str = "strong", *,
                   chunk: int = 512) -> np.ndarray:
    """A label-preserving, covariate-shifted copy of images ``x`` [n, C, H, W]:
    per image a random rotation (uniform in ±30° for ``"strong"``, ±10° for ``"light"``) composed
    with an elastic deformation (Simard et al. 2003: uniform(-1, 1) displacement fields smoothed
    by a Gaussian, sigma = 4, scaled by alpha = 34, both in 28-pixel units; ``"strong"`` only),
    bilinear resampling with edge replication, then additive Gaussian noise (0.1 / 0.03 of each
    channel's std), clipped to each channel's input range.

    This is NOT PixMix (Hendrycks et al. 2022, used for Choi et al.'s augMNIST/augCIFAR-10: mixing
    with fractal images); name the result e.g. "MNIST-rot-elastic", not "augMNIST".
    Deterministic given ``seed``; float32 out, same shape. Vectorised: one
    ``scipy.ndimage.map_coordinates`` call per chunk of images.
    """
    from scipy import ndimage   # here: only the image conversions need it

    if kind not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation kind {kind!r}; choose one of {sorted(AUGMENTATIONS)}")
    x = _images(x).astype(np.float64)
    p = AUGMENTATIONS[kind]
    n, c, h, w = x.shape
    rng = np.random.default_rng(seed)
    scale = h / 28.0
    lo = x.min(axis=(0, 2, 3)) if n else np.zeros(c)
    hi = x.max(axis=(0, 2, 3)) if n else np.zeros(c)
    std = x.std(axis=(0, 2, 3)) if n else np.zeros(c)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing="ij")
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    out = np.empty_like(x)
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        theta = np.deg2rad(rng.uniform(-p["rotate"], p["rotate"], size=b))[:, None, None]
        cos, sin = np.cos(theta), np.sin(theta)
        src_y = cos * (yy - cy) - sin * (xx - cx) + cy                  # [b, h, w]
        src_x = sin * (yy - cy) + cos * (xx - cx) + cx
        if p["elastic_alpha"] > 0:
            field = rng.uniform(-1.0, 1.0, size=(2, b, h, w))
            sig = p["elastic_sigma"] * scale
            field = ndimage.gaussian_filter(field, sigma=(0, 0, sig, sig), mode="constant")
            field *= p["elastic_alpha"] * scale
            src_y = src_y + field[0]
            src_x = src_x + field[1]
        shape = (b, c, h, w)
        coords = np.stack([
            np.broadcast_to(np.arange(b, dtype=np.float64)[:, None, None, None], shape),
            np.broadcast_to(np.arange(c, dtype=np.float64)[None, :, None, None], shape),
            np.broadcast_to(src_y[:, None], shape),
            np.broadcast_to(src_x[:, None], shape)])
        warped = ndimage.map_coordinates(x[start:start + b], coords, order=1, mode="nearest")
        warped += rng.normal(size=shape) * (p["noise"] * std)[None, :, None, None]
        out[start:start + b] = np.clip(warped, lo[None, :, None, None], hi[None, :, None, None])
    return out.astype(np.float32)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of exact area averaging (box filter over the overlap of output
    pixel i's footprint [i, i+1) * n_in/n_out with input pixel j); rows sum to 1."""
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    j = np.arange(n_in, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], j[None, :] + 1) - np.maximum(edges[:-1, None], j[None, :])
    weights = np.clip(overlap, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def to_grayscale_resized(x: np.ndarray, size: tuple[int, int] = (28, 28), *,
                         method: str = "area") -> np.ndarray:
    """RGB images [n, 3, H, W] (or already-gray [n, 1, H, W]) -> [n, 1, *size] float32, as
    Choi et al. do to put SVHN/CIFAR-10 next to MNIST (§4: "resized to match the dimension of MNIST
    samples (28x28), and converted to grayscale").

    Gray = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma, PIL's "L"; not necessarily Choi et
    al.'s formula, their footnote 3). Apply to raw pixel values (e.g. [0, 1]) *before* per-channel
    normalisation.
    ``method="area"``: exact area averaging (separable box-filter matrices; preserves constants
    and the image mean); ``"zoom"``: ``scipy.ndimage.zoom`` bilinear (order 1, grid mode).
    """
    from scipy import ndimage   # here: only the image conversions need it
    x = _images(x)
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise DataError(f"expected 1 or 3 channels [n, C, H, W], got C={c} (shape {x.shape})")
    oh, ow = (int(v) for v in size)
    if oh < 1 or ow < 1:
        raise ConfigError(f"size must be positive, got {size}")
    x = x.astype(np.float64)
    gray = np.tensordot(np.asarray(LUMA_BT601), x, axes=([0], [1])) if c == 3 else x[:, 0]
    if method == "area":
        out = np.einsum("oh,nhw,pw->nop", _area_matrix(h, oh), gray, _area_matrix(w, ow),
                        optimize=True)
    elif method == "zoom":
        out = ndimage.zoom(gray, (1.0, oh / h, ow / w), order=1, mode="nearest", grid_mode=True)
        if out.shape[1:] != (oh, ow):
            raise DataError(f"zoom produced {out.shape[1:]}, expected {(oh, ow)}")
    else:
        raise ConfigError(f"method must be 'area' or 'zoom', got {method!r}")
    return out[:, None].astype(np.float32)
