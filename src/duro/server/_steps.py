"""The routes of steps completed from outside (``client.steps``): ``/v1/steps/{token}/
complete``, ``/fail`` and ``/heartbeat``, by the token the step handed out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from duro.server._problems import body_of, field, path_id
from duro.server._routes import Api

__all__ = ["complete_step", "fail_step", "heartbeat_step"]


def _token(request: Request) -> str:
    return path_id(request, "token", "completion token")


async def complete_step(request: Request, api: Api) -> Response:
    token = _token(request)
    body = await body_of(request, frozenset({"result"}))
    await api.client.steps.complete(token, body.get("result"))
    return Response(status_code=204)


async def fail_step(request: Request, api: Api) -> Response:
    token = _token(request)
    body = await body_of(request, frozenset({"message", "type", "non_retryable"}))
    await api.client.steps.fail(token, field(body, "message", str, required=True),
                                type=field(body, "type", str, "ExternalError"),
                                non_retryable=field(body, "non_retryable", bool, False))
    return Response(status_code=204)


async def heartbeat_step(request: Request, api: Api) -> Response:
    token = _token(request)
    body = await body_of(request, frozenset({"details"}))
    await api.client.steps.heartbeat(token, body.get("details"))
    return Response(status_code=204)
