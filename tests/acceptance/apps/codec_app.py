"""A workflow whose payloads are secret, for the codec acceptance test: the worker (the
real `duro worker`) and the CLI get the chain from ``--codec codec_app:make_chain``, the
keys from ``DURO_KEYS`` / ``DURO_KEY_ID``."""

from __future__ import annotations

import asyncio

import duro
from duro.serde import AesGcmCodec, CodecChain, ZstdCodec


def make_chain() -> CodecChain:
    return CodecChain([ZstdCodec(), AesGcmCodec.from_env()])


@duro.step(name="codec_app.slow_echo")
async def slow_echo(text: str, i: int) -> str:
    await asyncio.sleep(0.05)
    return f"{text}#{i}"


@duro.workflow(name="codec_app.guarded")
async def guarded(secret: str, n: int) -> list[str]:
    out = [await slow_echo(secret, i) for i in range(n)]
    duro.set_state("last", out[-1])
    return out
