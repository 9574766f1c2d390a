"""Jinja2 templates, one way for every service: a package's `templates/` folder, autoescaped.

Escaping is on for every HTML template (and for strings), so a summary, a name or a question
typed by anyone can never inject markup; an undefined name fails at render, never prints blank.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def template_environment(package: str) -> Environment:
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
