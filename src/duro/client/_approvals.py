"""``client.approvals``: human approvals across runs — list them, read one, decide it.

What a workflow's ``await duro.approval(name, context)`` waits for. The store keeps a read
model of every approval requested (``store/_approvals.py``); deciding takes the decision
there atomically (a second decision is refused, the first stands) and sends it to the run
in the same transaction, so a decision taken while no worker runs is delivered when one
does. The run records it in its history (``approval_decided``: who, the verdict, the
comment, when).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
import getpass
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from duro._checks import check_count, check_id, shown
from duro._clock import iso, parse_time, utc
from duro.errors import ApprovalNotFoundError, InvalidArgumentError
from duro.store._approvals import APPROVAL_STATUSES, ApprovalRecord, ApprovalStore

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = [
    "APPROVAL_STATUSES",
    "ApprovalInfo",
    "ApprovalPage",
    "Approvals",
    "check_decision",
    "check_filters",
    "decode_cursor",
    "default_decider",
    "encode_cursor",
]

MAX_COMMENT = 4000
"""Characters of a decision's comment at most."""
MAX_LIMIT = 1000
"""Approvals of one page at most."""
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,2000}")


@dataclass(frozen=True, kw_only=True)
class ApprovalInfo:
    """An approval as listed (``client.approvals``). Times are UTC datetimes."""

    approval_id: str
    workflow_id: str
    run_id: str
    workflow_name: str
    name: str
    """The approval's name (``duro.approval(name, ...)``)."""
    context: Any
    """The JSON value the workflow gave the approver (decoded through the codecs)."""
    requested_at: dt.datetime
    deadline: dt.datetime | None
    """When it times out (None: it waits forever)."""
    status: str
    """``pending``, ``approved``, ``rejected``, ``timed_out`` or ``run_ended``."""
    decided_by: str | None = None
    comment: str | None = None
    decided_at: dt.datetime | None = None
    """When it was decided (or timed out, or its run ended)."""
    namespace: str = "default"

    @classmethod
    def from_record(cls, record: ApprovalRecord, context: Any) -> ApprovalInfo:
        requested = utc(record.requested_at)
        assert requested is not None
        return cls(approval_id=record.approval_id, workflow_id=record.workflow_id,
                   run_id=record.run_id, workflow_name=record.workflow_name,
                   name=record.name, context=context, requested_at=requested,
                   deadline=utc(record.deadline_at), status=record.status,
                   decided_by=record.decided_by, comment=record.comment,
                   decided_at=utc(record.decided_at), namespace=record.namespace)

    def to_json(self) -> dict[str, Any]:
        """The approval as JSON (``duro approvals --json``, ``GET /v1/approvals``)."""
        return {"approval_id": self.approval_id, "workflow_id": self.workflow_id,
                "run_id": self.run_id, "workflow_name": self.workflow_name,
                "name": self.name, "context": self.context,
                "requested_at": iso(self.requested_at), "deadline": iso(self.deadline),
                "status": self.status, "decided_by": self.decided_by,
                "comment": self.comment, "decided_at": iso(self.decided_at),
                "namespace": self.namespace}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalInfo:
        """The approval from its JSON form (:meth:`to_json`)."""
        requested = parse_time(data["requested_at"])
        assert requested is not None
        return cls(approval_id=data["approval_id"], workflow_id=data["workflow_id"],
                   run_id=data["run_id"], workflow_name=data["workflow_name"],
                   name=data["name"], context=data.get("context"), requested_at=requested,
                   deadline=parse_time(data.get("deadline")), status=data["status"],
                   decided_by=data.get("decided_by"), comment=data.get("comment"),
                   decided_at=parse_time(data.get("decided_at")),
                   namespace=data.get("namespace", "default"))


@dataclass(frozen=True, kw_only=True)
class ApprovalPage:
    """One page of approvals (:meth:`Approvals.list`)."""

    approvals: list[ApprovalInfo]
    """Oldest request first (ties by approval id)."""
    next_cursor: str | None
    """Pass it as ``cursor`` for the next page; None when this page is the last."""

    def to_json(self) -> dict[str, Any]:
        """``{"approvals": [...], "next_cursor": ...}``."""
        return {"approvals": [a.to_json() for a in self.approvals],
                "next_cursor": self.next_cursor}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalPage:
        return cls(approvals=[ApprovalInfo.from_json(a) for a in data["approvals"]],
                   next_cursor=data.get("next_cursor"))


def encode_cursor(requested_at: float, approval_id: str) -> str:
    """The opaque cursor after an approval (its place in the listing order)."""
    raw = orjson.dumps(["a1", requested_at, approval_id])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object) -> tuple[float, str]:
    """The (requested_at, approval_id) a cursor continues after.

    Raises:
        InvalidArgumentError: Not a cursor :func:`encode_cursor` made.
    """
    bad = InvalidArgumentError(f"malformed cursor {shown(cursor)}: pass the next_cursor of "
                               "an earlier page, as it was given")
    if not isinstance(cursor, str) or not _BASE64URL.fullmatch(cursor):
        raise bad
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not (isinstance(raw, list) and len(raw) == 3 and raw[0] == "a1"
            and type(raw[1]) in (int, float) and math.isfinite(raw[1])
            and isinstance(raw[2], str) and raw[2]):
        raise bad
    return float(raw[1]), raw[2]


def check_filters(status: str | None, limit: int) -> None:
    """Refuse a listing's unknown status or a limit out of 1..:data:`MAX_LIMIT`.

    Raises:
        InvalidArgumentError: Either.
    """
    if status is not None and status not in APPROVAL_STATUSES:
        raise InvalidArgumentError(f"status must be one of {', '.join(APPROVAL_STATUSES)} "
                                   f"(or None: all), not {shown(status)}")
    check_count(limit, "limit", maximum=MAX_LIMIT)


def check_decision(approval_id: object, by: object, comment: object) -> None:
    """Refuse a decision's malformed id, decider or comment (nothing is stored).

    Raises:
        InvalidArgumentError: An empty id or decider (or one with control characters or
            too long), a comment that is not text or over :data:`MAX_COMMENT` characters.
    """
    check_id(approval_id, "approval id")
    check_id(by, "decider (by)", limit=200)
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise InvalidArgumentError(f"comment must be text of at most {MAX_COMMENT} "
                                   f"characters, not {shown(comment)}")


def default_decider() -> str:
    """Who decides when nobody says: the OS user (``duro approve`` without ``--by``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


class Approvals:
    """Human approvals of the client's store: ``client.approvals``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _store(self) -> ApprovalStore:
        self._client._require_open()
        store = self._client.store
        if not isinstance(store, ApprovalStore):
            raise InvalidArgumentError(f"the store {type(store).__name__} keeps no approvals")
        return store

    async def _info(self, record: ApprovalRecord) -> ApprovalInfo:
        data = await self._client.payloads.decode(record.context)
        return ApprovalInfo.from_record(record, None if data is None else orjson.loads(data))

    async def list(self, *, status: str | None = "pending", workflow: str | None = None,
                   workflow_id: str | None = None, name: str | None = None, limit: int = 100,
                   cursor: str | None = None) -> ApprovalPage:
        """A page of approvals in the client's namespace, oldest request first.

        Args:
            status: ``pending`` (the default: the inbox), another status, or None for all.
            workflow: Only those of runs of this workflow (its name).
            workflow_id: Only those of runs with this workflow id.
            name: Only approvals of this name.
            limit: At most this many (1 to 1,000).
            cursor: The ``next_cursor`` of the previous page.

        Raises:
            InvalidArgumentError: An unknown status, a limit out of range, a malformed
                cursor.
        """
        check_filters(status, limit)
        after = None if cursor is None else decode_cursor(cursor)
        records = await self._store().list_approvals(
            status=status, workflow=workflow, workflow_id=workflow_id, name=name,
            limit=limit + 1, after=after, namespace=self._client.namespace)
        more = len(records) > limit
        records = records[:limit]
        last = records[-1] if more else None
        return ApprovalPage(approvals=[await self._info(r) for r in records],
                            next_cursor=None if last is None
                            else encode_cursor(last.requested_at, last.approval_id))

    async def get(self, approval_id: str) -> ApprovalInfo:
        """One approval, whatever its status.

        Raises:
            ApprovalNotFoundError: No approval of this id in the client's namespace.
            InvalidArgumentError: A malformed id.
        """
        check_id(approval_id, "approval id")
        record = await self._store().get_approval(approval_id,
                                                  namespace=self._client.namespace)
        if record is None:
            raise ApprovalNotFoundError(f"no approval with id {approval_id!r}")
        return await self._info(record)

    async def decide(self, approval_id: str, *, approved: bool, by: str | None = None,
                     comment: str | None = None) -> ApprovalInfo:
        """Approve or reject a pending approval; the waiting run gets the decision (now,
        or when a worker next runs it) and records it in its history.

        Args:
            approval_id: Its id (``ApprovalInfo.approval_id``, ``Decision.approval_id``).
            approved: The verdict.
            by: Who decides (recorded); default: the OS user.
            comment: Why (recorded), at most 4,000 characters.

        Raises:
            ApprovalNotFoundError: No approval of this id in the client's namespace.
            ApprovalNotPendingError: Decided already (the first decision stands), timed
                out, or its run ended; ``status`` says which.
            InvalidArgumentError: A malformed id, decider or comment.
            Nothing is stored when it raises.
        """
        decider = default_decider() if by is None else by
        check_decision(approval_id, decider, comment)
        if not isinstance(approved, bool):
            raise InvalidArgumentError(f"approved must be True or False, not {shown(approved)}")
        record = await self._store().decide_approval(
            approval_id, approved=approved, by=decider, comment=comment,
            now=self._client.clock.now(), namespace=self._client.namespace)
        self._client._local.inbox_hint(record.run_id)
        return await self._info(record)

    async def approve(self, approval_id: str, *, by: str | None = None,
                      comment: str | None = None) -> ApprovalInfo:
        """:meth:`decide` with ``approved=True``."""
        return await self.decide(approval_id, approved=True, by=by, comment=comment)

    async def reject(self, approval_id: str, *, by: str | None = None,
                     comment: str | None = None) -> ApprovalInfo:
        """:meth:`decide` with ``approved=False``."""
        return await self.decide(approval_id, approved=False, by=by, comment=comment)

    async def all(self, *, status: str | None = "pending", workflow: str | None = None,
                  workflow_id: str | None = None,
                  name: str | None = None) -> builtins.list[ApprovalInfo]:
        """Every approval matching the filters, page after page (``duro approvals``)."""
        out: builtins.list[ApprovalInfo] = []
        cursor = None
        while True:
            page = await self.list(status=status, workflow=workflow, workflow_id=workflow_id,
                                   name=name, limit=MAX_LIMIT, cursor=cursor)
            out.extend(page.approvals)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor
