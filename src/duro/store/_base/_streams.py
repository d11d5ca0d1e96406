"""Streams out of running steps: the batches a worker writes (``append_stream``) and
the reads of a run's stream from an offset (``read_stream``), over ``streams.sql``.

A run's stream is a log beside its history (``run_streams``): offsets dense from 0, in
commit order. A batch is one transaction: it takes the run's next offset, applies
:func:`~duro.store._rules.stream_plan` (a new execution of a step supersedes the op's
earlier chunks, with a marker row for live readers; a stale one's chunks are dropped),
and keeps the run under its cap (a ``truncated`` marker, once, then nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._records import StreamKind, StreamRecord
from duro.store._rows import Row
from duro.store._rules import stream_lock_key, stream_plan

__all__ = ["Streams"]


def stream_record(row: Row) -> StreamRecord:
    """A ``run_streams`` row as a record."""
    return StreamRecord(run_id=row["run_id"], offset=int(row["seq"]),
                        kind=StreamKind(row["kind"]), op=int(row["op"]), step=row["step"],
                        attempt=int(row["attempt"]), execution=row["execution"],
                        data=row["data"], superseded=bool(row["superseded"]),
                        ts=float(row["ts"]))


class Streams(Dialect):
    """The stream operations of :class:`~duro.store.Store`, once for every dialect."""

    async def append_stream(self, run_id: str, op: int, *, step: str, attempt: int,
                            execution: str, first: bool, chunks: Sequence[str], now: float,
                            limit: int) -> int:
        """See :meth:`duro.store.WorkerStore.append_stream`."""
        base = {"run_id": run_id, "op": op, "step": step, "attempt": attempt,
                "execution": execution, "ts": now}

        async def write(tx: Tx) -> int:
            await tx.run("stream_lock", {"key": stream_lock_key(run_id)})
            head = await tx.one("stream_head", {"run_id": run_id, "op": op})
            assert head is not None  # one row, always
            seq = int(head["next"])
            plan = stream_plan(head["execution"], head["attempt"], execution=execution,
                               attempt=attempt, first=first)
            if plan == "drop" or seq > limit:
                return 0
            if plan == "supersede":
                await tx.run("stream_supersede", {"run_id": run_id, "op": op,
                                                  "since": int(head["first_seq"])})
                if seq < limit:
                    await tx.run("stream_marker", {**base, "seq": seq,
                                                   "kind": StreamKind.SUPERSEDED.value})
                    seq += 1
            if plan != "write":
                await tx.run("stream_set_head", {"run_id": run_id, "op": op,
                                                 "execution": execution, "attempt": attempt,
                                                 "first_seq": seq})
            room = max(0, limit - seq)
            kept = list(chunks[:room])
            if kept:
                await tx.run("stream_insert", {**base, "first": seq, "chunks": kept})
            if len(kept) < len(chunks):
                await tx.run("stream_marker", {**base, "seq": seq + len(kept),
                                               "kind": StreamKind.TRUNCATED.value})
            return len(kept)

        written: int = await self._write(write)
        return written

    async def read_stream(self, run_id: str, from_offset: int = 0,
                          limit: int = 1000) -> list[StreamRecord]:
        """See :meth:`duro.store.ClientStore.read_stream`."""
        rows = await self._fetch("stream_read", {"run_id": run_id, "from": from_offset,
                                                 "limit": limit})
        return [stream_record(r) for r in rows]
