"""``client.steps``: complete, fail or heartbeat a step attempt from outside, by the token
the step handed out before it called ``duro.complete_later()``.

The outcome goes to the attempt's run as a ``task_done`` message, to that exact run (not
one that continued it); its worker records it as the step's outcome only if the attempt
still waits for it, so a second completion, or one for an attempt that timed out or was
cancelled meanwhile, records nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from duro._checks import check_id
from duro._messages import MessageKind, TaskDone
from duro.client._http import segment
from duro.errors import ErrorInfo, InvalidArgumentError, RunNotFoundError
from duro.serde import encode
from duro.store._records import LIVE_STATUSES, Message

if TYPE_CHECKING:
    from duro.client._client import Client
    from duro.client._remote import RemoteClient

__all__ = ["MAX_ERROR_TEXT", "RemoteStepCompletions", "StepCompletions", "check_failure",
           "parse_token"]

MAX_ERROR_TEXT = 10_000
"""Characters an error type or message given to ``fail`` may have at most."""


def parse_token(token: str) -> tuple[str, int, int]:
    """``(run_id, op, attempt)`` of a completion token (``StepInfo.completion_token``).

    Raises:
        InvalidArgumentError: It is not one.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        op, attempt = int(parts[1]), int(parts[2])
        if 1 <= op < 2**62 and 1 <= attempt < 2**31:
            return check_id(parts[0], "run id in the completion token"), op, attempt
    raise InvalidArgumentError(f"not a step completion token: {token!r} (expected "
                               "RUN_ID.OP.ATTEMPT, from duro.step_info().completion_token)")


def check_failure(type: str, message: str, non_retryable: bool) -> None:
    """What ``fail`` is given: an error type and message of text, a bool.

    Raises:
        InvalidArgumentError: Otherwise.
    """
    for what, text in (("type", type), ("message", message)):
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_ERROR_TEXT:
            raise InvalidArgumentError(f"an error {what} is text of 1 to {MAX_ERROR_TEXT} "
                                       f"characters, not {text!r}")
    if not isinstance(non_retryable, bool):
        raise InvalidArgumentError(f"non_retryable must be True or False, "
                                   f"not {non_retryable!r}")


class StepCompletions:
    """Step attempts completed from outside (``client.steps``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def complete(self, token: str, result: Any = None) -> None:
        """Complete the attempt with ``result`` (its step's return value).

        Raises:
            InvalidArgumentError: Not a completion token.
            SerializationError: The result cannot be stored as JSON.
            RunNotFoundError: The attempt's run does not exist (in this namespace) or
                ended.
        """
        data = encode(result, what="the result of a step completed from outside")
        await self._send(token, data, completed=True)

    async def fail(self, token: str, message: str, *, type: str = "ExternalError",
                   non_retryable: bool = False) -> None:
        """Fail the attempt: its step's retry policy retries it (running the step again,
        with a new token) unless ``non_retryable`` or its attempts are spent.

        Raises:
            InvalidArgumentError: Not a completion token, or an empty or too long
                ``type``/``message``.
            RunNotFoundError: The attempt's run does not exist (in this namespace) or
                ended.
        """
        check_failure(type, message, non_retryable)
        error = ErrorInfo(type=type, message=message, non_retryable=non_retryable)
        await self._send(token, error.to_payload(), completed=False,
                         non_retryable=non_retryable)

    async def heartbeat(self, token: str, details: Any = None) -> None:
        """Keep progress details for the attempt (a retried attempt sees them as
        ``step_info().heartbeat_details``).

        Raises:
            InvalidArgumentError: Not a completion token.
            SerializationError: The details cannot be stored as JSON.
            RunNotFoundError: The attempt's run does not exist (in this namespace) or
                ended.
        """
        run_id, op, _ = parse_token(token)
        data = encode(details, what="heartbeat details")
        client = self._client
        client._require_open()
        record = await client.store.get_run(run_id, run_id, namespace=client.namespace)
        if record is None or record.status.value not in LIVE_STATUSES:
            raise RunNotFoundError(f"run {run_id!r} is not live (or does not exist)")
        await client.store.save_heartbeat(run_id, op, data, now=client.clock.now())

    async def _send(self, token: str, data: bytes | None, *, completed: bool,
                    non_retryable: bool = False) -> None:
        run_id, op, attempt = parse_token(token)
        client = self._client
        client._require_open()
        heartbeat = None
        if not completed:  # a retry sees the last heartbeat details (kept by heartbeat())
            loaded = (await client.store.load_runs([run_id], history=[run_id])).get(run_id)
            if loaded is not None and op in loaded.heartbeats:
                heartbeat = orjson.loads(loaded.heartbeats[op])
        meta = TaskDone(attempt=attempt, duration=0.0, completed=completed,
                        heartbeat=heartbeat, non_retryable=non_retryable).encode()
        stored = await client.payloads.encode(data)
        record = await client.store.send_to_run(
            run_id, Message(kind=MessageKind.TASK_DONE, name=str(op), data=stored, meta=meta),
            now=client.clock.now(), namespace=client.namespace)
        client._local.inbox_hint(record.run_id)


class RemoteStepCompletions(StepCompletions):
    """``client.steps`` through a server (``/v1/steps/{token}/...``), with the same checks
    as embedded (nothing sent when refused)."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    def _path(self, token: str, action: str) -> str:
        parse_token(token)
        return f"/v1/steps/{segment(token, 'completion token')}/{action}"

    async def complete(self, token: str, result: Any = None) -> None:
        """``POST /v1/steps/{token}/complete``: :meth:`StepCompletions.complete`."""
        encode(result, what="the result of a step completed from outside")
        await self._remote.call("POST", self._path(token, "complete"), body={"result": result})

    async def fail(self, token: str, message: str, *, type: str = "ExternalError",
                   non_retryable: bool = False) -> None:
        """``POST /v1/steps/{token}/fail``: :meth:`StepCompletions.fail`."""
        check_failure(type, message, non_retryable)
        await self._remote.call("POST", self._path(token, "fail"), body={
            "message": message, "type": type, "non_retryable": non_retryable})

    async def heartbeat(self, token: str, details: Any = None) -> None:
        """``POST /v1/steps/{token}/heartbeat``: :meth:`StepCompletions.heartbeat`."""
        encode(details, what="heartbeat details")
        # Keeping the same details again is harmless: safe to send again.
        await self._remote.call("POST", self._path(token, "heartbeat"),
                                body={"details": details}, idempotent=True)
