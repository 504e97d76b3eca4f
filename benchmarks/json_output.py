"""How every benchmark hands over its result: JSON on stdout and, if asked, in a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(doc: dict[str, Any], path: str | Path | None = None, indent: int = 2) -> None:
    text = json.dumps(doc, indent=indent)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
