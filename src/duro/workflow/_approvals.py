"""``duro.approval()``: a workflow waits for a human decision.

The request is an operation of the run (its op, like a step's or a timer's), recorded as
``approval_requested`` with the context the approver sees; the store keeps it in a read
model in the same transaction, so ``client.approvals.list()`` finds it across runs. A
decision is taken on that read model by anyone (``client.approvals.approve``, ``duro
approve``, ``POST /v1/approvals/{id}/approve``) and reaches the run through its inbox,
where it is recorded as ``approval_decided`` (who, the verdict, the comment, when).
Replay reads both back: the same code gets the same :class:`Decision`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from duro._checks import check_id, check_seconds
from duro._history import approval_id_of
from duro.serde import encode
from duro.workflow._api import _instance

__all__ = ["Decision", "approval", "ask_approval", "tool_approval_name"]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """How an approval ended, as ``await duro.approval(...)`` returns it."""

    approval_id: str
    """The approval's id (``duro approve ID``)."""
    approved: bool
    """True if approved; False if rejected or timed out."""
    by: str | None
    """Who decided (None: timed out)."""
    comment: str | None
    at: float
    """When it was decided (seconds since the epoch, the decider's clock), or when it timed
    out (the workflow's time)."""
    timed_out: bool = False
    """No decision came within the ``timeout``."""


async def approval(name: str, context: Any = None, *,
                   timeout: float | timedelta | None = None) -> Decision:
    """Wait for a human to approve or reject something, durably (days, restarts).

    The approval is listed as pending (``client.approvals.list()``, ``duro approvals``,
    ``GET /v1/approvals``) with ``context`` until someone decides it or, with
    ``timeout``, until the timeout passes. A timeout is not an error, as
    ``wait_for_signal`` returns its default: the decision says ``timed_out=True`` (and
    ``approved=False``), so the workflow decides what no answer means.

    Args:
        name: What is to be approved (``"deploy"``): shown to approvers, and checked on
            replay like a step's name.
        context: A JSON value the approver sees (what is being approved, why).
        timeout: How long to wait at most (a durable timer); None: forever.

    Raises:
        InvalidArgumentError: (at the call) an empty name, one with control characters
            or over 200 characters, or a timeout that is not a positive finite duration.
            Nothing is recorded.
        SerializationError: (at the call) ``context`` cannot be stored as JSON.
        QueryError: Called from a query handler or an update validator.
    """
    return await ask_approval(name, context, timeout=timeout)


def tool_approval_name(agent: str, tool: str) -> str:
    """The name of the approval of a tool call, in every agent integration
    (``duro.openai_agents``, ``duro.pydantic_ai``): ``<agent>.<tool>``, as the approval
    inbox shows it (the context says more: the call's id and arguments)."""
    return f"{agent}.{tool}"


async def ask_approval(name: str, context: Any = None, *,
                       timeout: float | timedelta | None = None,
                       was: tuple[str, ...] = ()) -> Decision:
    """:func:`approval`, for integrations that renamed theirs: a history that recorded
    this approval under one of the names in ``was`` replays under that name (approvals
    are matched on replay by op and name), and a new run records ``name``."""
    inst = _instance("approval")
    check_id(name, "approval name", limit=200)
    limit = check_seconds(timeout, "timeout")
    data = encode(context, what=f"the context of approval {name!r}")
    deadline = None if limit is None else inst.now_ts + limit
    op, future = inst.approvals.request(name, data, deadline, was=was)
    try:
        decided = await (future if limit is None else asyncio.wait_for(future, limit))
    except TimeoutError:
        inst.approvals.timed_out(op)
        return Decision(approval_id=approval_id_of(inst.run_id, op), approved=False, by=None,
                        comment=None, at=inst.now_ts, timed_out=True)
    return Decision(approval_id=approval_id_of(inst.run_id, op), approved=decided.approved,
                    by=decided.by, comment=decided.comment, at=decided.at)
