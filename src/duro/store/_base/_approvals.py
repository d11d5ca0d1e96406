"""Human approvals (:mod:`duro.store._approvals`): reading them, deciding them."""

from __future__ import annotations

from duro._history import DecisionMeta
from duro._messages import MessageKind
from duro.errors import ApprovalNotFoundError, ApprovalNotPendingError
from duro.store._approvals import ApprovalRecord
from duro.store._base import _writes as w
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Then, Tx
from duro.store._records import Message
from duro.store._rows import Row, approval_record
from duro.store._rules import in_namespace

__all__ = ["Approvals"]

_FIRST = (float("-inf"), "")
"""The keyset bound below every approval."""


def _not_pending(record: ApprovalRecord, status: str) -> ApprovalNotPendingError:
    why = {"approved": "it was approved already", "rejected": "it was rejected already",
           "timed_out": "its timeout passed", "run_ended": "its run has ended"}[status]
    by = f" by {record.decided_by!r}" if status in ("approved", "rejected") else ""
    return ApprovalNotPendingError(
        f"approval {record.approval_id!r} ({record.name!r} of workflow "
        f"{record.workflow_id!r}) cannot be decided: {why}{by}",
        approval_id=record.approval_id, status=status)


class Approvals(Dialect):
    """The approval operations of :class:`~duro.store.Store`, once for every dialect."""

    async def get_approval(self, approval_id: str, *,
                           namespace: str | None = None) -> ApprovalRecord | None:
        """See :meth:`duro.store.ApprovalStore.get_approval`."""
        rows = await self._fetch("approval_by_id", {"approval_id": approval_id})
        if not rows or not in_namespace(rows[0]["namespace"], namespace):
            return None
        return approval_record(rows[0])

    async def list_approvals(
        self, *, status: str | None = "pending", workflow: str | None = None,
        workflow_id: str | None = None, name: str | None = None, limit: int = 100,
        after: tuple[float, str] | None = None, namespace: str | None = None,
    ) -> list[ApprovalRecord]:
        """See :meth:`duro.store.ApprovalStore.list_approvals`."""
        after_at, after_id = after or _FIRST
        params = {"status": status, "workflow": workflow, "workflow_id": workflow_id,
                  "name": name, "namespace": namespace, "limit": limit,
                  "after_at": after_at, "after_id": after_id}
        query = "list_pending_approvals" if status == "pending" else "list_approvals"
        return [approval_record(r) for r in await self._fetch(query, params)]

    async def decide_approval(self, approval_id: str, *, approved: bool, by: str,
                              comment: str | None, now: float,
                              namespace: str | None = None) -> ApprovalRecord:
        """See :meth:`duro.store.ApprovalStore.decide_approval`."""
        status = "approved" if approved else "rejected"

        async def op(tx: Tx) -> Then[ApprovalRecord]:
            # Everything that refuses is checked before the first write (_tx.py's rule).
            await tx.one("lock_approval_run", {"approval_id": approval_id})
            row = await tx.one("approval_for_decision", {"approval_id": approval_id})
            record = _pending(row, approval_id, namespace, now)
            decided = await tx.later("decide_approval", {
                "approval_id": approval_id, "status": status, "by": by, "comment": comment,
                "now": now})
            decision = DecisionMeta(approval_id=approval_id, approved=approved, by=by,
                                    comment=comment, at=now)
            await w.send(tx, record.run_id, Message(
                kind=MessageKind.APPROVAL, name=str(record.op), meta=decision.encode()), now)

            async def finish() -> ApprovalRecord:
                got = await decided.first()
                # The run's row was locked before the approval was read: nothing can
                # have decided it or ended the run in between.
                assert got is not None
                return approval_record(got)

            return Then(finish)

        record: ApprovalRecord = await self._write(op, notify=True)
        return record


def _pending(row: Row | None, approval_id: str, namespace: str | None,
             now: float) -> ApprovalRecord:
    """The approval a decision is for, if it may be decided now.

    Raises:
        ApprovalNotFoundError: No such approval (in the namespace).
        ApprovalNotPendingError: Not pending, its deadline is past, or its run ended.
    """
    if row is None or not in_namespace(row["namespace"], namespace):
        raise ApprovalNotFoundError(f"no approval with id {approval_id!r}")
    record = approval_record(row)
    if record.status != "pending":
        raise _not_pending(record, record.status)
    if record.deadline_at is not None and now >= record.deadline_at:
        # The run's timer records the timeout when it fires: a decision after the
        # deadline would lose that race anyway.
        raise _not_pending(record, "timed_out")
    if row["run_status"] not in ("pending", "running", "suspended", "parked"):
        raise _not_pending(record, "run_ended")
    return record
