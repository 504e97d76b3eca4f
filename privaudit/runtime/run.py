"""The run directory, owned by one :class:`Run` object.

Every artifact path is resolved here and nowhere else (:class:`Layout`); every write is atomic
(temp file + rename) and records the artifact's SHA-256 in ``manifest.json``; every read checks
that hash, so a tampered or truncated artifact is refused with one line naming it. One process at
a time may write (``run.lock``, an OS file lock that dies with its holder, so a lock left by a
killed process is recognised as stale); the run's tasks (threads, or Ray workers) write only while
the process that started them still holds that lock.

```
<run>/config.yaml                     the resolved config that produced the run
<run>/manifest.json                   stages finished, and a hash (+ metadata) per artifact
<run>/run.lock                        who writes now (pid, host, command, since)
<run>/keep.npy                        bool[M, n] membership design
<run>/data/{x,y,kind,group,poison_targets}.npy, data/info.json   the pool
<run>/models/models_AAAA-BBBB[_eEEEE].pt                        one file per group of models
<run>/signals/epoch_EEEE/{logits,curvature,target_logits,target_curvature}.npy   (+ per-group parts)
<run>/results/epoch_EEEE/{metrics,slices}.json, scores_<attack>.npy, *.png
<run>/results/metrics.json            the final epoch's metrics
<run>/results/target/                 the audited target model's metrics and scores
<run>/results/<study>/                each study's artifacts
<run>/report/index.html
<run>/inputs/{data.npz,model.safetensors,members.npy}   what privaudit.audit() was given
```
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from privaudit.config import check_name
from privaudit.errors import PrivauditError

LOCK_TOKEN_ENV = "PRIVAUDIT_LOCK_TOKEN"


class RunError(PrivauditError):
    """A run directory is missing, in use, inconsistent, or an artifact is corrupt or tampered."""


def _span(model_ids: list[int]) -> str:
    ids = list(model_ids)
    if ids != list(range(ids[0], ids[-1] + 1)):
        raise RunError(f"a group must hold consecutive model ids, got {ids}")
    return f"{ids[0]:04d}-{ids[-1]:04d}"


class Layout:
    """Every artifact's path, relative to the run directory (the only place that names them)."""

    config = "config.yaml"
    manifest = "manifest.json"
    lock = "run.lock"
    keep = "keep.npy"
    pool_info = "data/info.json"
    dp_claim = "dp.json"
    metrics = "results/metrics.json"
    audit = "results/audit.json"
    target_members = "target/members.npy"
    target_info = "target/info.json"
    target_metrics = "results/target/metrics.json"
    report = "report/index.html"

    @staticmethod
    def pool(part: str) -> str:
        """``x``, ``y``, ``kind``, ``group`` or ``poison_targets``."""
        return f"data/{check_name(part, 'pool array')}.npy"

    @staticmethod
    def group_models(model_ids: list[int], epoch: int | None = None) -> str:
        suffix = "" if epoch is None else f"_e{epoch:04d}"
        return f"models/models_{_span(model_ids)}{suffix}.pt"

    @staticmethod
    def signal(name: str, epoch: int, model_ids: list[int] | None = None) -> str:
        stem = name if model_ids is None else f"{name}_models_{_span(model_ids)}"
        return f"signals/epoch_{epoch:04d}/{check_name(stem, 'signal')}.npy"

    @staticmethod
    def signal_settings(name: str, epoch: int) -> str:
        return f"signals/epoch_{epoch:04d}/{check_name(name, 'signal')}.json"

    @staticmethod
    def results(epoch: int, file: str = "") -> str:
        return f"results/epoch_{epoch:04d}" + (f"/{check_name(file, 'result file')}" if file else "")

    @staticmethod
    def epoch_metrics(epoch: int) -> str:
        return Layout.results(epoch, "metrics.json")

    @staticmethod
    def epoch_slices(epoch: int) -> str:
        return Layout.results(epoch, "slices.json")

    @staticmethod
    def epoch_audit(epoch: int) -> str:
        return Layout.results(epoch, "audit.json")

    @staticmethod
    def scores(attack: str, epoch: int) -> str:
        return f"results/epoch_{epoch:04d}/scores_{check_name(attack, 'attack label')}.npy"

    @staticmethod
    def target_scores(attack: str) -> str:
        return f"results/target/scores_{check_name(attack, 'attack label')}.npy"

    @staticmethod
    def target_file(file: str) -> str:
        return f"results/target/{check_name(file, 'result file')}"

    @staticmethod
    def study(study: str, file: str = "") -> str:
        base = f"results/{check_name(study, 'study')}"
        return base + (f"/{check_name(file, 'result file')}" if file else "")

    @staticmethod
    def epoch_report(epoch: int) -> str:
        return f"report/epoch_{epoch:04d}.html"

    @staticmethod
    def report_pdf(epoch: int | None = None) -> str:
        """The report printed to PDF (``privaudit report --pdf``): the final one, or a checkpoint's."""
        return "report/index.pdf" if epoch is None else f"report/epoch_{epoch:04d}.pdf"

    @staticmethod
    def inputs(file: str) -> str:
        """What :func:`privaudit.audit` was given: the arrays, the model and its members mask."""
        return f"inputs/{check_name(file, 'input file')}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_json"):
        return obj.to_json()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class Run:
    """One run directory. ``Run(path)`` only names it; :meth:`writer` takes the single-writer lock
    for a block of work; reads verify every artifact against the manifest."""

    layout = Layout

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self._lock_fd: int | None = None
        self._token: str | None = os.environ.get(LOCK_TOKEN_ENV)
        self._signals: dict[tuple, np.ndarray] = {}
        self._verified_ok: dict[str, tuple[int, int, str]] = {}   # rel -> (mtime, size, sha) checked

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Absolute path of an artifact named by :class:`Layout`; never outside the run directory."""
        path = (self.root / rel).resolve()
        if self.root != path and self.root not in path.parents:
            raise RunError(f"artifact {rel!r} would lie outside the run directory {self.root}")
        return path

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    @classmethod
    def open(cls, root: str | Path) -> "Run":
        """An existing run directory (any working directory: paths are resolved once, here)."""
        run = cls(root)
        if not run.path(Layout.config).is_file():
            raise RunError(f"{run.root} is not a privaudit run directory (no {Layout.config}); "
                           f"create one with `privaudit run CONFIG.yaml`")
        return run

    def config(self):
        """The run's stored, validated config (its hash checked)."""
        import yaml

        from privaudit.config import parse_config

        text = self.read_text(Layout.config)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise RunError(f"{self.path(Layout.config)} is not valid YAML ({err.__class__.__name__}); "
                           f"restore it or start a new run") from None
        if not isinstance(data, dict):
            raise RunError(f"{self.path(Layout.config)} must be a mapping of sections")
        return parse_config(data, str(self.path(Layout.config)))

    # -- lock ------------------------------------------------------------------------------------
    @contextmanager
    def writer(self, command: str = "") -> Iterator["Run"]:
        """Hold the single-writer lock for the block (re-entrant within this object)."""
        if self._lock_fd is not None:
            yield self
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(Layout.lock)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(f"{self.root} is in use by {self._holder()}; wait for it to finish or stop it") from None
        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        info = {"pid": os.getpid(), "host": socket.gethostname(), "token": token,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": command or " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._lock_fd, self._token = fd, token
        old = os.environ.get(LOCK_TOKEN_ENV)
        os.environ[LOCK_TOKEN_ENV] = token   # read by the run's tasks
        try:
            yield self
        finally:
            if old is None:
                os.environ.pop(LOCK_TOKEN_ENV, None)
            else:
                os.environ[LOCK_TOKEN_ENV] = old
            self._lock_fd, self._token = None, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _holder(self) -> str:
        try:
            info = json.loads(self.path(Layout.lock).read_text())
            return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
        except (OSError, ValueError, KeyError):
            return "another process"

    def _check_writer(self) -> None:
        """This process holds the lock, or is a worker whose parent holds it (same token, still
        locked). A worker whose parent died, or whose run was restarted, may not write."""
        if self._lock_fd is not None:
            return
        if self._token is None:
            raise RunError(f"writing to {self.root} needs its lock (use `with run.writer(): ...`)")
        path = self.path(Layout.lock)
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("token") != self._token:
            raise RunError(f"{self.root} is now written by {self._holder()}; this worker's run ended")
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return   # still held: by the parent that handed us the token
        finally:
            os.close(fd)   # closing releases a lock we took just now
        raise RunError(f"the process that started this work on {self.root} has ended; not writing")

    # -- manifest --------------------------------------------------------------------------------
    @contextmanager
    def _manifest_update(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write of the manifest under a short file lock (workers write concurrently)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            manifest = self.manifest()
            yield manifest
            self._write_atomic(Layout.manifest, (json.dumps(manifest, indent=1) + "\n").encode())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def manifest(self) -> dict[str, Any]:
        path = self.path(Layout.manifest)
        if not path.exists():
            return {"stages": {}, "artifacts": {}}
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            raise RunError(f"{path} is corrupt; the run's record of its artifacts is lost: start a new run") from None
        doc.setdefault("stages", {})
        doc.setdefault("artifacts", {})
        return doc

    def mark(self, stage: str, **info: Any) -> None:
        """Record that ``stage`` finished (with what it reports)."""
        self._check_writer()
        with self._manifest_update() as manifest:
            manifest["stages"][stage] = {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         **json.loads(json.dumps(info, default=_jsonable))}

    def meta(self, rel: str) -> dict[str, Any] | None:
        """The metadata recorded with an artifact when it was written (None: not recorded)."""
        entry = self.manifest()["artifacts"].get(rel)
        return None if entry is None else entry.get("meta", {})

    # -- writing ---------------------------------------------------------------------------------
    def _write_atomic(self, rel: str, data: bytes | None = None, writer=None) -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                if data is not None:
                    f.write(data)
                else:
                    writer(f)
            os.replace(tmp, path)
        except OSError as err:
            raise RunError(f"could not write {path} ({err.strerror or err}); free disk space and rerun: "
                           f"finished work is kept") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def _save(self, rel: str, meta: dict[str, Any] | None, data: bytes | None = None, writer=None) -> Path:
        self._check_writer()
        path = self._write_atomic(rel, data, writer)
        entry = {"sha256": _sha256(path), "bytes": path.stat().st_size}
        if meta:
            entry["meta"] = json.loads(json.dumps(meta, default=_jsonable))
        with self._manifest_update() as manifest:
            manifest["artifacts"][rel] = entry
        return path

    def save_bytes(self, rel: str, data: bytes, meta: dict[str, Any] | None = None) -> Path:
        return self._save(rel, meta, data=data)

    def save_text(self, rel: str, text: str, meta: dict[str, Any] | None = None) -> Path:
        return self._save(rel, meta, data=text.encode())

    def save_json(self, rel: str, obj: Any, meta: dict[str, Any] | None = None) -> Path:
        return self.save_text(rel, json.dumps(obj, indent=2, default=_jsonable) + "\n", meta)

    def save_npy(self, rel: str, array: np.ndarray, meta: dict[str, Any] | None = None) -> Path:
        return self._save(rel, meta, writer=lambda f: np.save(f, np.asarray(array), allow_pickle=False))

    def save_torch(self, rel: str, obj: Any, meta: dict[str, Any] | None = None) -> Path:
        import torch

        return self._save(rel, meta, writer=lambda f: torch.save(obj, f))

    def save_figure(self, rel: str, fig) -> Path:
        """A matplotlib figure as PNG (closed afterwards)."""
        import matplotlib.pyplot as plt

        try:
            return self._save(rel, None, writer=lambda f: fig.savefig(f, format="png", dpi=110))
        finally:
            plt.close(fig)

    def discard(self, rel: str) -> None:
        """Delete an artifact and its manifest entry (stale work that must be recomputed)."""
        self._check_writer()
        self.path(rel).unlink(missing_ok=True)
        with self._manifest_update() as manifest:
            manifest["artifacts"].pop(rel, None)

    # -- reading ---------------------------------------------------------------------------------
    def has(self, rel: str) -> bool:
        """The artifact exists and was recorded by the run (so it is complete)."""
        return self.exists(rel) and rel in self.manifest()["artifacts"]

    def _verified(self, rel: str) -> Path:
        path = self.path(rel)
        entry = self.manifest()["artifacts"].get(rel)
        if not path.exists():
            raise RunError(f"missing artifact {path}; run the stage that writes it (e.g. `privaudit run`) again")
        if entry is None:
            raise RunError(f"{path} was not written by this run (not in its manifest); delete it and rerun")
        stat = path.stat()
        if self._verified_ok.get(rel) == (stat.st_mtime_ns, stat.st_size, entry["sha256"]):
            return path
        if stat.st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
            raise RunError(f"{path} was changed or truncated after the run wrote it (hash mismatch); "
                           f"delete it and rerun to recompute it, or start a new run")
        self._verified_ok[rel] = (stat.st_mtime_ns, stat.st_size, entry["sha256"])
        return path

    def read_bytes(self, rel: str) -> bytes:
        return self._verified(rel).read_bytes()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def load_json(self, rel: str) -> Any:
        try:
            return json.loads(self.read_text(rel))
        except ValueError as err:
            raise RunError(f"{self.path(rel)} is not valid JSON ({err})") from None

    def load_npy(self, rel: str, mmap: bool = False) -> np.ndarray:
        path = self._verified(rel)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise RunError(f"corrupt artifact {path} ({err}); delete it and rerun") from None

    def load_torch(self, rel: str) -> Any:
        import torch

        path = self._verified(rel)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a corrupt file
            raise RunError(f"corrupt model file {path} ({err.__class__.__name__}); delete it and rerun") from None

    def verify(self, skip: tuple[str, ...] = ("models/",)) -> None:
        """Check every recorded artifact (except those under ``skip``) before work starts."""
        for rel in self.manifest()["artifacts"]:
            if not rel.startswith(skip) and self.exists(rel):
                self._verified(rel)

    # -- typed access ----------------------------------------------------------------------------
    def pool_info(self) -> dict[str, Any]:
        return self.load_json(Layout.pool_info)

    def n_audit(self) -> int:
        """Audited pool rows (the columns of ``keep``); training-only rows (poisons) follow them."""
        return int(self.pool_info()["n"])

    def pool(self, audited_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and labels of the pool (by default only the audited rows)."""
        n = self.n_audit() if audited_only else None
        x = np.array(self.load_npy(Layout.pool("x"), mmap=True)[:n])
        y = np.array(self.load_npy(Layout.pool("y"))[:n])
        return x, y

    def labels(self) -> np.ndarray:
        return np.asarray(self.load_npy(Layout.pool("y")))[: self.n_audit()]

    def optional_pool(self, part: str) -> np.ndarray | None:
        """``kind``, ``group`` or ``poison_targets`` when the pool has it."""
        rel = Layout.pool(part)
        return np.asarray(self.load_npy(rel)) if self.exists(rel) else None

    def keep(self) -> np.ndarray:
        return self.load_npy(Layout.keep)

    def training_keep(self) -> np.ndarray:
        """``keep`` over every pool row: the design, then always-IN training-only rows."""
        keep = self.keep()
        extra = len(self.load_npy(Layout.pool("y"), mmap=True)) - keep.shape[1]
        return np.hstack([keep, np.ones((keep.shape[0], extra), dtype=bool)]) if extra else keep

    @staticmethod
    def signal_source(name: str, epoch: int) -> str:
        """The stored array a signal comes from: itself when stored by its own stage (curvature,
        label-only noise distance), else the logits it is derived from."""
        from privaudit.signals.transforms import STORED_SIGNALS

        return Layout.signal(name if name in STORED_SIGNALS else "logits", epoch)

    def signal(self, name: str, epoch: int) -> np.ndarray:
        """A named signal ``[M, n, A(, C)]``: a stored one (curvature, label_noise_distance), or
        derived from the stored logits (cached on this object for as long as the stored file is
        unchanged)."""
        from privaudit.signals.transforms import STORED_SIGNALS, derive

        source = self.signal_source(name, epoch)
        entry = self.manifest()["artifacts"].get(source)
        key = (name, epoch, entry and entry["sha256"])
        if key not in self._signals:
            if name in STORED_SIGNALS:
                self._signals[key] = np.asarray(self.load_npy(source))
            else:
                self._signals[key] = derive(name, np.asarray(self.load_npy(source, mmap=True)), self.labels())
        return self._signals[key]

    def saved_scores(self, attack: str, epoch: int, n_targets: int, fingerprint: dict[str, Any]) -> np.ndarray | None:
        """The one rule for reusing saved scores: scores of targets ``0..n_targets-1`` saved for the
        same attack fingerprint (name, signal, params, signal file, scoring protocol) and at least
        that many targets."""
        rel = Layout.scores(attack, epoch)
        meta = self.meta(rel) if self.exists(rel) else None
        if meta is None or meta.get("fingerprint") != json.loads(json.dumps(fingerprint, default=_jsonable)):
            return None
        if meta.get("n_targets", 0) < n_targets:
            return None
        return np.asarray(self.load_npy(rel)[:n_targets], dtype=np.float64)

    def save_scores(self, attack: str, epoch: int, scores: np.ndarray, fingerprint: dict[str, Any]) -> Path:
        """Scores ``float64[T, n]`` of targets ``0..T-1``, exactly as computed."""
        return self.save_npy(Layout.scores(attack, epoch), np.asarray(scores, dtype=np.float64),
                             meta={"fingerprint": fingerprint, "n_targets": int(scores.shape[0])})

    def scores_fingerprint(self, attack, epoch: int) -> dict[str, Any]:
        """What saved scores of ``attack`` at ``epoch`` must have been computed from: the attack
        (name, signal, params), the signal file's hash and the scoring protocol's version."""
        from privaudit.evaluation.protocol import PROTOCOL

        entry = self.manifest()["artifacts"].get(self.signal_source(attack.signal_name, epoch))
        return attack.fingerprint() | {"source": entry and entry["sha256"], "protocol": PROTOCOL}

    def scores(self, attack, epoch: int, n_targets: int, save: bool = False) -> np.ndarray:
        """Leave-one-model-out scores ``float64[T, n]`` of targets ``0..T-1`` for ``attack`` (an
        :class:`~privaudit.config.AttackConfig`): the saved ones when they fit (same attack, same
        parameters, same signal file, same scoring protocol, at least T targets), else computed
        (and saved with ``save``, which only the evaluation does, so saved scores always match
        ``metrics.json``). A NaN score
        is a row not evaluated for that target (the public set QMIA fits on:
        :mod:`privaudit.evaluation.protocol`)."""
        from privaudit.attacks.registry import get_attack
        from privaudit.evaluation.protocol import score_targets

        fingerprint = self.scores_fingerprint(attack, epoch)
        saved = self.saved_scores(attack.key, epoch, n_targets, fingerprint)
        if saved is not None:
            return saved
        spec = get_attack(attack.name)
        context = {"features": self.pool()[0] if spec.needs_features else None, "public_seed": self.config().seed}
        scores = score_targets(spec, self.signal(attack.signal_name, epoch), self.keep(), self.labels(),
                               list(range(n_targets)), context=context, **dict(attack.params))
        if save:
            self.save_scores(attack.key, epoch, scores, fingerprint)
        return scores

    def stage_done(self, stage: str) -> dict[str, Any] | None:
        return self.manifest()["stages"].get(stage)
