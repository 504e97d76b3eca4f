"""Training-time and query-time image augmentations as tensor ops (no torchvision).

Random mirror + shift with reflect padding, LiRA's "weak" augmentation (Carlini et al. 2022,
``train.py``), applied per sample with precomputed random draws so that a model's augmentations
depend only on its own seed. Everything runs on the images' device: the trainer keeps the dataset
there and moves each epoch's draws there once, so a training step copies nothing from the host and
waits on nothing (no data-dependent branch, no ``.item()``).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F


def shift_and_mirror(x: torch.Tensor, flip: torch.Tensor | None, dx: torch.Tensor, dy: torch.Tensor,
                     pad: int) -> torch.Tensor:
    """Per-sample ``x[b]`` mirrored where ``flip[b]`` and shifted by ``(dx[b], dy[b])`` pixels.

    ``x: [B, C, H, W]``; ``flip``: None for no mirroring; ``dx, dy`` in ``[-pad, pad]``; reflect
    padding fills the border.
    """
    if flip is not None:
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if pad == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (pad + dy).view(b, 1) + torch.arange(h, device=x.device).view(1, h)
    cols = (pad + dx).view(b, 1) + torch.arange(w, device=x.device).view(1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)]
    return out.permute(0, 3, 1, 2)


def draw_augmentations(rng: np.random.Generator, size: int, *, mirror: bool, shift: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (flip, dx, dy) for ``size`` samples."""
    flip = rng.random(size) < 0.5 if mirror else np.zeros(size, dtype=bool)
    if shift:
        dx, dy = rng.integers(-shift, shift + 1, size=(2, size))
    else:
        dx = dy = np.zeros(size, dtype=np.int64)
    return flip, dx, dy


def query_grid(*, mirror: bool, shift: int, stride: int) -> list[tuple[bool, int, int]]:
    """The deterministic augmented queries: mirror in {no, yes} x shifts in
    ``range(-shift, shift+1, stride)`` squared. ``mirror=True, shift=4, stride=4`` gives LiRA's
    18 queries (Carlini et al. 2022, Table III); the identity query comes first."""
    flips = [False, True] if mirror else [False]
    offsets = sorted(range(-shift, shift + 1, stride) if shift else [0], key=abs)
    return [(f, dx, dy) for f, dx, dy in itertools.product(flips, offsets, offsets)]


def apply_query(x: torch.Tensor, query: tuple[bool, int, int]) -> torch.Tensor:
    flip, dx, dy = query
    if x.dim() != 4:
        return x
    b = x.shape[0]
    pad = max(abs(dx), abs(dy))
    full = lambda v: torch.full((b,), v, device=x.device)
    return shift_and_mirror(x, full(True) if flip else None, full(dx), full(dy), pad)
