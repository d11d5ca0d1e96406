"""The error hierarchy of duro.

Every error duro raises at a user is a :class:`DuroError`. Internal control flow
(suspending a workflow, fencing a stale worker) uses ``BaseException`` subclasses so
that user code with a broad ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

__all__ = [
    "MAX_CAUSE_DEPTH",
    "ApprovalNotFoundError",
    "ApprovalNotPendingError",
    "AuthenticationError",
    "BlobCorruptError",
    "BlobMissingError",
    "BudgetExceededError",
    "ChildWorkflowError",
    "CodecConfigError",
    "CodecNotConfiguredError",
    "CodecUnavailableError",
    "CorruptRunError",
    "DataRejectedError",
    "DatabaseFileLostError",
    "DatabaseLockedError",
    "DatabaseReadOnlyError",
    "DuroError",
    "ErrorInfo",
    "HistoryCorruptError",
    "HistoryLimitError",
    "InvalidArgumentError",
    "InvalidSignatureError",
    "InvalidStoreURLError",
    "LocalOnlyError",
    "NonRetryableError",
    "NondeterminismError",
    "OperationNotFoundError",
    "PayloadDecodeError",
    "PayloadTamperedError",
    "PermissionDeniedError",
    "QueryError",
    "QueryTimeoutError",
    "RecoveryLimitError",
    "RemoteOperationError",
    "RetryAfterError",
    "RunNotFoundError",
    "SerializationError",
    "ServerUnavailableError",
    "StepFailedError",
    "StepOutcomeUnknownError",
    "StepTimeoutError",
    "StoreError",
    "UnknownKeyError",
    "UpdateFailedError",
    "UpdateRejectedError",
    "WorkflowAlreadyStartedError",
    "WorkflowArgumentsError",
    "WorkflowBlockingError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowIdTakenError",
    "WorkflowMismatchError",
    "WorkflowNotFoundError",
    "WorkflowTerminatedError",
]


MAX_CAUSE_DEPTH = 10
"""Most links an error's chain of causes keeps (the error itself included). A longer
chain (a failure passed up through many nested children) keeps its first links and its
root cause; a payload holds each link's traceback, so the bound keeps it small."""

_LEFT_OUT = " [further causes left out]"


@dataclass(frozen=True, kw_only=True)
class ErrorInfo:
    """A recorded failure: what was raised, where, its traceback text, and what caused it.

    ``cause`` chains failures the way they happened: a run that failed because a step
    failed has ``StepFailedError`` here and, as its ``cause``, the step's own error (its
    type, message and traceback); a child's failure has the child's error as its cause,
    and so on down to the root cause. An exception raised ``from`` another (or while
    handling one) has that one as its cause too. Each link's ``traceback`` is its own.

    Stored as JSON, the cause nested under the key ``"cause"`` (see :meth:`to_dict`);
    :meth:`to_payload` and :meth:`from_payload` are the one place that writes and reads
    a failure's payload.
    """

    type: str
    message: str
    traceback: str = ""
    non_retryable: bool = False
    cause: ErrorInfo | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    @classmethod
    def from_exception(cls, exc: BaseException, *, non_retryable: bool = False) -> ErrorInfo:
        """What to record about an exception (any: user code may raise anything, even
        an exception whose ``str()`` raises), with what caused it as its ``cause``.

        The causes, as Python chains exceptions: the exception it was raised ``from``,
        else the one being handled when it was raised (unless ``from None``); and where a
        link carries a recorded failure (``StepFailedError``, ``ChildWorkflowError``,
        ``UpdateFailedError``: the step's, the child's own error), that failure ends the
        chain with its own causes. Each link's traceback has its own frames only: the
        chain is in the links, and repeating it in each traceback would store it twice.
        """
        links = [_one_link(exc, non_retryable=non_retryable)]
        seen = {id(exc)}
        tail = _recorded_cause(exc)
        current = exc
        while tail is None and len(links) < MAX_CAUSE_DEPTH:
            nxt = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
            if nxt is None or id(nxt) in seen:
                break
            seen.add(id(nxt))
            links.append(_one_link(nxt, non_retryable=False))
            tail, current = _recorded_cause(nxt), nxt
        for link in reversed(links):
            tail = replace(link, cause=tail)
        assert tail is not None
        return tail

    def chain(self) -> list[ErrorInfo]:
        """This error and its causes, outermost first (the root cause last)."""
        links: list[ErrorInfo] = []
        link: ErrorInfo | None = self
        while link is not None:
            links.append(link)
            link = link.cause
        return links

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"type", "message", "traceback", "non_retryable"}`` and, if
        there is one, ``"cause"``: the same form, nested. At most
        :data:`MAX_CAUSE_DEPTH` links: the first ones and the root cause."""
        links = self.chain()
        if len(links) > MAX_CAUSE_DEPTH:
            last = links[MAX_CAUSE_DEPTH - 2]
            if not last.message.endswith(_LEFT_OUT):
                last = replace(last, message=last.message + _LEFT_OUT)
            links = [*links[:MAX_CAUSE_DEPTH - 2], last, links[-1]]
        out: dict[str, Any] | None = None
        for link in reversed(links):
            raw: dict[str, Any] = {"type": link.type, "message": link.message,
                                   "traceback": link.traceback,
                                   "non_retryable": link.non_retryable}
            if out is not None:
                raw["cause"] = out
            out = raw
        assert out is not None
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> ErrorInfo:
        """An ErrorInfo from its JSON form (:meth:`to_dict`); tolerant of payloads written
        before causes were recorded and of damaged ones (a cause that is not an object is
        no cause; links past :data:`MAX_CAUSE_DEPTH` are dropped)."""
        links: list[dict[str, Any]] = []
        while isinstance(raw, dict) and len(links) < MAX_CAUSE_DEPTH:
            links.append(raw)
            raw = raw.get("cause")
        if not links:
            return cls(type="PayloadDecodeError", message="corrupt error payload")
        info: ErrorInfo | None = None
        for link in reversed(links):
            info = cls(type=str(link.get("type", "Error")),
                       message=str(link.get("message", "")),
                       traceback=str(link.get("traceback", "")),
                       non_retryable=bool(link.get("non_retryable", False)), cause=info)
        assert info is not None
        return info

    def to_payload(self) -> bytes:
        """The payload a failure is recorded as (a run's error, a step's, a child's, an
        update's): :meth:`to_dict` as JSON."""
        import orjson

        return orjson.dumps(self.to_dict())

    @classmethod
    def from_payload(cls, data: bytes | None) -> ErrorInfo:
        """The failure a payload records. A payload that is not such a JSON object gives
        a ``PayloadDecodeError`` info saying so, never an exception (an operator reading
        a damaged history must see the rest)."""
        import orjson

        try:
            raw = orjson.loads(data) if data else None
        except orjson.JSONDecodeError as exc:
            return cls(type="PayloadDecodeError", message=f"corrupt error payload: {exc}")
        return cls.from_dict(raw)


def _one_link(exc: BaseException, *, non_retryable: bool) -> ErrorInfo:
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    return ErrorInfo(type=name, message=exception_message(exc), traceback=_traceback(exc),
                     non_retryable=non_retryable or isinstance(exc, NonRetryableError))


def _recorded_cause(exc: BaseException) -> ErrorInfo | None:
    """The recorded failure an error of duro carries (a step's or a child's), if any."""
    cause = getattr(exc, "cause", None) if isinstance(exc, DuroError) else None
    return cause if isinstance(cause, ErrorInfo) else None


def _traceback(exc: BaseException) -> str:
    """The exception's own traceback (its causes are links of their own)."""
    import traceback

    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__,
                                                  chain=False))
    except BaseException:  # it formats str(exc): user code
        frames = "".join(traceback.format_tb(exc.__traceback__))
        return (f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: "
                f"{exception_message(exc)}\n")


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when that raises (user code may define any
    ``__str__``; describing a failure must never fail)."""
    try:
        return str(exc)
    except BaseException as inner:
        return f"<str() of this exception raised {type(inner).__name__}>"


class DuroError(Exception):
    """Base class of every error duro raises."""


class WorkflowNotFoundError(DuroError):
    """No workflow with that name is registered in this process."""


class InvalidSignatureError(DuroError):
    """A signed request whose signature is missing, malformed, does not match the shared
    secret, or whose timestamp is outside the tolerance (a webhook, an operation's
    callback: HTTP 401 ``invalid_signature``; ``duro.rpc.verify_callback``)."""


class OperationNotFoundError(DuroError):
    """No exposed operation of that name on this deployment (``@duro.workflow(expose=True)``
    or ``duro serve --expose``): HTTP 404 ``operation_not_found``."""


class RemoteOperationError(DuroError):
    """A remote operation called with ``duro.call`` did not complete.

    ``status`` says how: ``failed`` (the callee's workflow raised: ``error_type``,
    ``remote_message`` and ``remote_traceback`` are its error's), ``cancelled``,
    ``terminated`` or ``timed_out`` (on the callee's side), ``refused`` (the callee
    refused the call: a bad token, an operation it does not expose, arguments that do not
    fit; ``error_type`` is its problem code), or ``call_timed_out`` / ``call_cancelled``
    (the caller's ``timeout`` passed, or the caller was cancelled).
    """

    def __init__(self, message: str, *, operation: str, operation_id: str, status: str,
                 cause: ErrorInfo | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.operation_id = operation_id
        self.status = status
        self.cause = cause

    @property
    def error_type(self) -> str | None:
        """The callee's error type (or the refusal's problem code)."""
        return None if self.cause is None else self.cause.type

    @property
    def remote_message(self) -> str | None:
        """The callee's error message."""
        return None if self.cause is None else self.cause.message

    @property
    def remote_traceback(self) -> str | None:
        """The callee's traceback (its own frames), when it sent one."""
        return None if self.cause is None else self.cause.traceback


class RunNotFoundError(DuroError):
    """No run with that workflow id (or run id) exists in the store."""


class WorkflowAlreadyStartedError(DuroError):
    """A run with this workflow id exists and the conflict policy says fail.

    ``workflow_name`` is the workflow of that run.
    """

    def __init__(self, message: str, *, workflow_id: str, run_id: str,
                 workflow_name: str | None = None) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.workflow_name = workflow_name


class WorkflowIdTakenError(WorkflowAlreadyStartedError):
    """The workflow id belongs to a run of another workflow (``workflow_name`` names it),
    live, or ended and not to be reused: a start would otherwise hand back (or signal)
    a run of other code. Nothing was stored."""


class InvalidArgumentError(DuroError, ValueError):
    """An argument was refused at the call site (an empty or oversized id, a negative
    timeout, a cron expression that never fires...); nothing was stored.

    A ``ValueError`` too, so code that catches ``ValueError`` keeps working.
    """


class WorkflowMismatchError(InvalidArgumentError):
    """A history was given to replay with the code of another workflow than the one
    that recorded it (``recorded`` names that one, ``given`` the other).

    Raised before anything is replayed: the workflow's code would fail on the history
    in some unrelated way, or even complete. To replay a history with code registered
    under another name on purpose (a candidate version beside the current one), say so
    with ``duro.testing.replay(..., workflow_name=...)``.
    """

    def __init__(self, message: str, *, recorded: str, given: str) -> None:
        super().__init__(message)
        self.recorded = recorded
        self.given = given


class SerializationError(DuroError, TypeError):
    """A value cannot be encoded as a payload: it is not JSON-serializable, or it holds
    NaN or Infinity (JSON has neither)."""


class WorkflowArgumentsError(SerializationError):
    """The arguments of a start do not fit the workflow: not its signature (too many,
    missing, unknown keyword), or a value that would not come back as the type its
    parameter declares (``"5"`` for an ``int``). Nothing was stored.

    A :class:`SerializationError` (and so a ``TypeError``) too, so code that catches
    those keeps working.
    """


class PayloadDecodeError(DuroError):
    """A stored payload cannot be decoded (corrupt row, or a type that no longer fits)."""


class CodecNotConfiguredError(PayloadDecodeError):
    """A stored payload was encoded by a codec that the configured chain does not have
    (for example an encrypted payload read without the encryption codec)."""

    def __init__(self, message: str, *, encoding: str) -> None:
        super().__init__(message)
        self.encoding = encoding


class UnknownKeyError(PayloadDecodeError):
    """A payload was encrypted under a key id that the codec cannot find (the key was
    removed, or the key source does not know it); ``key_id`` names it."""

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class PayloadTamperedError(PayloadDecodeError):
    """An encrypted payload failed authentication: its bytes, or the metadata bound to
    them, were changed after encryption (or it was encrypted under another key with the
    same id)."""

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class BlobMissingError(PayloadDecodeError):
    """An offloaded payload's blob is not in the blob store; ``digest`` (sha256, hex) and
    ``size`` name the reference kept in the history."""

    def __init__(self, message: str, *, digest: str, size: int) -> None:
        super().__init__(message)
        self.digest = digest
        self.size = size


class BlobCorruptError(PayloadDecodeError):
    """An offloaded payload's blob was found but its content does not match the
    reference (sha256 or size): it was changed or truncated in the blob store."""

    def __init__(self, message: str, *, digest: str, size: int) -> None:
        super().__init__(message)
        self.digest = digest
        self.size = size


class CodecUnavailableError(DuroError, ImportError):
    """A codec needs an optional package that is not installed; the message names the
    extra to install (``pip install 'duro[zstd]'``)."""

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class CodecConfigError(InvalidArgumentError):
    """A codec or codec chain was configured wrongly: a key of the wrong size, a
    malformed ``DURO_KEYS``, a ``module:factory`` spec that does not load."""


class NondeterminismError(DuroError):
    """Workflow code issued an operation that does not match its recorded history.

    The run is parked, not failed: it resumes once code that matches is deployed.
    """

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class WorkflowBlockingError(DuroError):
    """Workflow code blocked or did I/O; that belongs in a step."""


class WorkflowFailedError(DuroError):
    """The run ended in failure; ``cause`` holds what the workflow raised."""

    def __init__(self, message: str, *, cause: ErrorInfo) -> None:
        super().__init__(message)
        self.cause = cause


class WorkflowCancelledError(DuroError):
    """The run was cancelled."""


class WorkflowTerminatedError(DuroError):
    """The run was terminated (stopped at once, no workflow code ran)."""


class StepFailedError(DuroError):
    """A step failed for good (retries exhausted or a non-retryable error).

    Raised inside the workflow at the ``await``; the original exception cannot be
    rebuilt safely from a stored record, so its type name, message and traceback are
    kept as attributes.
    """

    def __init__(self, message: str, *, step: str, cause: ErrorInfo, attempts: int) -> None:
        super().__init__(message)
        self.step = step
        self.cause = cause
        self.attempts = attempts

    @property
    def error_type(self) -> str:
        """The qualified type name of the exception the step raised."""
        return self.cause.type


class StepOutcomeUnknownError(StepFailedError):
    """An at-most-once step's attempt started, and its worker was lost before recording
    how it ended (or the attempt timed out and was abandoned): the step may or may not
    have taken effect, and duro will not run it again.

    Raised inside the workflow at the ``await`` of a ``@duro.step(at_most_once=True)``
    step (and again, identically, when the run replays: the verdict is recorded). Catch
    it to reconcile: ask the other system what happened (a step that looks the payment
    up by ``duro.step_info().idempotency_key``), or ask a human. A
    :class:`StepFailedError` too, so code that handles any failed step handles it.
    """


class BudgetExceededError(StepFailedError):
    """A budgeted step (``@duro.step(budgeted=True)``) was not run: a budget of its run
    is spent (``duro.Budget``, ``on_exceeded="raise"``).

    Raised inside the workflow at the step's ``await``, and again, identically, when the
    run replays (the refusal is recorded as the step's failure, never retried). Catch it
    to wrap up: return what the agent has so far. A :class:`StepFailedError` too.

    Attributes:
        budget: Which budget: its key, or ``"run"`` for the run's own.
        unit: ``"usd"`` or ``"tokens"``: the limit reached.
        limit: The limit.
        spent: What was spent when the step was refused (in the budget's window).
    """

    def __init__(self, message: str, *, step: str, cause: ErrorInfo, attempts: int,
                 budget: str, unit: str, limit: float, spent: float) -> None:
        super().__init__(message, step=step, cause=cause, attempts=attempts)
        self.budget = budget
        self.unit = unit
        self.limit = limit
        self.spent = spent


class ChildWorkflowError(DuroError):
    """A child workflow did not complete: it failed, was cancelled, terminated or timed out.

    Raised inside the parent at the ``await`` of the child.
    """

    def __init__(self, message: str, *, workflow_id: str, status: str,
                 cause: ErrorInfo | None) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.status = status
        self.cause = cause


class HistoryLimitError(DuroError):
    """A run's history grew past the hard limit; use continue-as-new for long loops."""


class HistoryCorruptError(DuroError):
    """A run's stored history is not whole (an event is missing): replaying it would run
    again what the missing events recorded, so the run is parked instead. Restore the
    events (or reset the run to before them), then resume it."""


class RecoveryLimitError(DuroError):
    """A run kept killing its workers: it was taken over from a dead worker more times in
    a row than ``max_recoveries`` allows, with nothing recorded in between, so it was
    parked (see :meth:`duro.Engine.resume`)."""


class QueryError(DuroError):
    """A query could not be answered (no such handler, the handler failed, or it tried
    to run a step or wait)."""


class QueryTimeoutError(QueryError):
    """A query asked through the store (the workflow's code is not importable in the
    asking process) got no answer in time: no worker with the code answered."""


class UpdateRejectedError(DuroError):
    """The update's validator (or the lack of a handler) rejected it; nothing was
    recorded in the history."""


class UpdateFailedError(DuroError):
    """The update handler raised; ``cause`` says what."""

    def __init__(self, message: str, *, cause: ErrorInfo) -> None:
        super().__init__(message)
        self.cause = cause


class ApprovalNotFoundError(DuroError):
    """No approval has this id (in the caller's namespace). Nothing was stored."""


class ApprovalNotPendingError(DuroError):
    """The approval can no longer be decided; ``status`` says why: ``approved`` or
    ``rejected`` (decided already: the first decision stands), ``timed_out`` (its
    timeout passed) or ``run_ended`` (its run ended first). Nothing was stored."""

    def __init__(self, message: str, *, approval_id: str, status: str) -> None:
        super().__init__(message)
        self.approval_id = approval_id
        self.status = status


class StepTimeoutError(DuroError):
    """A step attempt, or the step overall, ran past its timeout."""


class NonRetryableError(Exception):
    """Raise from a step to fail it at once, without further retries."""


class RetryAfterError(Exception):
    """Raise from a step to retry it after a given delay (e.g. HTTP 429 ``Retry-After``).

    Args:
        message: What went wrong.
        retry_after: The delay before the next attempt, in seconds or as a timedelta.
    """

    def __init__(self, message: str = "", *, retry_after: float | timedelta) -> None:
        super().__init__(message)
        if isinstance(retry_after, timedelta):
            retry_after = retry_after.total_seconds()
        self.retry_after = float(retry_after)


class AuthenticationError(DuroError):
    """No valid API token: none given, malformed, unknown, revoked or expired (which of
    these is not said, so that the answer tells a guesser nothing)."""


class PermissionDeniedError(DuroError):
    """The API token is valid but its scope does not allow this action."""


class StoreError(DuroError):
    """The store could not do what was asked."""


class ServerUnavailableError(StoreError):
    """A remote client (``duro.Client("http://...")``) could not reach the server, or
    the connection failed before an answer came, after its bounded retries (only
    requests that are safe to send again are retried).

    ``workflow_id``: for a start given no id, the id the client made for it (the start
    may have been stored): start again with ``id=`` that id to make it the same start.
    """

    workflow_id: str | None = None


class LocalOnlyError(DuroError):
    """What was asked needs the store itself and is not available through a server (a
    remote client's ``tokens``, ``resume``, published state...): use a client on the
    database (``duro.Client("sqlite:///...")``) where it runs."""


class InvalidStoreURLError(StoreError, InvalidArgumentError):
    """A store URL is malformed or names an unknown option; the message never shows
    the URL's password."""


class DatabaseLockedError(StoreError):
    """The database stayed locked by another process for longer than the busy timeout."""


class DatabaseReadOnlyError(StoreError):
    """The database file (or its directory) is read-only."""


class DataRejectedError(StoreError):
    """The database refused a value: too large for an index (a very long workflow id on
    PostgreSQL), too long, out of range, or against a constraint.

    The same write can never succeed, so it is not retried; nothing of it was written.
    """


class CorruptRunError(StoreError):
    """A run's stored row is damaged (a status duro does not know, a time that is not a
    number): listings show it with status ``corrupt``; it is never claimed or changed,
    and waiting for its result raises this. Repair the row (or delete the run)."""


class DatabaseFileLostError(StoreError):
    """The SQLite database file was deleted or replaced while the store had it open.

    Writes after that would go to the old, unlinked file and vanish when it closes, so
    the store reports the loss and refuses every later read and write; a worker on it
    stops. Restore the file and restart.
    """
