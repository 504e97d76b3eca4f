"""This checkout and, for a before/after comparison, an earlier commit checked out beside it (a
detached git worktree, removed afterwards): the trees a benchmark times side by side, each run in
fresh processes with the tree on ``PYTHONPATH``."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


def resolve(rev: str) -> str:
    """The full commit id of ``rev``."""
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True,
                          text=True).stdout.strip()


@contextmanager
def trees(before: str | None, scratch: Path) -> Iterator[dict[str, Path]]:
    """``{"before": worktree of before, "after": this checkout}`` (only ``after`` without ``before``)."""
    if not before:
        yield {"after": REPO}
        return
    path = scratch / f"rev_{resolve(before)[:12]}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), before], check=True,
                   capture_output=True)
    try:
        yield {"before": path, "after": REPO}
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True)
