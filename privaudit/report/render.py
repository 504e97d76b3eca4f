"""The Jinja2 environment of the report: templates in ``privaudit/report/templates`` (package data),
autoescaping on, undefined names are errors. Everything the report shows as HTML is rendered here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("privaudit.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(template: str, **context: Any) -> str:
    """The template ``template`` rendered with ``context``."""
    return environment().get_template(template).render(**context)


def macro(name: str) -> Any:
    """A macro of ``blocks.html.j2`` (table, figure, note, ...), callable from Python; returns Markup."""
    return getattr(environment().get_template("blocks.html.j2").module, name)
