"""The run directory: every artifact written atomically (temp file + rename), so a run killed at
any moment leaves only complete files behind, and a restarted run skips what is already there.

```
runs/<name>/config.yaml          resolved config (what produced this run)
runs/<name>/manifest.json        what was done, when, with which data fingerprint
runs/<name>/keep.npy             membership design bool[M, n]
runs/<name>/models/group_GGG.pt  one file per trained group (stacked state), + _eEEE for checkpoints
runs/<name>/signals/epoch_EEEE/  logits (and curvature) float32[M, n, A, ...] per checkpoint
runs/<name>/results/             metrics.json, scores, per-sample tables, plots
runs/<name>/report/index.html
```
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from privaudit.errors import PrivauditError


class StoreError(PrivauditError):
    """A run directory is inconsistent or an artifact is corrupt."""


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def group_file(self, model_ids: list[int], epoch: int | None = None) -> Path:
        """File of the group of models ``model_ids`` (named by their range, so that a grown
        population or another grouping never mistakes one group for another)."""
        suffix = "" if epoch is None else f"_e{epoch:04d}"
        return self.path("models", f"models_{_span(model_ids)}{suffix}.pt")

    def signal_file(self, name: str, epoch: int, model_ids: list[int] | None = None) -> Path:
        stem = name if model_ids is None else f"{name}_models_{_span(model_ids)}"
        return self.path("signals", f"epoch_{epoch:04d}", f"{stem}.npy")

    # -- writing -------------------------------------------------------------------------------
    def save_text(self, rel: str | Path, text: str) -> Path:
        path = self.path(str(rel))
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        return path

    def save_json(self, rel: str | Path, obj: Any) -> Path:
        return self.save_text(rel, json.dumps(obj, indent=2, default=_jsonable) + "\n")

    def save_npy(self, path: str | Path, array: np.ndarray) -> Path:
        path = self.path(str(path)) if not Path(path).is_absolute() else Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
        return path

    def save_torch(self, path: Path, obj: Any) -> Path:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
        return path

    # -- reading -------------------------------------------------------------------------------
    def load_npy(self, path: str | Path, mmap: bool = False) -> np.ndarray:
        path = self.path(str(path)) if not Path(path).is_absolute() else Path(path)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise StoreError(f"missing artifact {path}; run the earlier stage first") from None
        except (ValueError, OSError, EOFError) as err:
            raise StoreError(f"corrupt artifact {path} ({err}); delete it and re-run to recompute") from None

    def load_torch(self, path: Path) -> Any:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise StoreError(f"missing model file {path}; run training first") from None
        except Exception as err:  # torch raises many types for a corrupt zip/pickle
            raise StoreError(f"corrupt model file {path} ({err.__class__.__name__}); delete it and re-run") from None

    def load_json(self, rel: str | Path) -> Any:
        path = self.path(str(rel))
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"missing {path}") from None
        except json.JSONDecodeError as err:
            raise StoreError(f"corrupt JSON {path}: {err}") from None

    # -- manifest ------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        path = self.path("manifest.json")
        return self.load_json("manifest.json") if path.exists() else {"stages": {}}

    def mark(self, stage: str, **info: Any) -> None:
        manifest = self.manifest()
        manifest["stages"][stage] = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        self.save_json("manifest.json", manifest)


def _span(model_ids: list[int]) -> str:
    if list(model_ids) != list(range(model_ids[0], model_ids[-1] + 1)):
        raise StoreError(f"a group must hold consecutive model ids, got {model_ids}")
    return f"{model_ids[0]:04d}-{model_ids[-1]:04d}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
