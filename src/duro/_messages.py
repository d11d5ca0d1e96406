"""Inbox messages: what reaches a run from outside (a signal, an update, a cancel
request, a child's or a queued step's outcome, a human's decision), before its owner
records it in the history as an event (duro/_history.py).

An inbox message keeps its payload opaque in ``data`` (as stored: maybe encoded by the
data converter's codecs) and what duro must read about it in ``meta``: no payload is
ever embedded in JSON, so a codec's envelope passes through untouched."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from duro._history import meta_of, usage_of

__all__ = ["ChildDone", "MessageKind", "TaskDone"]


class MessageKind(enum.StrEnum):
    """Every kind of inbox message, and the event each becomes."""

    SIGNAL = "signal"
    """data: the payload; name: the signal. Becomes ``signal_received``."""
    UPDATE = "update"
    """data: the arguments; meta: :class:`UpdateMeta`. Becomes ``update_accepted``."""
    CANCEL = "cancel"
    """Becomes ``cancel_requested``."""
    CHILD_DONE = "child_done"
    """data: the child's result or error; meta: :class:`ChildDone`; name: the op."""
    TASK_DONE = "task_done"
    """data: the step's result or error; meta: :class:`TaskDone`; name: the op."""
    APPROVAL = "approval"
    """A human's decision; meta: :class:`DecisionMeta`; name: the approval's op. Becomes
    ``approval_decided``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildDone:
    """How a child ended (the meta of a ``child_done`` message)."""

    status: str
    run_id: str

    def encode(self) -> bytes:
        return orjson.dumps({"status": self.status, "run_id": self.run_id})

    @classmethod
    def decode(cls, meta: bytes | None) -> ChildDone:
        raw = meta_of(meta)
        return cls(status=str(raw.get("status", "failed")), run_id=str(raw.get("run_id", "")))


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskDone:
    """How a step attempt run by a step queue's worker ended (the meta of a
    ``task_done`` message; the data is its result, or its error payload)."""

    attempt: int
    duration: float
    completed: bool
    heartbeat: Any = None
    non_retryable: bool = False
    retry_after: float | None = None
    usage: tuple[Mapping[str, Any], ...] = ()
    """What the attempt spent, carried to the run's owner, which records it in the
    outcome's meta."""

    def encode(self) -> bytes:
        raw = {"attempt": self.attempt, "duration": round(self.duration, 6),
               "completed": self.completed, "heartbeat": self.heartbeat,
               "non_retryable": self.non_retryable, "retry_after": self.retry_after}
        if self.usage:
            raw["usage"] = list(self.usage)
        return orjson.dumps(raw)

    @classmethod
    def decode(cls, meta: bytes | None) -> TaskDone:
        raw = meta_of(meta)
        return cls(attempt=int(raw.get("attempt", 0)), duration=float(raw.get("duration") or 0),
                   completed=bool(raw.get("completed")), heartbeat=raw.get("heartbeat"),
                   non_retryable=bool(raw.get("non_retryable")),
                   retry_after=raw.get("retry_after"), usage=usage_of(raw))
