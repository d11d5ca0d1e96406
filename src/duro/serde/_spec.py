"""Loading a codec chain from a ``module:factory`` spec (the CLI's ``--codec``).

The spec names a callable (or an object) by import path: ``myapp.codecs:make_chain``,
``myapp.codecs:Codecs.chain``. A callable is called with no arguments; what it returns
(or the object itself) must be a :class:`CodecChain`, one codec, or a sequence of codecs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from duro.errors import CodecConfigError
from duro.serde._codec import CodecChain, PayloadCodec

__all__ = ["load_codec_chain"]


def load_codec_chain(spec: str) -> CodecChain:
    """The codec chain that ``spec`` (``"module:attribute"``) names or makes.

    Raises:
        CodecConfigError: The spec is malformed, the module does not import, the
            attribute does not exist, the factory raises, or what it gives is not a
            chain or codecs. The message names the spec and what went wrong.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name.strip() or not attr_path.strip():
        raise CodecConfigError(f"codec spec {spec!r} must be 'module:factory' "
                               "(e.g. 'myapp.codecs:make_chain')")
    try:
        target: object = importlib.import_module(module_name.strip())
    except Exception as exc:
        raise CodecConfigError(f"codec spec {spec!r}: cannot import module "
                               f"{module_name!r}: {type(exc).__name__}: {exc}") from exc
    for name in attr_path.strip().split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CodecConfigError(f"codec spec {spec!r}: {name!r} not found in "
                                   f"{module_name!r}") from None
    if isinstance(target, type) or (
            callable(target) and not isinstance(target, (CodecChain, PayloadCodec))):
        try:
            target = target()
        except Exception as exc:
            raise CodecConfigError(f"codec spec {spec!r}: the factory raised "
                                   f"{type(exc).__name__}: {exc}") from exc
    return _as_chain(spec, target)


def _as_chain(spec: str, value: object) -> CodecChain:
    if isinstance(value, CodecChain):
        return value
    if isinstance(value, PayloadCodec) and not isinstance(value, type):
        return CodecChain([value])
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return CodecChain(value)  # refuses what is not a codec, naming it
    raise CodecConfigError(f"codec spec {spec!r} gave {type(value).__name__}, not a "
                           "CodecChain, a codec or a list of codecs")
