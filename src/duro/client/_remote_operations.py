"""``client.operations`` of a remote client: another deployment's ``/v1/operations``
routes (docs/rpc.md), with the same checks as embedded (nothing sent when refused)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from duro._checks import check_id, check_seconds
from duro.client._http import segment
from duro.client._operations import Operations
from duro.client._remote_handle import _LONG_POLL
from duro.rpc._state import OperationState

if TYPE_CHECKING:
    from duro.client._remote import RemoteClient

__all__ = ["RemoteOperations"]


class RemoteOperations(Operations):
    """``client.operations`` through the callee's ``duro serve`` (its API token needs
    scope ``write`` to start or cancel, ``read`` to read)."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    def _path(self, name: str, *rest: str) -> str:
        check_id(name, "operation name", limit=200)
        return "/".join(["/v1/operations", segment(name, "operation name"), *rest])

    async def begin(self, name: str, operation_id: str, args: list[Any],
                    kwargs: dict[str, Any], callback: dict[str, str] | None
                    ) -> OperationState:
        """``POST /v1/operations/{name}`` (idempotent by ``operation_id``: retried)."""
        body = {"operation_id": operation_id, "args": args, "kwargs": kwargs,
                "callback": callback}
        _, data = await self._remote.call("POST", self._path(name), body=body,
                                          idempotent=True)
        return OperationState.from_json(data, operation_id)

    async def get(self, name: str, operation_id: str, *,
                  wait: float | timedelta = 0.0) -> OperationState:
        """``GET /v1/operations/{name}/{operation_id}``, with ``?wait=`` long polls of
        at most 30 s each while ``wait`` lasts."""
        check_id(operation_id, "operation id", limit=200)
        path = self._path(name, segment(operation_id, "operation id"))
        deadline = time.monotonic() + (check_seconds(wait, "wait", zero=True) or 0.0)
        while True:
            left = max(0.0, min(deadline - time.monotonic(), _LONG_POLL))
            _, data = await self._remote.call(
                "GET", path, params={"wait": f"{left:g}"} if left else None,
                idempotent=True, timeout=left + self._remote._slack)
            state = OperationState.from_json(data, operation_id)
            if state.done or time.monotonic() >= deadline:
                return state

    async def cancel(self, name: str, operation_id: str) -> OperationState:
        """``POST /v1/operations/{name}/{operation_id}/cancel``."""
        check_id(operation_id, "operation id", limit=200)
        _, data = await self._remote.call(
            "POST", self._path(name, segment(operation_id, "operation id"), "cancel"),
            idempotent=True)
        return OperationState.from_json(data, operation_id)
