"""Webhooks: HMAC signatures of the raw request body, per route, and what a delivery
carries (its delivery id, and a provider's own JSON as the signal's payload).

A provider that cannot send an API token (GitHub, Stripe, Shopify...) signs each
delivery with a secret it shares with the receiver. :class:`WebhookAuth` says how one
provider signs; ``create_app(client, webhooks={route: auth})`` makes that route refuse
any request whose signature does not match (401 ``invalid_signature``), before it reads
the body as JSON, so nothing is stored. The signature is the hex HMAC-SHA256 of the raw
body (``X-Hub-Signature-256: sha256=<hex>``, GitHub's form), or with a timestamp header,
of ``"<timestamp>." + body`` (Stripe's signed payload), refused outside a tolerance
window so that a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from duro._checks import DEFAULT_NAMESPACE, check_id, check_namespace
from duro.errors import InvalidArgumentError, InvalidSignatureError

__all__ = [
    "SIGNAL_ID_HEADER",
    "WEBHOOK_ROUTES",
    "InvalidSignatureError",
    "WebhookAuth",
    "check_webhooks",
    "delivery",
    "verify",
]

WEBHOOK_ROUTES: Mapping[str, str] = {
    "start": "/v1/runs",
    "signal-with-start": "/v1/signal-with-start",
    "signal": "/v1/runs/{workflow_id}/signals/{name}",
}
"""The routes a :class:`WebhookAuth` may guard, by the name ``webhooks`` and ``duro serve
--webhook-secret`` give them."""

SIGNAL_ID_HEADER = "Duro-Signal-Id"
"""The request header that carries a signal's delivery id (else the body's
``signal_id``)."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110)
_MAX_SIGNATURES = 8
"""Signatures one header may carry (a provider rotating secrets sends two or three)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAuth:
    """How a webhook provider signs its deliveries (see the module docstring).

    Args:
        secrets: The shared secret(s); several while one is rotated out (a request
            signed with any of them passes). Never logged nor shown in a repr.
        header: The request header with the signature(s): ``<prefix><hex>``, several
            separated by commas or spaces.
        prefix: What precedes the hex digest (``""`` for a bare digest).
        timestamp_header: A header with the delivery's time (Unix seconds): it is then
            signed with the body (``"<timestamp>." + body``) and must be within
            ``tolerance`` seconds of this server's clock.
        tolerance: Seconds a timestamp may be off, either way.
        id_header: A header with the provider's delivery id (``X-GitHub-Delivery``),
            taken as the signal id when the request names none.
        namespace: The namespace its deliveries act in when the server requires API
            tokens (the signature stands for a token there).
    """

    secrets: tuple[bytes, ...] = dataclasses.field(repr=False)
    header: str = "X-Signature"
    prefix: str = "sha256="
    timestamp_header: str | None = None
    tolerance: float = 300.0
    id_header: str | None = None
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        if isinstance(self.secrets, bytes | str) or not self.secrets:
            raise InvalidArgumentError("secrets must be a non-empty tuple of bytes")
        for secret in self.secrets:
            if not isinstance(secret, bytes) or not secret:
                raise InvalidArgumentError("each webhook secret must be non-empty bytes")
        for name in (self.header, self.timestamp_header, self.id_header):
            if name is not None and (not isinstance(name, str) or not _TOKEN.fullmatch(name)):
                raise InvalidArgumentError(f"not an HTTP header name: {name!r}")
        if not isinstance(self.prefix, str) or not self.prefix.isprintable():
            raise InvalidArgumentError(f"prefix must be printable text, not {self.prefix!r}")
        if (isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int | float)
                or not math.isfinite(self.tolerance) or self.tolerance <= 0):
            raise InvalidArgumentError(f"tolerance must be a positive number of seconds, "
                                       f"not {self.tolerance!r}")


def check_webhooks(webhooks: Mapping[str, WebhookAuth] | None) -> dict[str, WebhookAuth]:
    """``create_app``'s ``webhooks`` by route path (a route named as in :data:`WEBHOOK_ROUTES`).

    Raises:
        InvalidArgumentError: An unknown route, or a value that is not a WebhookAuth.
    """
    out: dict[str, WebhookAuth] = {}
    for name, auth in (webhooks or {}).items():
        if name not in WEBHOOK_ROUTES:
            raise InvalidArgumentError(f"no webhook route named {name!r}; the routes are "
                                       f"{', '.join(WEBHOOK_ROUTES)}")
        if not isinstance(auth, WebhookAuth):
            raise InvalidArgumentError(f"webhooks[{name!r}] must be a WebhookAuth, not "
                                       f"{type(auth).__name__}")
        out[WEBHOOK_ROUTES[name]] = auth
    return out


def verify(auth: WebhookAuth, body: bytes, headers: Mapping[str, str], *,
           now: Callable[[], float] = time.time) -> None:
    """Check a request's signature (and timestamp) against ``auth``.

    Raises:
        InvalidSignatureError: Missing, malformed, wrong, or too old / too new.
    """
    signed = body
    if auth.timestamp_header is not None:
        raw = headers.get(auth.timestamp_header)
        if raw is None:
            raise InvalidSignatureError(f"the {auth.timestamp_header} header is missing")
        text = raw.strip()
        try:
            # Digits, and not more than a clock reads (float(10**400) overflows).
            stamp = int(text) if len(text) <= 20 and text.lstrip("-").isdigit() else None
        except ValueError:
            stamp = None
        if stamp is None:
            raise InvalidSignatureError(f"the {auth.timestamp_header} header is not a "
                                        "number of seconds")
        if abs(now() - stamp) > auth.tolerance:
            raise InvalidSignatureError(f"the {auth.timestamp_header} timestamp is more than "
                                        f"{auth.tolerance:g}s away from this server's clock")
        signed = f"{stamp}.".encode() + body
    given = _signatures(auth, headers.get(auth.header))
    expected = [hmac.new(secret, signed, hashlib.sha256).digest() for secret in auth.secrets]
    # Every pair is compared, in constant time each: how long it takes tells nothing of
    # which part of a guess was right.
    matched = False
    for candidate in given:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise InvalidSignatureError(f"the {auth.header} signature does not match")


def _signatures(auth: WebhookAuth, raw: str | None) -> list[bytes]:
    if raw is None:
        raise InvalidSignatureError(f"the {auth.header} header is missing")
    parts = [p for p in re.split(r"[,\s]+", raw) if p][:_MAX_SIGNATURES]
    out = []
    for part in parts:
        if not part.startswith(auth.prefix):
            continue  # another scheme's signature (v0=..., t=...): not ours to read
        try:
            out.append(bytes.fromhex(part[len(auth.prefix):]))
        except ValueError:
            continue
    if not out:
        raise InvalidSignatureError(f"the {auth.header} header has no {auth.prefix}<hex> "
                                    "signature")
    return out


def delivery(body: Any, query: Mapping[str, str], headers: Mapping[str, str],
             auth: WebhookAuth | None) -> tuple[Mapping[str, Any], Any, str | None]:
    """A signal route's request as (its fields, the signal's payload, its delivery id).

    Fields come from the body (``{"payload", "signal_id", ...}``); with ``?payload=body``
    from the query string instead, the whole body being the payload (a provider's own
    JSON, which it cannot shape). The delivery id is the ``signal_id`` field, else the
    ``Duro-Signal-Id`` header, else ``auth.id_header``'s; None without any.

    Raises:
        InvalidArgumentError: ``?payload=`` is not ``body``, or the id is not a usable
            id (empty, control characters, too long).
    """
    mode = query.get("payload")
    if mode is None:
        fields: Mapping[str, Any] = body
        payload = body.get("payload")
    elif mode == "body":
        fields, payload = query, body
    else:
        raise InvalidArgumentError(f"?payload= takes only 'body', not {mode!r}")
    signal_id = fields.get("signal_id")
    if signal_id is None:
        signal_id = headers.get(SIGNAL_ID_HEADER)
    if signal_id is None and auth is not None and auth.id_header is not None:
        signal_id = headers.get(auth.id_header)
    return fields, payload, None if signal_id is None else check_id(signal_id, "signal id")

