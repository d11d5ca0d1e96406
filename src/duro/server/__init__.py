"""duro's HTTP API (extra ``server``: Starlette and uvicorn): :func:`create_app` makes the
ASGI application over a :class:`duro.Client`; ``duro serve`` serves it. Webhook routes
can require a provider's HMAC signature (:class:`WebhookAuth`). See docs/http.md.
"""

from __future__ import annotations

try:
    from duro.server._app import MAX_WAIT, create_app, stop_streams
    from duro.server._problems import problem_of
    from duro.server._webhooks import (
        SIGNAL_ID_HEADER,
        WEBHOOK_ROUTES,
        InvalidSignatureError,
        WebhookAuth,
        verify,
    )
except ImportError as exc:  # pragma: no cover - depends on the extra
    if exc.name not in ("starlette", "uvicorn"):
        raise
    raise ImportError("duro's HTTP API needs the 'server' extra: "
                      "pip install 'duro[server]'") from exc

__all__ = ["MAX_WAIT", "SIGNAL_ID_HEADER", "WEBHOOK_ROUTES", "InvalidSignatureError",
           "WebhookAuth", "create_app", "problem_of", "stop_streams", "verify"]
