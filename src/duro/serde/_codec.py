"""The codec protocol and the chain that applies codecs to payloads.

A codec turns payloads into other payloads and back: compression, encryption,
offloading to a blob store. It works on lists (one call can batch: a history's payloads
decoded at once) and is async (it may do I/O).

Every codec *wraps*: the payload it encodes is written in its stored form
(:func:`~duro.serde.to_stored`, so its metadata travels with it), transformed, and
becomes the data of a new payload whose ``metadata["encoding"]`` is the codec's tag. A
payload is therefore an onion whose outermost tag says which codec peels the next layer.
Decoding peels layers by tag until the encoding is not a codec's (``"json"``), so it does
not depend on the order of the chain that reads it: a payload written by an older chain
(fewer codecs, other order, none at all) decodes under a newer one as long as every codec
it used is still configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from duro.errors import CodecConfigError, CodecNotConfiguredError, PayloadDecodeError
from duro.serde._payload import Payload, from_stored, to_stored

__all__ = ["DURO_CODEC_PREFIX", "MAX_LAYERS", "CodecChain", "PayloadCodec"]

DURO_CODEC_PREFIX = "duro/"
"""Encodings in this namespace are codec layers: one no codec of the chain owns is an
error (not data to hand to the converter)."""

MAX_LAYERS = 16
"""Decoding stops with an error past this many layers (stored bytes are data, not code:
a crafted payload must not make a reader loop)."""


@runtime_checkable
class PayloadCodec(Protocol):
    """What a codec is.

    ``encoding`` is the tag the codec writes in ``metadata["encoding"]`` of the payloads
    it encodes; the chain hands :meth:`decode` only payloads carrying that tag.

    :meth:`encode` returns exactly one payload per input, in order; a payload it leaves
    alone (too small to compress, say) is returned as is. :meth:`decode` returns, for each
    payload, the payload that was given to :meth:`encode`. Neither mutates its input.
    """

    @property
    def encoding(self) -> str: ...

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]: ...

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]: ...


class CodecChain:
    """Codecs applied in order on encode; decoding peels layers by their tags.

    The empty chain is the default: :meth:`encode_stored` returns the same bytes
    objects and :meth:`decode_stored` only checks each first byte (callers on a hot path
    can test :attr:`empty` and skip the call altogether).

    Raises:
        CodecConfigError: Two codecs claim the same encoding tag.
    """

    __slots__ = ("_by_encoding", "_codecs")

    def __init__(self, codecs: Iterable[PayloadCodec] = ()) -> None:
        self._codecs = tuple(codecs)
        self._by_encoding: dict[str, PayloadCodec] = {}
        for codec in self._codecs:
            if not isinstance(codec, PayloadCodec):
                raise CodecConfigError(f"{codec!r} is not a payload codec "
                                       "(it needs encoding, async encode and async decode)")
            if codec.encoding in self._by_encoding:
                raise CodecConfigError(f"two codecs in one chain write {codec.encoding!r}")
            self._by_encoding[codec.encoding] = codec

    @property
    def codecs(self) -> tuple[PayloadCodec, ...]:
        return self._codecs

    @property
    def empty(self) -> bool:
        """True when the chain has no codec (encoding changes nothing)."""
        return not self._codecs

    def __repr__(self) -> str:
        return f"CodecChain({list(self._codecs)!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Apply every codec, in order."""
        out = list(payloads)
        for codec in self._codecs:
            encoded = await codec.encode(out)
            if len(encoded) != len(out):
                raise RuntimeError(f"codec {codec!r} returned {len(encoded)} payloads "
                                   f"for {len(out)}")
            out = encoded
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Peel codec layers until no payload carries a codec's tag.

        Payloads are batched: payloads written by this chain (or by an older one with
        fewer codecs) take one ``decode`` call per codec, whatever their number; a
        payload written in another order takes another round.

        Raises:
            CodecNotConfiguredError: A payload carries a ``duro/`` codec tag that no codec
                of this chain owns.
            PayloadDecodeError: (or a subclass, from a codec) A layer cannot be undone.
        """
        out = list(payloads)
        pending = [i for i, p in enumerate(out) if self._is_layer(p)]
        for _ in range(MAX_LAYERS):
            if not pending:
                return out
            await self._peel(out, pending)
            pending = [i for i in pending if self._is_layer(out[i])]
        if pending:
            raise PayloadDecodeError(f"payload has more than {MAX_LAYERS} codec layers")
        return out

    def _is_layer(self, payload: Payload) -> bool:
        encoding = payload.metadata.get("encoding", "")
        if encoding in self._by_encoding:
            return True
        if encoding.startswith(DURO_CODEC_PREFIX):
            raise CodecNotConfiguredError(
                f"payload was encoded by codec {encoding!r}, which this codec chain does "
                f"not have ({self!r})", encoding=encoding)
        return False

    async def _peel(self, out: list[Payload], pending: list[int]) -> None:
        """One round: each codec, last to first, decodes the payloads that carry its tag
        at that moment, so a payload written by this very chain is peeled whole in one
        round, with one ``decode`` call per codec for the whole batch."""
        for codec in reversed(self._codecs):
            indexes = [i for i in pending if out[i].metadata.get("encoding") == codec.encoding]
            if not indexes:
                continue
            decoded = await codec.decode([out[i] for i in indexes])
            if len(decoded) != len(indexes):
                raise RuntimeError(f"codec {codec!r} returned {len(decoded)} payloads "
                                   f"for {len(indexes)}")
            for i, payload in zip(indexes, decoded, strict=True):
                out[i] = payload

    async def encode_stored(self, items: Sequence[bytes | None]) -> list[bytes | None]:
        """Encode payloads given in their stored form; ``None`` stays ``None``.

        With the empty chain the result holds the very same bytes objects.
        """
        if not self._codecs:
            return list(items)
        present = [(i, item) for i, item in enumerate(items) if item is not None]
        encoded = await self.encode([from_stored(item) for _, item in present])
        return _replaced(items, present, encoded)

    async def decode_stored(self, items: Sequence[bytes | None]) -> list[bytes | None]:
        """Undo the codecs of payloads given in their stored form; ``None`` stays ``None``.

        Plain JSON (any stored bytes not starting with NUL) is returned as the same
        object, unparsed; only envelopes are decoded. What comes back is the stored form
        of the innermost payload (plain JSON bytes for the data converter's JSON).

        Raises:
            PayloadDecodeError: (or a subclass) See :meth:`decode`.
        """
        envelopes = [(i, item) for i, item in enumerate(items) if item and item[0] == 0]
        if not envelopes:
            return list(items)
        decoded = await self.decode([from_stored(item) for _, item in envelopes])
        return _replaced(items, envelopes, decoded)


def _replaced(items: Sequence[bytes | None], taken: list[tuple[int, bytes]],
              payloads: list[Payload]) -> list[bytes | None]:
    out = list(items)
    for (i, _), payload in zip(taken, payloads, strict=True):
        out[i] = to_stored(payload)
    return out
