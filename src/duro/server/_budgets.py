"""The routes of shared budgets (``client.budgets``), and a start's ``budget`` field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from duro._checks import check_id, shown
from duro.budget._budget import Budget, check_tokens, check_usd
from duro.errors import InvalidArgumentError
from duro.server._problems import body_of, field, json, path_id, query_int
from duro.server._routes import Api

__all__ = ["budgets_in", "list_budgets", "set_budget_limit"]

_LIMIT = frozenset({"usd", "tokens"})


def budgets_in(body: Mapping[str, Any]) -> list[Budget] | None:
    """A start body's ``budget``: one budget's JSON (``duro.Budget.to_json()``) or a
    list of them.

    Raises:
        InvalidArgumentError: Not an object or a list of objects, or a bad budget.
    """
    raw = body.get("budget")
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, dict) for item in items):
        raise InvalidArgumentError(f"budget must be an object or an array of objects, "
                                   f"not {shown(raw)}")
    return [_budget(item) for item in items]


def _budget(raw: Mapping[str, Any]) -> Budget:
    unknown = set(raw) - {"usd", "tokens", "key", "period", "on_exceeded"}
    if unknown:
        raise InvalidArgumentError(f"unknown budget field {shown(min(unknown))}")
    return Budget.from_json(raw)


async def list_budgets(request: Request, api: Api) -> Response:
    key = request.query_params.get("key")
    limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
    found = await api.client.budgets.list(None if key is None else check_id(
        key, "budget key", limit=200), limit=limit)
    return json({"budgets": [b.to_json() for b in found]})


async def set_budget_limit(request: Request, api: Api) -> Response:
    key = path_id(request, "key", "budget key")
    body = await body_of(request, _LIMIT)
    usd = check_usd(field(body, "usd", float))
    tokens = check_tokens(field(body, "tokens", int))
    return json((await api.client.budgets.set_limit(key, usd=usd, tokens=tokens)).to_json())
