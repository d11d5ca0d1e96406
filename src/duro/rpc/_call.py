"""``duro.call``: a workflow calls another deployment's exposed operation, durably.

The call is an operation of the run (its op), recorded by the code as ``call_started``
(the operation id, the callee's URL) and closed by ``call_completed`` or ``call_failed``
once the outcome is known, exactly once: replay passes over these records (the code
records an outcome only when the event that resumed it is the history's last, as live).
The outcome itself comes back two ways, raced in the workflow's deterministic loop:

- **polling**: one step (``duro.call``) whose attempts start the operation (idempotent
  by its id: the callee's run of it has the workflow id derived from it) and then read
  its state with long polls (``?wait=``, ``Endpoint.long_poll``: answered as soon as it
  ends); a running operation is a retry (``RetryAfterError``: one ``step_retrying`` per
  long poll), at once after a long poll the callee held, else after a growing, bounded,
  durable delay, so polling is the caller's worker's and no workflow blocks; a crash of
  either side is a retried attempt.
- **callback**: with ``Endpoint.callback_url``, the callee posts the outcome, signed,
  to this deployment's ``POST /v1/callbacks``, which sends it to the run as a signal
  whose id is the operation id (a replayed callback is recorded once, then ignored).

Whichever comes first is the outcome; the other is cancelled (the step) or left unread
(a later signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

from duro._checks import check_id, check_seconds
from duro._history import CallMeta, EventKind
from duro.client._http import segment
from duro.errors import ErrorInfo, RemoteOperationError, RetryAfterError, StepFailedError
from duro.rpc._endpoint import Endpoint, callback_key, signal_name
from duro.rpc._http import shared_client
from duro.serde import convert, encode
from duro.step._policy import RetryPolicy
from duro.step._step import Step, interruptible, step_info
from duro.workflow._api import _instance
from duro.workflow._instance import RunInstance

__all__ = ["call"]

_FIRST_POLL = 0.1
"""Seconds before the first poll of a running operation when no callback is expected."""
_FIRST_POLL_CALLBACK = 1.0
"""The same when a callback is expected: polling is then the fallback."""
_HELD = 0.8
"""A long poll answered ``running`` after this share of its wait was held by the callee
(it waits as asked); one answered sooner comes from a callee that predates ``?wait=``
(or one stopping): the next poll then backs off as short polls do."""
_REFUSED = frozenset({400, 401, 403, 404, 405, 409, 413, 422})
"""Callee answers that no retry would change (anything else is retried)."""


async def _poll(endpoint: Endpoint, operation: str, operation_id: str, request: bytes,
                callback: dict[str, str] | None) -> dict[str, Any]:
    """One attempt: read the operation's state (starting it if the callee has no run of
    it), waiting at the callee up to the endpoint's ``long_poll`` for it to end; its
    outcome, or a retry while it runs."""
    attempt = step_info().attempt
    http = shared_client()
    headers = _headers(endpoint)
    path = f"{endpoint.url}/v1/operations/{segment(operation, 'operation name')}"
    response = None
    waited = 0.0
    if attempt > 1:  # started already, most likely: a read is cheaper than the args
        wait = endpoint.long_poll
        started = time.monotonic()
        with interruptible():  # a worker draining does not wait for it: asked again
            response = await http.get(f"{path}/{segment(operation_id, 'operation id')}",
                                      headers=headers,
                                      params={"wait": f"{wait:g}"} if wait else None,
                                      timeout=endpoint.request_timeout + wait)
        if response.status_code == 404 and _code(response) == "run_not_found":
            response = None
        elif wait and time.monotonic() - started >= wait * _HELD:
            waited = wait
    if response is None:
        body = b'{"operation_id":' + encode(operation_id) + b',"callback":' + \
            encode(_callback(endpoint, operation, operation_id, callback)) + b"," + \
            request[1:]
        response = await http.post(path, content=body, timeout=endpoint.request_timeout,
                                   headers={**headers, "Content-Type": "application/json"})
    return _outcome(response, attempt, endpoint, callback is not None, waited)


def _headers(endpoint: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}


def _callback(endpoint: Endpoint, operation: str, operation_id: str,
              where: dict[str, str] | None) -> dict[str, str] | None:
    """What the callee needs to post the outcome back: the URL, and this call's key."""
    secret = endpoint.secret()
    if where is None or endpoint.callback_url is None or secret is None:
        return None
    key = callback_key(secret, where["namespace"], where["workflow_id"], operation_id,
                       operation)
    return {"url": f"{endpoint.callback_url}/v1/callbacks", "key": key.hex(),
            "namespace": where["namespace"], "workflow_id": where["workflow_id"]}


def _code(response: Any) -> str:
    try:
        raw = response.json()
    except ValueError:
        return ""
    return str(raw.get("code", "")) if isinstance(raw, dict) else ""


def _outcome(response: Any, attempt: int, endpoint: Endpoint, callback: bool,
             waited: float) -> dict[str, Any]:
    status = response.status_code
    if status in _REFUSED:
        try:
            detail = response.json().get("detail", "")
        except (ValueError, AttributeError):
            detail = response.text[:500]
        return {"status": "refused",
                "error": {"type": _code(response) or f"http_{status}",
                          "message": f"HTTP {status}: {detail}"}}
    if status >= 300:
        raise RuntimeError(f"the callee answered HTTP {status}: {response.text[:200]}")
    state = response.json()
    if not isinstance(state, dict) or not isinstance(state.get("status"), str):
        raise RuntimeError(f"the callee answered an unknown state: {response.text[:200]}")
    if state["status"] == "running":
        if waited:
            # The callee held the poll for the whole wait: it answers as soon as the
            # operation ends, so the next long poll may start at once.
            raise RetryAfterError(f"the operation is running (waited {waited:g}s)",
                                  retry_after=_FIRST_POLL)
        first = _FIRST_POLL_CALLBACK if callback else _FIRST_POLL
        delay = min(first * 2 ** min(attempt - 1, 30), endpoint.poll_interval)
        raise RetryAfterError("the operation is running", retry_after=delay)
    return state


POLL: Step[..., dict[str, Any]] = Step(_poll, name="duro.call",
            retry=RetryPolicy(max_attempts=0, initial_interval=0.2, max_interval=30.0))
"""The step of a call's remote start and polls: unlimited attempts (an unreachable callee
is retried, backing off to 30 s; a running operation is long-polled, or polled backing
off to the endpoint's ``poll_interval`` when its callee answers at once)."""


async def _cancel(endpoint: Endpoint, operation: str, operation_id: str) -> None:
    """Ask the callee to cancel the operation (it records the cancel of an id it has not
    seen started, so a start of it still on its way runs nothing; a 404 from a callee of
    an earlier version: it has no run of it, nothing to do)."""
    path = (f"{endpoint.url}/v1/operations/{segment(operation, 'operation name')}/"
            f"{segment(operation_id, 'operation id')}/cancel")
    response = await shared_client().post(path, headers=_headers(endpoint),
                                          timeout=endpoint.request_timeout)
    if response.status_code in _REFUSED:
        return
    if response.status_code >= 300:
        raise RuntimeError(f"the callee answered HTTP {response.status_code}")


CANCEL: Step[..., None] = Step(_cancel, name="duro.call.cancel",
                               retry=RetryPolicy(max_attempts=10, initial_interval=0.5,
                                                 max_interval=30.0))
"""The step that propagates a caller's cancellation or timeout to the callee."""


async def call(endpoint: Endpoint, operation: str, *args: Any, id: str | None = None,
               timeout: float | timedelta | None = None, type: Any = Any,
               **kwargs: Any) -> Any:
    """Call another deployment's exposed operation and wait for its result, durably.

    The callee starts the operation once per operation id whatever crashes on either
    side (the id defaults to one derived from this run and the call's sequence number);
    the result comes back by the callee's signed callback (``Endpoint.callback_url``) or
    by polling, whichever comes first, and is recorded once in this run's history.

    Args:
        endpoint: Where the callee's ``duro serve`` is, with its token.
        operation: The exposed workflow's name at the callee.
        *args: Its arguments (JSON values; keyword arguments too, after the options).
        id: The operation id (an idempotency key at the callee); default: derived from
            this run and the call's sequence number.
        timeout: How long to wait at most (a durable timer); None: forever. When it
            passes, or when the calling run is cancelled, the callee is asked to cancel
            the operation.
        type: Convert the result to this type (dataclass, pydantic model, ...).

    Raises:
        RemoteOperationError: (at the await) the operation failed, was cancelled, timed
            out or was refused at the callee, or ``timeout`` passed; its ``status``,
            ``error_type``, ``remote_message`` and ``remote_traceback`` say which.
        InvalidArgumentError: (at the call) an empty or overlong operation name or id, a
            timeout that is not a positive finite duration. Nothing is recorded.
        SerializationError: (at the call) an argument cannot be sent as JSON.
        TypeError: (at the call) ``endpoint`` is not a :class:`duro.Endpoint`.
    """
    inst = _instance("call")
    if not isinstance(endpoint, Endpoint):
        raise TypeError(f"duro.call() takes a duro.Endpoint, not {endpoint!r}")
    # Each goes in a URL path of the callee's: refused here if no route could reach it.
    segment(check_id(operation, "operation name", limit=200), "operation name")
    if id is not None:
        segment(check_id(id, "operation id", limit=200), "operation id")
    limit = check_seconds(timeout, "timeout")
    request = encode({"args": list(args), "kwargs": kwargs},
                     what=f"the arguments of operation {operation!r}")
    op = inst._issue("call", operation)
    operation_id = id or f"{inst.run_id}.{op}"
    if op not in inst.recorded:
        inst.record(EventKind.CALL_STARTED, op=op, name=operation,
                    meta=CallMeta(operation_id=operation_id, endpoint=endpoint.url).encode())
    where = {"namespace": inst.namespace, "workflow_id": inst.workflow_id}
    poll = inst.schedule_step(POLL, (endpoint, operation, operation_id, request,
                                     where if endpoint.callback_url else None), {})
    outcome, via = await _first(inst, poll, signal_name(operation_id, operation), limit)
    if outcome["status"] in ("call_cancelled", "call_timed_out"):
        # The caller gave up: so does the callee (best effort: a refusal is not retried).
        with contextlib.suppress(StepFailedError):
            await CANCEL(endpoint, operation, operation_id)
    return _close(inst, op, operation, operation_id, outcome, via, type)


async def _first(inst: RunInstance, poll: asyncio.Future[Any], name: str,
                 limit: float | None) -> tuple[dict[str, Any], str]:
    """The first outcome: the callback's signal or the polling step's."""
    mailbox = inst.mailbox
    found, value = mailbox.take(name)
    if found:
        poll.cancel()
        return _state(value), "callback"
    signal = mailbox.wait(name)
    took = False
    try:
        done, _ = await asyncio.wait({poll, signal}, timeout=limit,
                                     return_when=asyncio.FIRST_COMPLETED)
        if signal in done:
            took = True
            return _state(signal.result()), "callback"
        if poll in done:
            return _state(poll.result()), "poll"
        return {"status": "call_timed_out"}, "timer"
    except asyncio.CancelledError:
        cancelled: dict[str, Any] = {"status": "call_cancelled"}
        return cancelled, "cancel"
    finally:
        mailbox.done_waiting(name, signal, took=took)
        if not poll.done():
            poll.cancel()


def _state(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and isinstance(value.get("status"), str):
        return value
    return {"status": "failed", "error": {"type": "InvalidOutcome",
                                          "message": f"not an operation outcome: {value!r}"}}


def _close(inst: RunInstance, op: int, operation: str, operation_id: str,
           outcome: dict[str, Any], via: str, hint: Any) -> Any:
    """Record the outcome (live only: a replay has it), then return or raise it."""
    status = outcome["status"]
    live = not inst.replaying
    if status == "completed":
        result = outcome.get("result")
        if live:
            inst.record(EventKind.CALL_COMPLETED, op=op, name=operation,
                        data=encode(result, what=f"the result of operation {operation!r}"),
                        meta=CallMeta(operation_id=operation_id, via=via).encode())
        return convert(result, hint)
    cause = _cause(outcome.get("error"))
    if live:
        inst.record(EventKind.CALL_FAILED, op=op, name=operation,
                    data=cause.to_payload() if cause else None,
                    meta=CallMeta(operation_id=operation_id, via=via, status=status).encode())
    what = {"call_timed_out": "got no outcome before the call's timeout",
            "call_cancelled": "was abandoned: the calling run was cancelled",
            "refused": "was refused by the callee"}.get(status, f"ended {status}")
    error = RemoteOperationError(
        f"remote operation {operation!r} ({operation_id}) {what}"
        + (f": {cause}" if cause else ""),
        operation=operation, operation_id=operation_id, status=status, cause=cause)
    if status == "call_cancelled":
        raise asyncio.CancelledError(str(error))
    raise error


def _cause(raw: Any) -> ErrorInfo | None:
    """The callee's error, as it sent it (an ``ErrorInfo`` dict)."""
    if not isinstance(raw, dict):
        return None
    try:
        return ErrorInfo.from_dict(raw)
    except (KeyError, TypeError, ValueError):
        return ErrorInfo(type=str(raw.get("type", "Error")), message=str(raw.get("message", "")))
