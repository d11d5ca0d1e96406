"""API tokens on the routes: ``Authorization: Bearer duro_<id>_<secret>``.

With auth on (``create_app(client, auth=True)``, ``duro serve --auth``, the default off
loopback), every route but the public ones (``/healthz``, ``/readyz``, the OpenAPI
document) needs a token whose scope allows the route's (``read`` < ``write`` <
``admin``), and acts in the token's namespace only: a run of another namespace is not
found (404), as if it did not exist. A route guarded by a webhook signature takes the
signature instead of a token (a provider cannot send one), in the webhook's namespace.
"""

from __future__ import annotations

import hashlib
import re
import time

from starlette.requests import Request

from duro.client import Client
from duro.client._tokens import TokenInfo, scope_allows
from duro.errors import AuthenticationError, PermissionDeniedError

__all__ = ["TOKEN_CACHE_SECONDS", "TokenCache", "authenticate"]

_BEARER = re.compile(r"bearer +(\S+)", re.IGNORECASE)  # RFC 9110: any case

TOKEN_CACHE_SECONDS = 1.0
"""How long a server trusts a token it has verified without reading it again: a token
revoked (by any process: ``duro token revoke``) is refused by every server at most this
long after. Expiry is checked at every request all the same."""

_CACHE_SIZE = 1024
"""Tokens remembered at most (a deployment has a few; past this, all are forgotten)."""


class TokenCache:
    """The tokens a server verified in the last :data:`TOKEN_CACHE_SECONDS`.

    Verifying a token reads it from the store and hashes its secret: measured with
    ``bench/bench_http.py --auth``, a third of the event loop's time per start (a SQLite
    read on the loop's thread, which also hands the GIL to the writer thread). A token
    seen again within the bound is taken from here. Only tokens found valid are kept
    (a new token works at once; a refused one is read again each time), under the
    SHA-256 of what was presented, compared as a dictionary key: nothing here tells
    which ids or secrets exist that the store's constant-time check would not.
    """

    def __init__(self, client: Client, seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self._client = client
        self._seconds = seconds
        self._known: dict[bytes, tuple[TokenInfo, float | None, float]] = {}

    async def verify(self, token: str, scope: str) -> TokenInfo:
        """As ``client.tokens.verify(token, scope=scope)``, from memory when verified
        less than the bound ago."""
        key = hashlib.sha256(token.encode()).digest()
        known = self._known.get(key)
        if known is not None and time.monotonic() - known[2] < self._seconds and (
                known[1] is None or known[1] > self._client.clock.now()):
            info = known[0]
            if not scope_allows(info.scope, scope):
                raise PermissionDeniedError(
                    f"this token's scope is {info.scope!r}; this needs {scope!r}")
            return info
        checked = time.monotonic()
        try:
            info = await self._client.tokens.verify(token, scope=scope)
        except PermissionDeniedError:
            raise  # a valid token, below the scope: not worth keeping for that
        except AuthenticationError:
            self._known.pop(key, None)
            raise
        if len(self._known) >= _CACHE_SIZE:
            self._known.clear()
        expires = None if info.expires_at is None else info.expires_at.timestamp()
        self._known[key] = (info, expires, checked)
        return info


async def authenticate(request: Request, tokens: TokenCache, scope: str) -> TokenInfo:
    """The token of the request, if it is live and its scope allows ``scope``.

    Raises:
        AuthenticationError: No ``Authorization: Bearer`` header, or a token that is not
            valid (unknown, revoked, expired: one answer for all).
        PermissionDeniedError: A valid token whose scope is below ``scope``.
    """
    header = request.headers.get("authorization")
    if header is None:
        raise AuthenticationError("an API token is required: send 'Authorization: Bearer "
                                  "<token>' (make one with `duro token create`)")
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise AuthenticationError("invalid API token")
    return await tokens.verify(match.group(1), scope)
