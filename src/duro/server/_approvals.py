"""The routes of human approvals (``client.approvals``): the inbox of pending approvals,
one approval, and deciding it.

Who decides: with API tokens on, the token's name (a body ``by`` that names anyone else
is refused: a token must not sign for another person); without tokens, the body's ``by``,
else ``anonymous`` (serve without tokens on loopback only).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from duro.client._approvals import MAX_LIMIT
from duro.errors import InvalidArgumentError
from duro.server._problems import body_of, field, json, path_id, query_int
from duro.server._routes import Api

__all__ = ["ANONYMOUS", "approve", "get_approval", "list_approvals", "reject"]

ANONYMOUS = "anonymous"
"""The decider recorded for a request without a token and without ``by``."""
_DECIDE = frozenset({"by", "comment"})


async def list_approvals(request: Request, api: Api) -> Response:
    query = request.query_params
    status: str | None = query.get("status", "pending")
    page = await api.client.approvals.list(
        status=None if status == "all" else status, workflow=query.get("workflow"),
        workflow_id=query.get("workflow_id"), name=query.get("name"),
        limit=query_int(request, "limit", 100, minimum=1, maximum=MAX_LIMIT),
        cursor=query.get("cursor"))
    return json(page.to_json())


async def get_approval(request: Request, api: Api) -> Response:
    info = await api.client.approvals.get(path_id(request, "approval_id", "approval id"))
    return json(info.to_json())


async def approve(request: Request, api: Api) -> Response:
    return await _decide(request, api, approved=True)


async def reject(request: Request, api: Api) -> Response:
    return await _decide(request, api, approved=False)


async def _decide(request: Request, api: Api, *, approved: bool) -> Response:
    approval_id = path_id(request, "approval_id", "approval id")
    body = await body_of(request, _DECIDE)
    by: str | None = field(body, "by", str)
    token = getattr(request.state, "token", None)
    if token is not None:
        if by is not None and by != token.name:
            raise InvalidArgumentError(
                f"with API tokens the decider is the token's name ({token.name!r}): a "
                f"request may not decide as {by[:80]!r}")
        by = token.name
    info = await api.client.approvals.decide(
        approval_id, approved=approved, by=by or ANONYMOUS,
        comment=field(body, "comment", str))
    return json(info.to_json())
