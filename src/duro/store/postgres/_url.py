"""``postgresql://`` URLs: duro's own options are taken out, the rest goes to libpq."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from duro.errors import InvalidStoreURLError
from duro.store._url import hide_password, redact

__all__ = ["PgOptions", "parse_postgres_url", "redact"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, kw_only=True, slots=True)
class PgOptions:
    """What a ``postgresql://`` URL asks of duro."""

    conninfo: str
    """The URL for libpq, without duro's options."""
    schema: str = "duro"
    """Where duro's tables live (``?schema=``)."""
    migrate: bool = True
    """Apply pending migrations on open (``?migrate=false`` to leave it to
    ``duro db migrate``)."""
    pool_size: int = 8
    """Connections for reads (``?pool_size=``); writes use one more, and NOTIFY one."""
    reconnect_timeout: float = 60.0
    """Seconds a write waits for a lost database to come back before failing
    (``?reconnect_timeout=``)."""
    read_only: bool = False
    """Open for reading only (``?mode=ro``): no migration, no writer, every session
    read-only; for inspection (``duro ls``) with a role that may only read."""


def _flag(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidStoreURLError(f"URL option {name}={value!r}: expected true or false")


def parse_postgres_url(url: str) -> PgOptions:
    """Split ``postgresql://user@host:port/db?schema=duro&migrate=false`` into libpq's URL
    and duro's options (``schema``, ``migrate``, ``pool_size``, ``reconnect_timeout``)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _malformed(url, exc) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidStoreURLError(f"not a PostgreSQL URL: {redact(url)!r}")
    kept: list[tuple[str, str]] = []
    options: dict[str, object] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            if not _SCHEMA.match(value):
                raise InvalidStoreURLError(
                    f"schema name {value!r}: use lowercase letters, digits and _, starting "
                    "with a letter or _ (at most 63)")
            options["schema"] = value
        elif key == "migrate":
            options["migrate"] = _flag(key, value)
        elif key == "mode":
            if value not in ("ro", "rw"):
                raise InvalidStoreURLError(f"URL option mode={value!r}: expected ro or rw")
            options["read_only"] = value == "ro"
        elif key == "pool_size":
            try:
                options["pool_size"] = max(1, int(value))
            except ValueError:
                raise InvalidStoreURLError(f"URL option pool_size={value!r}: expected a "
                                           "number") from None
        elif key == "reconnect_timeout":
            try:
                options["reconnect_timeout"] = max(0.0, float(value))
            except ValueError:
                raise InvalidStoreURLError(f"URL option reconnect_timeout={value!r}: "
                                           "expected seconds") from None
        else:
            kept.append((key, value))
    keys = {k for k, _ in kept}
    if "connect_timeout" not in keys:
        kept.append(("connect_timeout", "10"))  # libpq waits forever by default
    if "application_name" not in keys:
        kept.append(("application_name", "duro"))
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), ""))
    _check_libpq(conninfo, url)
    return PgOptions(conninfo=conninfo, **options)  # type: ignore[arg-type]


def _check_libpq(conninfo: str, url: str) -> None:
    """Let libpq parse the URL now (no connection), so that a malformed one fails where
    the store is made, with a message that names the problem, not at the first connect.

    Raises:
        InvalidStoreURLError: libpq cannot parse it (an unknown option, a bad percent
            escape, a space in the host...) or a port is not a number from 1 to 65535.
    """
    import psycopg

    try:
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise _malformed(url, exc) from None
    for port in str(info.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidStoreURLError(
                f"malformed PostgreSQL URL {redact(url)!r}: port {port!r} is not a number "
                "from 1 to 65535")


def _malformed(url: str, exc: BaseException) -> InvalidStoreURLError:
    reason = hide_password(str(exc).strip(), url)
    return InvalidStoreURLError(f"malformed PostgreSQL URL {redact(url)!r}: {reason}")
