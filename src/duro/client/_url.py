"""Which client a URL makes: a store's (``sqlite:``, ``postgresql:``...) or a server's."""

from __future__ import annotations

__all__ = ["is_remote"]


def is_remote(url: object) -> bool:
    """Whether a client URL names a server (``http://``, ``https://``), not a store."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))
