"""A run's approvals on the workflow side: which ``duro.approval()`` calls wait, under
what name, and which the history has closed (decided or timed out)."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

from duro._history import ApprovalMeta, DecisionMeta, EventKind, approval_id_of
from duro.errors import NondeterminismError

if TYPE_CHECKING:
    from duro.workflow._instance import RunInstance

__all__ = ["Approvals"]


class Approvals:
    """The approvals of one run (see module): owned by its :class:`RunInstance`."""

    def __init__(self, inst: RunInstance) -> None:
        # A proxy, as the mailbox's: the instance owns this, and a cycle would leave
        # every finished run to the cyclic collector.
        self._inst: RunInstance = weakref.proxy(inst)
        self.waiting: dict[int, tuple[str, asyncio.Future[DecisionMeta]]] = {}
        """``duro.approval()`` calls by op: the name and the future a decision
        resolves."""
        self.closed: set[int] = set()
        """The ops whose decision or timeout the history has (not recorded again)."""

    def clear(self) -> None:
        """Forget the waiting approvals (the run is closed: their futures hold it)."""
        self.waiting.clear()

    def name_of(self, op: int) -> str | None:
        """The name the approval at ``op`` was requested under, if it waits here."""
        found = self.waiting.get(op)
        return None if found is None else found[0]

    def apply(self, kind: str, op: int | None, name: str | None,
              meta: bytes | None) -> None:
        """An approval's request (the code's own record), decision or timeout."""
        inst = self._inst
        waiting = self.waiting.get(op) if op is not None else None
        if waiting is None or waiting[0] != name:
            what = f"{kind} {name!r}" if name else kind
            raise NondeterminismError(
                f"nondeterminism in workflow {inst.workflow.name!r} (run {inst.run_id}): "
                f"the history records {what} at seq {op} but the code "
                f"has not requested that approval there", seq=op)
        assert op is not None
        if kind == EventKind.APPROVAL_REQUESTED:
            return
        self.closed.add(op)
        future = waiting[1]
        # A decision that comes after the timeout (it lost the race) stays in the
        # history, for the audit, and changes nothing.
        if kind == EventKind.APPROVAL_DECIDED and not future.done():
            future.set_result(DecisionMeta.decode(meta))

    def request(self, name: str, context: bytes, deadline_at: float | None, *,
                was: tuple[str, ...] = ()) -> tuple[int, asyncio.Future[DecisionMeta]]:
        """Issue ``duro.approval(name)``: its op and the future its decision resolves.
        Its ``approval_requested`` event is recorded unless the history has it. A history
        that recorded it under a former name (one of ``was``) keeps that name."""
        inst = self._inst
        recorded = inst.recorded.get(inst.next_op)
        if recorded is not None and recorded[0] == "approval" and recorded[1] in was:
            name = recorded[1]
        op = inst._issue("approval", name)
        future: asyncio.Future[DecisionMeta] = inst.loop.create_future()
        self.waiting[op] = (name, future)
        if op not in inst.recorded:
            inst.record(EventKind.APPROVAL_REQUESTED, op=op, name=name, data=context,
                        meta=ApprovalMeta(approval_id=approval_id_of(inst.run_id, op),
                                          deadline_at=deadline_at).encode())
        return op, future

    def timed_out(self, op: int) -> None:
        """The approval at ``op`` got no decision in time: recorded unless the history
        closed it already (a replay)."""
        if op in self.closed:
            return
        name = self.waiting[op][0]  # the name it was requested under
        self.closed.add(op)
        self._inst.record(EventKind.APPROVAL_TIMED_OUT, op=op, name=name,
                          meta=ApprovalMeta(approval_id=approval_id_of(self._inst.run_id,
                                                                       op)).encode())
