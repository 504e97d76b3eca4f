"""Words for people: counts with the right plural, and Python warnings turned into one line each
that names what raised it and what to do (never a raw warning with a source path)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

NUMERIC_HINT = ("its scores may be NaN or infinite for some samples; more reference models or more training "
                "epochs usually fix this, and the other attacks are unaffected")


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 query"``, ``"2 queries"``, ``"3 models"``: the count and the word in the right number."""
    if n == 1:
        return f"1 {word}"
    if many is None:
        many = word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else \
            word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{n} {many}"


def warning_line(message: warnings.WarningMessage) -> str:
    """One line for a captured warning: privaudit's own text as it is (it says what to do), a
    numerical warning from numpy or scipy with what it means for the scores."""
    text = " ".join(str(message.message).split())
    if issubclass(message.category, RuntimeWarning):
        return f"numerical problem while scoring ({text}); {NUMERIC_HINT}"
    return text


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Capture every Python warning raised in the block; yields the list that receives one line
    per distinct warning (:func:`warning_line`) when the block ends."""
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:   # the filters in force decide what is shown
        try:
            yield lines
        finally:
            lines.extend(dict.fromkeys(warning_line(w) for w in caught))
