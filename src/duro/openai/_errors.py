"""What a chat call raises, and how the provider's answer maps to a step's retry.

::

    Exception
     ├── duro.RetryAfterError
     │    └── ModelBusyError         429 or 5xx with Retry-After: the next attempt waits
     │                               the delay the provider asked for
     ├── ModelUnavailableError      429 or 5xx without it, a lost connection, a timeout:
     │                               the step's retry policy decides the delay
     ├── duro.NonRetryableError
     │    └── ModelRequestError      another 4xx (a bad request, a wrong key, an unknown
     │                               model): the same request would be refused again
     └── duro.InvalidArgumentError + duro.NonRetryableError
          └── ChatArgumentError      refused by chat() itself; nothing was sent
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from duro.errors import InvalidArgumentError, NonRetryableError, RetryAfterError

__all__ = ["ChatArgumentError", "ModelBusyError", "ModelRequestError",
           "ModelUnavailableError", "retry_after_of"]

# What the provider's SDK retries itself (openai._base_client): the same here, but as
# durable step attempts.
RETRIED_STATUSES = frozenset({408, 409, 429})


class ChatArgumentError(InvalidArgumentError, NonRetryableError):
    """An argument of :func:`duro.openai.chat` was refused before any request was sent.

    Not retried: the same arguments would be refused again.
    """


class ModelBusyError(RetryAfterError):
    """The provider answered 429 or 5xx with a ``Retry-After``: the step's next attempt
    waits that delay (its retry policy still bounds the attempts).

    Attributes:
        status: The HTTP status.
        request_id: The provider's request id, if it gave one.
    """

    def __init__(self, message: str, *, retry_after: float, status: int,
                 request_id: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.request_id = request_id


class ModelUnavailableError(Exception):
    """The provider answered 429 or 5xx without saying when to come back, or could not
    be reached (a lost connection, a timeout): retried by the step's retry policy.

    Attributes:
        status: The HTTP status, or None when no answer came.
        request_id: The provider's request id, if it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class ModelRequestError(NonRetryableError):
    """The provider refused the request (400, 401, 403, 404, 422...): fails the step at
    once, since sending it again would be refused again.

    Attributes:
        status: The HTTP status.
        request_id: The provider's request id, if it gave one.
    """

    def __init__(self, message: str, *, status: int, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The delay a provider asks for, in seconds: ``retry-after-ms`` (OpenAI's own),
    else ``Retry-After`` as seconds or as an HTTP date; None when absent or unreadable.

    Header names are matched case-insensitively (``httpx.Headers`` does; a plain mapping
    is searched by hand).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    value = _number(raw)
    if value is not None:
        return value
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    # `not (...)` refuses NaN too; a negative delay means "now".
    if value is None or not value < float("inf"):
        return None
    return max(0.0, value)
