"""API tokens on the routes: ``Authorization: Bearer duro_<id>_<secret>``.

With auth on (``create_app(client, auth=True)``, ``duro serve --auth``, the default off
loopback), every route but the public ones (``/healthz``, ``/readyz``, the OpenAPI
document) needs a token whose scope allows the route's (``read`` < ``write`` <
``admin``), and acts in the token's namespace only: a run of another namespace is not
found (404), as if it did not exist. A route guarded by a webhook signature takes the
signature instead of a token (a provider cannot send one), in the webhook's namespace.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from duro.client import Client
from duro.client._tokens import TokenInfo
from duro.errors import AuthenticationError

__all__ = ["authenticate"]

_BEARER = re.compile(r"[Bb]earer +(\S+)")


async def authenticate(request: Request, client: Client, scope: str) -> TokenInfo:
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
    return await client.tokens.verify(match.group(1), scope=scope)
