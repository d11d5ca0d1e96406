"""Loads the named queries and migrations that live beside this module as .sql files."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["migrations", "queries"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    """Named queries from ``queries.sql`` (comments dropped, no trailing semicolon)."""
    text = resources.files(__package__).joinpath("queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip().rstrip(";")
    return out


@cache
def migrations() -> list[tuple[int, str, str]]:
    """Numbered migrations as (version, name, sql), in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort()
    for i, (version, _, _) in enumerate(found, start=1):
        if version != i:
            raise RuntimeError(f"migration numbers must be dense from 1; found {version} at {i}")
    return found
