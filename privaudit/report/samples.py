"""The most exposed samples, as the report shows them: a thumbnail of an image (the model's input
with its normalisation undone) or the feature row of tabular data, and per-sample predictions."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

THUMBNAIL_PX = 48


def thumbnail(image: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> str:
    """A ``data:`` URI of a PNG of ``image [C, H, W]`` (1 or 3 channels), about 48 px on its longer
    side (nearest-neighbour, so pixels stay visible); ``mean``/``std``: the normalisation to undo,
    else the image is scaled to its own range."""
    from PIL import Image

    x = np.asarray(image, dtype=np.float64)
    if mean is not None and std is not None:
        x = x * np.asarray(std).reshape(-1, 1, 1) + np.asarray(mean).reshape(-1, 1, 1)
    else:
        x = (x - x.min()) / (np.ptp(x) or 1.0)
    x = (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)
    img = Image.fromarray(x[0] if x.shape[0] == 1 else x[:3].transpose(1, 2, 0))
    scale = max(1, round(THUMBNAIL_PX / max(img.size)))
    img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def feature_text(row: np.ndarray, shown: int = 6) -> tuple[str, str]:
    """A tabular sample as ``(first features, every feature)``, 3 significant digits each."""
    values = [f"{v:.3g}" for v in np.asarray(row, dtype=np.float64).ravel()]
    short = ", ".join(values[:shown]) + (f", … ({len(values)} features)" if len(values) > shown else "")
    return short, ", ".join(values)


def majority(predictions: np.ndarray, mask: np.ndarray) -> str:
    """The most frequent class of ``predictions[mask]`` and its share, e.g. ``7 (62%)``; ``-`` if empty."""
    chosen = np.asarray(predictions)[np.asarray(mask, dtype=bool)]
    if chosen.size == 0:
        return "-"
    classes, counts = np.unique(chosen, return_counts=True)
    top = int(np.argmax(counts))
    return f"{classes[top]} ({counts[top] / chosen.size:.0%})"
