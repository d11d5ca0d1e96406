"""The codec chain at the engine's edges: payloads stored encrypted (and compressed,
offloaded) end to end, readable by the client and the worker, rotated keys, missing keys
and large payloads. The codecs themselves are tested in tests/unit/test_codec_*.py."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.serde import (
    AesGcmCodec,
    CodecChain,
    FileBlobStore,
    OffloadCodec,
    Payload,
    ZstdCodec,
    from_stored,
    to_stored,
)
from tests.conftest import run, wait_until
from tests.faults import _pg, _sqlite_path
from tests.peek import database_bytes

SECRET = "s3cr3t-9f41c2-tangerine"  # must never reach the database in clear


def key() -> bytes:
    return os.urandom(32)


def aes(keys: dict[str, bytes], current: str) -> AesGcmCodec:
    return AesGcmCodec(keys, current_key_id=current)


@duro.step(name="codecs.reveal")
async def reveal(text: str) -> str:
    return f"step saw {text}"


@duro.workflow(name="codecs.secretive")
async def secretive(secret: str) -> dict[str, str]:
    seen = await reveal(secret)
    duro.set_state("note", f"state has {secret}")
    signal = await duro.wait_for_signal("more", type=str)
    return {"seen": seen, "signal": signal or ""}



def test_an_encrypted_store_never_holds_the_secret(any_db_url: str) -> None:
    chain = CodecChain([ZstdCodec(), aes({"k1": key()}, "k1")])

    async def main() -> None:
        async with duro.Engine(any_db_url, codec=chain) as engine:
            handle = await engine.start(secretive, SECRET, id="secret-run")
            await wait_until(lambda: _has_state(handle))
            assert await handle.get_state("note") == f"state has {SECRET}"
            await handle.signal("more", f"signal has {SECRET}")
            result = await handle.result(timeout=20)
            assert result == {"seen": f"step saw {SECRET}", "signal": f"signal has {SECRET}"}
            history = await handle.history()
            assert history[0].data == {"args": [SECRET], "kwargs": {}}  # read back in clear
            info = await handle.describe()
            assert info.result_json == result
        dump = database_bytes(any_db_url)
        assert len(dump) > 1000
        assert SECRET.encode() not in dump
        assert base64.b64encode(SECRET.encode()) not in dump

    run(main())


async def _has_state(handle: duro.WorkflowHandle[Any]) -> bool:
    return await handle.get_state("note") is not None


@duro.step(name="codecs.echo")
async def echo(i: int) -> str:
    return f"value {i} " + "x" * 50


@duro.workflow(name="codecs.two_phases")
async def two_phases() -> list[str]:
    first = await echo(1)
    await duro.wait_for_signal("go")
    second = await echo(2)
    return [first, second]


def test_runs_started_under_one_key_finish_under_the_next(any_db_url: str) -> None:
    k1, k2 = key(), key()

    async def main() -> None:
        async with duro.Engine(any_db_url, codec=CodecChain([aes({"k1": k1}, "k1")]),
                               max_cached=0) as engine:
            handle = await engine.start(two_phases, id="rotating")

            async def waiting() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(waiting)
        # Key 2 becomes current; key 1 still decrypts what was written under it.
        rotated = CodecChain([aes({"k1": k1, "k2": k2}, "k2")])
        async with duro.Engine(any_db_url, codec=rotated, max_cached=0) as engine:
            await engine.signal("rotating", "go")
            assert await engine.get_handle("rotating").result(timeout=20) == [
                "value 1 " + "x" * 50, "value 2 " + "x" * 50]

    run(main())


def test_a_payload_whose_key_is_gone_parks_the_run_naming_the_key(any_db_url: str) -> None:
    k1, k2 = key(), key()

    async def main() -> None:
        async with duro.Engine(any_db_url, codec=CodecChain([aes({"k1": k1}, "k1")]),
                               max_cached=0) as engine:
            handle = await engine.start(two_phases, id="lost-key")

            async def waiting() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(waiting)
        async with duro.Engine(any_db_url, codec=CodecChain([aes({"k2": k2}, "k2")]),
                               max_cached=0) as engine:
            handle = engine.get_handle("lost-key")
            await engine.signal("lost-key", "go")

            async def parked() -> bool:
                return (await handle.status()).value == "parked"

            await wait_until(parked, timeout=10)
            info = await handle.describe()
            assert info.error is not None and info.error.type == "UnknownKeyError"
            assert "k1" in info.error.message
        # Nothing is lost: with the key back, the run resumes and completes.
        async with duro.Engine(any_db_url, codec=CodecChain([aes({"k1": k1, "k2": k2}, "k2")]),
                               max_cached=0) as engine:
            await engine.resume("lost-key")
            assert len(await engine.get_handle("lost-key").result(timeout=20)) == 2

    run(main())


class CountingBlobs(FileBlobStore):
    """A file blob store that counts reads (the test's window on replays)."""

    reads = 0

    async def get(self, key: str) -> bytes | None:
        CountingBlobs.reads += 1
        return await super().get(key)


@duro.step(name="codecs.big")
async def big() -> str:
    return "b" * (20 * 1024 * 1024)


@duro.workflow(name="codecs.big_then_wait")
async def big_then_wait() -> int:
    data = await big()
    await duro.wait_for_signal("go")
    return len(data)


def test_a_20_mb_result_is_offloaded_and_read_once_per_replay(any_db_url: str,
                                                              tmp_path: Path) -> None:
    blobs = CountingBlobs(tmp_path / "blobs")
    chain = CodecChain([OffloadCodec(blobs, threshold=64 * 1024)])
    CountingBlobs.reads = 0

    async def main() -> None:
        async with duro.Engine(any_db_url, codec=chain, max_cached=0, lookahead=0) as engine:
            handle = await engine.start(big_then_wait, id="big")

            async def waiting() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(waiting, timeout=30)
        rows = _event_sizes(any_db_url, "big")
        assert rows and max(rows) < 1024, rows
        reads_before = CountingBlobs.reads
        async with duro.Engine(any_db_url, codec=chain, max_cached=0) as engine:
            await engine.signal("big", "go")  # the run is taken up again: one replay
            assert await engine.get_handle("big").result(timeout=30) == 20 * 1024 * 1024
        assert CountingBlobs.reads - reads_before == 1

    run(main(), timeout=120)


def _event_sizes(url: str, workflow_id: str) -> list[int]:
    sql = ("SELECT length(e.data) FROM events e JOIN runs r ON r.run_id = e.run_id "
           "WHERE r.workflow_id = {p} AND e.data IS NOT NULL")
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(_sqlite_path(url)) as conn:
            return [r[0] for r in conn.execute(sql.format(p="?"), (workflow_id,))]
    with _pg(url) as conn:
        return [r[0] for r in conn.execute(sql.format(p="%s"), (workflow_id,))]


def test_a_store_written_without_codecs_reads_the_same_with_them(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, max_cached=0) as engine:
            handle = await engine.start(two_phases, id="plain-then-coded")

            async def waiting() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(waiting)
        async with duro.Engine(db_url, codec=CodecChain([aes({"k": key()}, "k")]),
                               max_cached=0) as engine:
            await engine.signal("plain-then-coded", "go")
            assert len(await engine.get_handle("plain-then-coded").result(timeout=20)) == 2

    run(main())


@pytest.mark.parametrize("where", ["worker", "client"])
def test_a_coded_store_without_the_codec_is_a_clear_error(db_url: str, where: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, codec=CodecChain([aes({"k": key()}, "k")])) as engine:
            handle = await engine.start(secretive, SECRET, id="needs-codec")
            await wait_until(lambda: _has_state(handle))
        async with duro.Engine(db_url, worker=where == "worker") as engine:
            handle = engine.get_handle("needs-codec")
            if where == "client":
                with pytest.raises(duro.PayloadDecodeError, match="duro/aes-gcm"):
                    await handle.get_state("note")
                return
            await engine.signal("needs-codec", "x")

            async def parked() -> bool:
                return (await handle.status()).value == "parked"

            await wait_until(parked, timeout=10)

    run(main())


class SometimesAwaits:
    """A codec that encodes inline, except payloads holding ``slow``: those await (as
    an offload would), for a while, so later writes of the run are ready first."""

    encoding = "tests/sometimes-awaits"
    inline = 0
    awaited = 0

    def _wrap(self, payload: Payload) -> Payload:
        return Payload(data=to_stored(payload)[::-1], metadata={"encoding": self.encoding})

    def try_encode(self, payload: Payload) -> Payload | None:
        if b"slow" in payload.data:
            return None
        SometimesAwaits.inline += 1
        return self._wrap(payload)

    def try_decode(self, payload: Payload) -> Payload | None:
        return from_stored(payload.data[::-1])

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        SometimesAwaits.awaited += 1
        await asyncio.sleep(0.002 * (1 + len(payloads[0].data) % 3))
        return [self._wrap(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [from_stored(p.data[::-1]) for p in payloads]


@duro.step(name="codecs.echo_text")
async def echo_text(text: str) -> str:
    return text


@duro.workflow(name="codecs.mixed_writes")
async def mixed_writes(n: int) -> list[str]:
    firsts = await asyncio.gather(*(echo_text(f"{'slow' if i % 2 else 'fast'}-{i}")
                                    for i in range(n)))
    duro.set_state("seen", f"slow-state-{len(firsts)}")
    more = await duro.wait_for_signal("more", type=str)
    return [*firsts, more or "", await echo_text("fast-last")]


def test_writes_that_await_their_codec_and_writes_that_do_not_keep_the_history_in_order(
        any_db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Inline-encoded writes skip the run's write turn; one that awaits takes it, and the
    # run's writes after it queue behind. A write overtaking an earlier one would be
    # fenced (the run dropped and reloaded): the history must come out whole, in order,
    # and replay to the same result.
    chain = CodecChain([SometimesAwaits()])
    SometimesAwaits.inline = SometimesAwaits.awaited = 0
    expected = [f"{'slow' if i % 2 else 'fast'}-{i}" for i in range(16)]

    async def main() -> None:
        async with duro.Engine(any_db_url, codec=chain) as engine:
            handles = [await engine.start(mixed_writes, 16, id=f"mixed-{j}")
                       for j in range(4)]

            async def waiting() -> bool:
                return all([(await h.status()).value == "suspended" for h in handles])

            await wait_until(waiting, timeout=30)
        async with duro.Engine(any_db_url, codec=chain, max_cached=0) as engine:
            for j in range(4):  # taken up again from the store: replayed first
                await engine.signal(f"mixed-{j}", "more", "slow-signal")
            for j in range(4):
                result = await engine.get_handle(f"mixed-{j}").result(timeout=30)
                assert result == [*expected, "slow-signal", "fast-last"]

    with caplog.at_level(logging.INFO, logger="duro.worker"):
        run(main(), timeout=120)
    assert SometimesAwaits.inline > 0 and SometimesAwaits.awaited > 0
    assert not [r for r in caplog.records if "moved on in the store" in r.getMessage()]
