"""NaN and Infinity are refused in payloads: JSON has neither.

orjson writes a float NaN or Infinity as ``null``: a step returning ``float("nan")``
would be recorded as ``None`` and its run parked decoding it as a ``float``. So
:func:`~duro.serde.encode` refuses them with ``SerializationError``, at the call that
made the value. Only a payload whose JSON contains ``null`` can hold one: the common
payload costs a byte search, and only those are walked, in Python, to tell ``None``
from a float that is not finite.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

__all__ = ["find_non_finite"]


def find_non_finite(value: Any) -> tuple[str, float] | None:
    """Where in ``value`` (as a subscript path such as ``['prices'][2]``) a float that
    is NaN or infinite is, and that float; None if there is none.

    Looks where orjson looks: dict keys and values, lists, tuples, sets, dataclass
    fields, Enum values, pydantic models' fields.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path, item
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, float) and not math.isfinite(key):
                    return f"a key of {path or 'the dictionary'}", key
                stack.append((f"{path}[{key!r}]", sub))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
        elif isinstance(item, (set, frozenset)):
            stack.extend((f"an item of {path or 'the set'}", sub) for sub in item)
        elif isinstance(item, enum.Enum):
            stack.append((f"{path}.value", item.value))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend((f"{path}.{name}", sub) for name, sub in _fields(item))
        elif callable(getattr(item, "model_dump", None)):  # pydantic v2 model
            stack.extend((f"{path}.{name}", sub) for name, sub in item.model_dump().items())
    return None


def _fields(instance: Any) -> list[tuple[str, Any]]:
    """A dataclass instance's attributes, as orjson serializes them."""
    attrs = getattr(instance, "__dict__", None)
    if attrs is not None:
        return list(attrs.items())
    return [(f.name, getattr(instance, f.name)) for f in dataclasses.fields(instance)]
