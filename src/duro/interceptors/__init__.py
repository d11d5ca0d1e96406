"""Interceptors: hooks around what clients do (and, later, what workers do).

See docs/interceptors.md.
"""

from __future__ import annotations

from duro.interceptors._client import (
    CancelInput,
    ClientInterceptor,
    QueryInput,
    SignalInput,
    StartInput,
    TerminateInput,
    UpdateInput,
)

__all__ = [
    "CancelInput",
    "ClientInterceptor",
    "QueryInput",
    "SignalInput",
    "StartInput",
    "TerminateInput",
    "UpdateInput",
]
