"""Store backends, found by the scheme of a URL.

A backend is a :class:`StoreBackend` declared as a Python entry point in the group
``duro.stores``, so a new one (a package of its own) edits nothing in duro::

    [project.entry-points."duro.stores"]
    mysql = "duro_mysql:backend"

duro's own (``sqlite``, ``postgresql``) are declared the same way in its
``pyproject.toml``; when the package metadata is missing (running from a source tree),
they are found anyway.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from duro.errors import InvalidStoreURLError

if TYPE_CHECKING:
    from duro.store._protocol import Store

__all__ = ["GROUP", "StoreBackend", "backend_for", "backends", "open_store"]

log = logging.getLogger("duro.store")

GROUP = "duro.stores"
"""The entry-point group of store backends."""

_BUILTIN = {"sqlite": "duro.store.sqlite:backend",
            "postgresql": "duro.store.postgres:backend"}
"""duro's own backends, as ``pyproject.toml`` declares them (used when its metadata is
missing)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreBackend:
    """A store implementation and the URL schemes it serves.

    Attributes:
        name: Its name (the entry point's).
        schemes: URL schemes it opens (``postgresql``, ``postgres``).
        example: A URL shown when a URL is not understood (``sqlite:///PATH``).
        open: Makes a store for a URL (not yet opened: no connection made), with the
            options a caller passes (``Engine(url, **options)``).
        migrate: For ``duro db migrate``: applies pending schema migrations to the
            database at a URL and says what it did, in a line.
        schema: For ``duro db schema``: the database's schema as SQL, or None when the
            backend cannot print it.
        missing: For the CLI's read-only commands: why no database exists at a URL, or
            None when one may (they never create one).
    """

    name: str
    schemes: tuple[str, ...]
    example: str
    open: Callable[..., Store]
    migrate: Callable[[str], Awaitable[str]]
    schema: Callable[[str], Awaitable[str | None]]
    missing: Callable[[str], str | None] = lambda url: None


def _scheme(url: str) -> str:
    """A URL's scheme; a bare path is a SQLite file."""
    return url.split(":", 1)[0].lower() if "://" in url else "sqlite"


def _load(name: str, target: Callable[[], Any]) -> StoreBackend | None:
    try:
        backend = target()
    except Exception as exc:  # a broken third-party package must not break duro
        log.warning("store backend %r could not be loaded: %s", name, exc)
        return None
    if not isinstance(backend, StoreBackend):
        log.warning("store backend %r is not a StoreBackend: %r", name, backend)
        return None
    return backend


def _builtin(spec: str) -> Callable[[], Any]:
    module, attr = spec.split(":")
    return lambda: getattr(importlib.import_module(module), attr)


@cache
def backends() -> dict[str, StoreBackend]:
    """Every backend by URL scheme: the entry points of :data:`GROUP`, and duro's own."""
    found = {ep.name: ep.load for ep in entry_points(group=GROUP)}
    for name, spec in _BUILTIN.items():
        found.setdefault(name, _builtin(spec))
    out: dict[str, StoreBackend] = {}
    for name, load in sorted(found.items()):
        backend = _load(name, load)
        if backend is not None:
            for scheme in backend.schemes:
                out.setdefault(scheme, backend)
    return out


def backend_for(url: str) -> StoreBackend:
    """The backend for a URL's scheme.

    Raises:
        InvalidStoreURLError: No backend serves the scheme (the message names those
            that exist, never the URL's password).
    """
    known = backends()
    backend = known.get(_scheme(url))
    if backend is None:
        from duro.store._url import redact

        examples = " or ".join(dict.fromkeys(b.example for b in known.values()))
        raise InvalidStoreURLError(
            f"unsupported store URL {redact(url)!r}: the known schemes are "
            f"{', '.join(sorted(known))} (use {examples})")
    return backend


def open_store(url: str, **options: object) -> Store:
    """Make a store for a URL (``sqlite:///path`` or a bare path,
    ``postgresql://user@host:port/db?schema=duro``, or any scheme a backend registers);
    it connects when opened.

    Raises:
        InvalidStoreURLError: A malformed URL, an unknown scheme or option (the message
            never shows the URL's password).
        StoreError: The backend needs a package that is not installed (the
            ``postgres`` extra).
    """
    return backend_for(url).open(url, **options)
