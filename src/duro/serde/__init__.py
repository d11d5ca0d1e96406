"""Payload conversion: JSON by default, decoded by type hints."""

from __future__ import annotations

from duro.serde._json import convert, decode, encode, hints_of

__all__ = ["convert", "decode", "encode", "hints_of"]
