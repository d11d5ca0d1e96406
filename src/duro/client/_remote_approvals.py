"""``client.approvals`` of a remote client: the approval routes of the server
(``/v1/approvals``), with the same checks as embedded (nothing sent when refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duro._checks import check_id
from duro.client._approvals import (
    ApprovalInfo,
    ApprovalPage,
    Approvals,
    check_decision,
    check_filters,
    decode_cursor,
    default_decider,
)
from duro.client._http import segment
from duro.errors import InvalidArgumentError

if TYPE_CHECKING:
    from duro.client._remote import RemoteClient

__all__ = ["RemoteApprovals"]


class RemoteApprovals(Approvals):
    """``client.approvals`` through a server. With an API token, the server records the
    token's name as the decider (``by`` may be left out, or must be that name)."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    def _path(self, approval_id: str, *rest: str) -> str:
        check_id(approval_id, "approval id")
        return "/".join(["/v1/approvals", segment(approval_id, "approval id"), *rest])

    async def list(self, *, status: str | None = "pending", workflow: str | None = None,
                   workflow_id: str | None = None, name: str | None = None, limit: int = 100,
                   cursor: str | None = None) -> ApprovalPage:
        """``GET /v1/approvals``: :meth:`Approvals.list`."""
        check_filters(status, limit)
        if cursor is not None:
            decode_cursor(cursor)
        params = {"status": status or "all", "limit": str(limit), "workflow": workflow,
                  "workflow_id": workflow_id, "name": name, "cursor": cursor}
        _, data = await self._remote.call(
            "GET", "/v1/approvals", params={k: v for k, v in params.items() if v is not None},
            idempotent=True)
        return ApprovalPage.from_json(data)

    async def get(self, approval_id: str) -> ApprovalInfo:
        """``GET /v1/approvals/{id}``: :meth:`Approvals.get`."""
        _, data = await self._remote.call("GET", self._path(approval_id), idempotent=True)
        return ApprovalInfo.from_json(data)

    async def decide(self, approval_id: str, *, approved: bool, by: str | None = None,
                     comment: str | None = None) -> ApprovalInfo:
        """``POST /v1/approvals/{id}/approve`` (or ``/reject``): :meth:`Approvals.decide`.
        Without ``by``: the token's name with a token, else the OS user."""
        if by is None and not self._remote.transport.has_token:
            by = default_decider()
        check_decision(approval_id, by or "token", comment)
        if not isinstance(approved, bool):
            raise InvalidArgumentError(f"approved must be True or False, not {approved!r}")
        body: dict[str, Any] = {}
        if by is not None:
            body["by"] = by
        if comment is not None:
            body["comment"] = comment
        # Not retried after an ambiguous failure: a decision sent twice would be refused
        # the second time (the first stands), which would hide that it went through.
        _, data = await self._remote.call(
            "POST", self._path(approval_id, "approve" if approved else "reject"), body=body)
        return ApprovalInfo.from_json(data)
