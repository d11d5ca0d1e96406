"""One HTTP client per event loop for the RPC steps (the caller's polls and cancels, the
callee's callbacks).

A new ``httpx.AsyncClient`` per request cost about 40 ms of CPU (it builds an SSL context
even for ``http://``) and a new connection: with 50 calls in flight that was seconds of
each side's CPU per round, and it bounded calls/s (bench/bench_rpc.py). The shared client
keeps connections alive between the polls of a callee and the callbacks to a caller.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["shared_client"]

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = \
    weakref.WeakKeyDictionary()


def shared_client() -> httpx.AsyncClient:
    """This event loop's client (made on first use; each request gives its timeout)."""
    import httpx

    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client.is_closed:
        # Idle connections are dropped before a server drops them (uvicorn: after 5 s,
        # httpx's default too), so that a request never races the server's close.
        client = httpx.AsyncClient(limits=httpx.Limits(
            max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0))
        _CLIENTS[loop] = client
    return client
