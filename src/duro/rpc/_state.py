"""An operation's state as its caller reads it (:class:`OperationState`), and the check a
caller outside any workflow makes of a callback it receives (:func:`verify_callback`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from duro.errors import ErrorInfo, InvalidSignatureError
from duro.rpc._endpoint import callback_key, sign

__all__ = ["OperationState", "check_callback", "verify_callback"]


@dataclass(frozen=True, kw_only=True)
class OperationState:
    """An exposed operation's state at its callee: ``running``, or how it ended.

    Attributes:
        operation_id: The caller's operation id.
        status: ``running``, ``completed``, ``failed``, ``cancelled``, ``terminated`` or
            ``timed_out``.
        result: The exposed workflow's result (JSON), when ``completed``.
        error: Its error (type, message, the callee's traceback), when it ended otherwise.
    """

    operation_id: str
    status: str
    result: Any = None
    error: ErrorInfo | None = None

    @property
    def done(self) -> bool:
        """Whether the operation has ended."""
        return self.status != "running"

    def to_json(self) -> dict[str, Any]:
        """The routes' JSON form: ``result`` when completed, ``error`` when it ended
        otherwise, neither while running."""
        out: dict[str, Any] = {"operation_id": self.operation_id, "status": self.status}
        if self.status == "completed":
            out["result"] = self.result
        elif self.done:
            out["error"] = None if self.error is None else self.error.to_dict()
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any], operation_id: str | None = None
                  ) -> OperationState:
        """Read one from the routes' JSON (or a callback's ``outcome``)."""
        error = raw.get("error")
        return cls(operation_id=str(raw.get("operation_id", operation_id or "")),
                   status=str(raw["status"]), result=raw.get("result"),
                   error=ErrorInfo.from_dict(error) if isinstance(error, dict) else None)


def verify_callback(body: bytes, signature: str | None, secret: str | bytes
                    ) -> OperationState:
    """Check a callback an operation's callee posted, and read its outcome.

    For a caller outside any workflow that started an operation with a callback URL of
    its own (``client.operations.start(..., callback_url=..., callback_secret=...)``):
    give it the request's raw body and its ``Duro-Signature`` header.

    Args:
        body: The request's body, as received (the signature covers these bytes).
        signature: The ``Duro-Signature`` header (``sha256=<hex>``), None if absent.
        secret: The callback secret the operation was started with.

    Returns:
        The operation's outcome (``status`` is never ``running``).

    Raises:
        InvalidSignatureError: No signature, a wrong one, one made for another operation,
            or a body that is not a callback. Nothing in it should be trusted then.
    """
    raw = check_callback(body, signature, secret)
    outcome = raw.get("outcome")
    if (problem := outcome_problem(outcome)) is not None:
        raise InvalidSignatureError(f"the callback carries no outcome: {problem}")
    assert isinstance(outcome, dict)  # (outcome_problem says so)
    return OperationState.from_json(outcome, str(raw["operation_id"]))


ENDED = frozenset({"completed", "failed", "cancelled", "terminated", "timed_out"})
"""The statuses of an operation's outcome (a callback is sent once it ended)."""


def outcome_problem(outcome: Any) -> str | None:
    """What is wrong with a callback's ``outcome`` (None: nothing): an object whose
    ``status`` is an ended one, whose ``error`` (if any) is an object."""
    if not isinstance(outcome, dict) or outcome.get("status") not in ENDED:
        return (f"'outcome' must be an object whose 'status' is one of "
                f"{', '.join(sorted(ENDED))}")
    if outcome.get("error") is not None and not isinstance(outcome["error"], dict):
        return "the outcome's 'error' must be an object"
    return None


def check_callback(body: bytes, signature: str | None, secret: str | bytes
                   ) -> dict[str, Any]:
    """The callback's JSON once its signature is checked (:func:`verify_callback`; the
    caller's ``duro serve`` checks its ``POST /v1/callbacks`` with it)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidSignatureError("the callback is not signed JSON") from None
    ids = [raw.get(k) for k in ("namespace", "workflow_id", "operation_id")] \
        if isinstance(raw, dict) else []
    if len(ids) != 3 or not all(isinstance(v, str) for v in ids):
        raise InvalidSignatureError("the callback does not name its operation")
    operation = raw.get("operation")  # absent from an earlier version's callbacks
    if operation is not None and not isinstance(operation, str):
        raise InvalidSignatureError("the callback's operation is not a name")
    namespace, workflow_id, operation_id = (str(v) for v in ids)
    key = callback_key(secret.encode() if isinstance(secret, str) else secret, namespace,
                       workflow_id, operation_id, operation)
    if not hmac.compare_digest((signature or "").encode(), sign(key, body).encode()):
        raise InvalidSignatureError("the callback's signature does not match")
    checked: dict[str, Any] = raw
    return checked
