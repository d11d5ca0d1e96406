"""Chaining interceptors' hooks: one function for client and worker sides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["chain", "check_interceptors", "linked", "overriding"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def overriding(interceptors: Sequence[T], base: type, hook: str) -> list[T]:
    """The interceptors whose class overrides ``hook`` of ``base`` (the others would only
    pass the call on)."""
    # Asked for every step attempt: the answer depends on the classes alone, so it is
    # worked out once per combination of classes (a handful in any program).
    key = (tuple(map(type, interceptors)), base, hook)
    found = _overriding.get(key)
    if found is None:
        default = getattr(base, hook)
        found = tuple(n for n, i in enumerate(interceptors)
                      if isinstance(i, base) and getattr(type(i), hook) is not default)
        if len(_overriding) >= 1024:
            _overriding.clear()  # classes made on the fly: bounded all the same
        _overriding[key] = found
    return [interceptors[n] for n in found]


_overriding: dict[tuple[tuple[type, ...], type, str], tuple[int, ...]] = {}


def chain(interceptors: Sequence[object], base: type, hook: str, last: F) -> F:
    """``last`` called through the interceptors' ``hook`` methods, first to last: each
    gets ``(input, next)``. Sync and async hooks alike (a hook returns what ``next``
    returns, awaited or not). With none overriding it, ``last`` itself."""
    return linked(overriding(interceptors, base, hook), hook, last)


def linked(hooks: Sequence[object], hook: str, last: F) -> F:
    """:func:`chain` over interceptors known to override ``hook`` (those
    :func:`overriding` returned: a caller that asked it first need not ask again)."""
    call: Any = last
    for interceptor in reversed(hooks):
        call = _link(getattr(interceptor, hook), call)
    return call  # type: ignore[no-any-return]


def _link(method: Callable[[Any, Any], Any], following: Any) -> Callable[[Any], Any]:
    # Positional, whatever the hook names its parameters.
    return lambda input: method(input, following)


def check_interceptors(interceptors: Any, *bases: type) -> list[Any]:
    """Interceptors as given to a client or a worker: a sequence of instances of the
    bases; anything else is refused at once (not at the first call).

    Raises:
        InvalidArgumentError: Not a sequence, or an element that is not an interceptor.
    """
    from duro.errors import InvalidArgumentError

    if isinstance(interceptors, str | bytes) or not isinstance(interceptors, Sequence):
        raise InvalidArgumentError(
            f"interceptors must be a list of interceptors, not {type(interceptors).__name__}")
    names = " or ".join(b.__name__ for b in bases)
    for interceptor in interceptors:
        if not isinstance(interceptor, bases):
            raise InvalidArgumentError(f"{interceptor!r} is not a {names} (subclass one)")
    return list(interceptors)
