"""Store URLs in messages: the password is never shown.

A URL reaches messages, logs and terminals (``duro worker`` prints the store it serves,
errors name the database they could not open), so every place that shows one goes
through :func:`redact`, which works on any text: a malformed URL must not make the error
about it fail, nor echo its password.
"""

from __future__ import annotations

import re

__all__ = ["hide_password", "redact"]

_PASSWORD_OPTION = re.compile(r"(?i)(\b(?:ssl)?password\s*=\s*)('[^']*'|[^\s&#]*)")
"""``password=...`` (and ``sslpassword``) in a query string or a libpq key=value string."""


def _parts(url: str) -> tuple[str, str, str, str] | None:
    """(scheme, user info, hosts, the rest) of a URL with user info, else None."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")  # a password may hold a raw '@'
    if not at:
        return None
    return scheme, userinfo, hosts, rest[end:]


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``: ``postgresql://user:***@host/db``.

    Also hides ``?password=...`` query options. Text that is no URL at all is returned
    with only such options hidden.
    """
    parts = _parts(url)
    if parts is not None and ":" in parts[1]:
        scheme, userinfo, hosts, tail = parts
        url = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}{tail}"
    return _PASSWORD_OPTION.sub(r"\1***", url)


def hide_password(text: str, url: str) -> str:
    """``text`` (a message about ``url``, from a parser that may quote all of it or a
    piece) without any password the URL holds."""
    parts = _parts(url)
    secrets = [parts[1].partition(":")[2] if parts else ""]
    secrets += [m.group(2).strip("'") for m in _PASSWORD_OPTION.finditer(url)]
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return _PASSWORD_OPTION.sub(r"\1***", text)
