"""The typed stub form of ``duro.call``: ``Endpoint.stub(Protocol)`` (docs/rpc.md).

The callee's operations are declared once as a class of ``async def`` methods (usually a
``typing.Protocol``); the stub is typed as that class, so ``await payments.charge(order_id,
amount)`` type-checks its arguments and result under mypy, and each method call is
``duro.call(endpoint, prefix + method name, *args, type=<its return annotation>)``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from duro._checks import check_id, check_seconds
from duro.errors import InvalidArgumentError
from duro.rpc._call import call
from duro.rpc._endpoint import Endpoint

__all__ = ["OperationStub", "make_stub"]


class OperationStub:
    """What ``Endpoint.stub`` returns (typed as the declared class): one awaitable
    ``duro.call`` per declared method."""

    def __init__(self, endpoint: Endpoint, protocol: type, operations: dict[str, tuple[str,
                 Any]], timeout: float | timedelta | None) -> None:
        self._endpoint, self._protocol = endpoint, protocol
        self._operations, self._timeout = operations, timeout

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        try:
            operation, hint = self._operations[name]
        except KeyError:
            raise AttributeError(f"{self._protocol.__name__} declares no operation "
                                 f"{name!r}") from None

        async def invoke(*args: Any, **kwargs: Any) -> Any:
            return await call(self._endpoint, operation, *args, timeout=self._timeout,
                              type=hint, **kwargs)

        invoke.__name__ = name
        return invoke

    def __repr__(self) -> str:
        return f"<duro stub {self._protocol.__name__} at {self._endpoint.url}>"


def make_stub(endpoint: Endpoint, protocol: Any, prefix: str,
              timeout: float | timedelta | None) -> OperationStub:
    """Check the declaration (a class of ``async def`` methods) and make the stub."""
    if not inspect.isclass(protocol):
        raise InvalidArgumentError(f"stub() takes a class declaring the operations (a "
                                   f"typing.Protocol of async methods), not {protocol!r}")
    if not isinstance(prefix, str):
        raise InvalidArgumentError(f"stub() prefix must be a str, not {prefix!r}")
    check_seconds(timeout, "timeout")
    operations: dict[str, tuple[str, Any]] = {}
    for name, member in inspect.getmembers(protocol, inspect.isfunction):
        if name.startswith("_"):
            continue
        if not inspect.iscoroutinefunction(member):
            raise InvalidArgumentError(f"{protocol.__name__}.{name} must be an async def: "
                                       "a remote operation is awaited")
        operations[name] = (check_id(prefix + name, "operation name", limit=200),
                            _returns(member))
    if not operations:
        raise InvalidArgumentError(f"{protocol.__name__} declares no operation (no public "
                                   "async def method)")
    return OperationStub(endpoint, protocol, operations, timeout)


def _returns(method: Any) -> Any:
    """The method's return annotation, to convert the result to (Any if unresolvable)."""
    try:
        return typing.get_type_hints(method).get("return", Any)
    except (NameError, TypeError):
        return Any
