"""Where a remote operation is called (:class:`Endpoint`), and the names and keys both
sides derive from an operation id: the callee's run of it, the caller's signal, the
callback's HMAC key."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from duro.errors import InvalidArgumentError

__all__ = [
    "CALLBACK_SECRET_ENV",
    "CALLBACK_SIGNATURE_HEADER",
    "Endpoint",
    "callback_key",
    "operation_workflow_id",
    "sign",
    "signal_name",
]

T = TypeVar("T")

CALLBACK_SIGNATURE_HEADER = "Duro-Signature"
"""The header of a callback's signature: ``sha256=<hex HMAC-SHA256 of the raw body>``."""
CALLBACK_SECRET_ENV = "DURO_CALLBACK_SECRET"
"""The environment variable of a deployment's callback secret (both its workers, which
derive each call's key from it, and its ``duro serve``, which checks callbacks with it)."""
_OPERATION_PREFIX = "duro.op/"
MAX_LONG_POLL = 60.0
"""Seconds a callee's ``duro serve`` holds one long poll at most (its ``MAX_WAIT``)."""


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Another deployment's ``duro serve``, as ``duro.call`` reaches it.

    Define it where the workflow's module can see it (a module constant, its token from
    the environment): the token is used by the worker that makes the calls and is never
    written to the history.

    Args:
        url: The callee's base URL (``http://payments:8233``).
        token: Its API token (scope ``write``), when it requires tokens.
        callback_url: This deployment's own ``duro serve`` base URL, as the callee can
            reach it: the callee posts each outcome there (``POST /v1/callbacks``), signed
            with a key derived from ``callback_secret``. None: results come by polling
            only.
        callback_secret: The secret this deployment's ``duro serve`` checks callbacks
            with (default: the ``DURO_CALLBACK_SECRET`` environment variable).
        poll_interval: The longest wait between two polls of a running operation, in
            seconds (polls start fast and back off up to it), when the callee answers
            them at once (a callee that predates long polls, or ``long_poll=0``).
        request_timeout: Seconds one HTTP request to the callee may take (a long poll:
            this beyond its ``long_poll``).
        long_poll: Seconds one poll of a running operation waits at the callee for it
            to end (``GET .../{operation_id}?wait=``; at most 60, the callee's limit):
            the answer comes as soon as it ends, and a running operation costs the
            calling run's history one ``step_retrying`` event per long poll. 0: short
            polls only.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    callback_url: str | None = None
    callback_secret: str | None = field(default=None, repr=False)
    poll_interval: float = 10.0
    request_timeout: float = 30.0
    long_poll: float = 30.0

    def __post_init__(self) -> None:
        for name in ("url", "callback_url"):
            value = getattr(self, name)
            if value is None and name == "callback_url":
                continue
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise InvalidArgumentError(
                    f"Endpoint {name} must be an http:// or https:// URL, not {value!r}")
            object.__setattr__(self, name, value.rstrip("/"))
        for name in ("poll_interval", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise InvalidArgumentError(
                    f"Endpoint {name} must be a positive number of seconds, not {value!r}")
        if isinstance(self.long_poll, bool) or not isinstance(self.long_poll, (int, float)) \
                or not 0 <= self.long_poll <= MAX_LONG_POLL:
            raise InvalidArgumentError(f"Endpoint long_poll must be a number of seconds from "
                                       f"0 to {MAX_LONG_POLL:g}, not {self.long_poll!r}")
        if self.callback_url is not None and not self.secret():
            raise InvalidArgumentError(
                "an Endpoint with a callback_url needs a callback_secret (or the "
                f"{CALLBACK_SECRET_ENV} environment variable): callbacks are signed")

    def stub(self, protocol: Callable[..., T], *, prefix: str = "",
             timeout: float | timedelta | None = None) -> T:
        """A typed stub of this endpoint's operations, for workflow code.

        Declare the callee's operations as a class of ``async def`` methods (usually a
        ``typing.Protocol``); the stub has its type, and each method call is a
        ``duro.call`` of the operation named ``prefix + method name`` whose result is
        converted to the method's return annotation::

            class Payments(Protocol):
                async def charge(self, order_id: str, amount: int) -> Charge: ...

            PAYMENTS = duro.Endpoint(url=...).stub(Payments, prefix="payments.")
            charge = await PAYMENTS.charge(order_id, 250)  # duro.call(..., "payments.charge")

        Args:
            protocol: The class declaring the operations.
            prefix: Put before each method's name to make the operation's name.
            timeout: Each call's timeout (see :func:`duro.call`).

        Raises:
            InvalidArgumentError: Not a class, a public method that is not ``async def``,
                no operation declared, a bad prefix or timeout.
        """
        from duro.rpc._stub import make_stub

        stub: T = make_stub(self, protocol, prefix, timeout)  # type: ignore[assignment]
        return stub

    def secret(self) -> bytes | None:
        """The callback secret, from the endpoint or the environment."""
        value = self.callback_secret or os.environ.get(CALLBACK_SECRET_ENV)
        return value.encode() if value else None


def operation_workflow_id(operation: str, operation_id: str) -> str:
    """The workflow id of the callee's run of an operation: the same operation id starts
    the same run (the idempotency of the remote start)."""
    return f"{_OPERATION_PREFIX}{operation}/{operation_id}"


def signal_name(operation_id: str, operation: str | None = None) -> str:
    """The signal a callback becomes in the caller's run: one per operation and id (a
    run may use one id for calls of two operations: two operations of the callee)."""
    if operation is None:  # a callee of an earlier version names no operation
        return f"duro.call:{operation_id}"
    return f"duro.call:{operation}:{operation_id}"


def callback_key(secret: bytes, namespace: str, workflow_id: str, operation_id: str,
                 operation: str | None = None) -> bytes:
    """The key one call's callbacks are signed with: derived from the caller's secret and
    where the outcome goes (the run, the operation and its id), so a key (which the callee
    keeps with the operation) signs nothing but that call's outcome."""
    message = f"{namespace}\n{workflow_id}\n{operation_id}".encode()
    if operation is not None:
        message += f"\n{operation}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def sign(key: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
