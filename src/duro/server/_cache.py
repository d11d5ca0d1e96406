"""The durable step cache's routes: ``GET /v1/cache`` (entry counts per step and scope)
and ``DELETE /v1/cache`` (invalidation), over ``client.cache`` of the request's
namespace."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from duro._checks import shown
from duro.errors import InvalidArgumentError
from duro.server._problems import json
from duro.server._routes import Api

__all__ = ["clear_cache", "list_cache"]


async def list_cache(request: Request, api: Api) -> Response:
    params = request.query_params
    groups = await api.client.cache.list(step=params.get("step"), scope=params.get("scope"))
    return json({"entries": [g.to_json() for g in groups]})


async def clear_cache(request: Request, api: Api) -> Response:
    params = request.query_params
    deleted = await api.client.cache.invalidate(
        step=params.get("step"), scope=params.get("scope"),
        expired=_flag(params.get("expired"), "expired"))
    return json({"deleted": deleted})


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw in ("false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise InvalidArgumentError(f"{name} must be true or false, not {shown(raw)}")
