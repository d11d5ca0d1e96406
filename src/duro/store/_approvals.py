"""Human approvals as stored: the read model of ``duro.approval()`` (one row per approval
a run requested) and how a decision is taken.

The row is written in the transaction that appends the run's ``approval_requested``
event, so the inbox lists pending approvals across runs by one index range, without
reading histories. A decision is taken on the row first (``pending`` to ``approved`` or
``rejected``, atomically: a second decision finds it decided) and in the same
transaction reaches the run's inbox, from which the run records it in its history
(``approval_decided``: the audit trail). A run's end, in its own transaction, leaves
none of its approvals pending (``run_ended``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["APPROVAL_STATUSES", "ApprovalRecord", "ApprovalStore"]

APPROVAL_STATUSES = ("pending", "approved", "rejected", "timed_out", "run_ended")
"""Where an approval stands: waiting for a decision, decided either way, its timeout
passed first, or its run ended first."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRecord:
    """One approval as stored (its context as stored: maybe encoded by codecs)."""

    approval_id: str
    run_id: str
    op: int
    workflow_id: str
    workflow_name: str
    namespace: str
    name: str
    context: bytes | None
    requested_at: float
    deadline_at: float | None
    status: str
    decided_by: str | None = None
    comment: str | None = None
    decided_at: float | None = None


@runtime_checkable
class ApprovalStore(Protocol):
    """Human approvals, stored in the database."""

    async def get_approval(self, approval_id: str, *,
                           namespace: str | None = None) -> ApprovalRecord | None:
        """The approval of this id (None: none, or one of another namespace)."""
        ...

    async def list_approvals(
        self, *, status: str | None = "pending", workflow: str | None = None,
        workflow_id: str | None = None, name: str | None = None, limit: int = 100,
        after: tuple[float, str] | None = None, namespace: str | None = None,
    ) -> list[ApprovalRecord]:
        """Approvals oldest first (by request time, then id), after the keyset ``after``;
        ``status`` None: every status; ``workflow``: the workflow's name."""
        ...

    async def decide_approval(self, approval_id: str, *, approved: bool, by: str,
                              comment: str | None, now: float,
                              namespace: str | None = None) -> ApprovalRecord:
        """Decide a pending approval and send the decision to its run, atomically.

        Raises:
            ApprovalNotFoundError: No approval of this id (in ``namespace``).
            ApprovalNotPendingError: Decided already, timed out (its deadline is past),
                or its run ended. Nothing was written.
        """
        ...
