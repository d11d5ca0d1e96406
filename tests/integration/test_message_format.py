"""Inbox messages keep their payload opaque (``data``) and what duro reads about them in
``meta``; messages stored before migration 6 (the payload inside one JSON object) are
still read."""

from __future__ import annotations

import sqlite3

import orjson

import duro
from duro._messages import ChildDone, TaskDone
from duro.store import InboxMessage, Message
from duro.worker._inbox import _child_done
from duro.worker._local_steps import _task_done
from tests.conftest import run, wait_until


@duro.workflow(name="fmt.adder")
async def adder() -> int:
    total = {"n": 0}

    def add(n: int) -> int:
        total["n"] += n
        return total["n"]

    duro.on_update("add", add)
    await duro.wait_condition(lambda: total["n"] >= 5)
    return total["n"]


def test_an_update_stored_in_the_old_format_is_still_handled(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(adder, id="old-format")

            async def suspended() -> bool:
                return (await handle.status()).value == "suspended"

            await wait_until(suspended)
            record = await handle.describe()
            # What a worker of the previous version would have found in the inbox.
            with sqlite3.connect(db_url[len("sqlite:///"):]) as conn:
                conn.execute("INSERT INTO updates (run_id, update_id, name, status, ts) "
                             "VALUES (?, 'u-old', 'add', 'requested', 0)", (record.run_id,))
                conn.execute("INSERT INTO inbox (run_id, kind, name, data, ts) VALUES "
                             "(?, 'update', 'add', ?, 0)",
                             (record.run_id, orjson.dumps({"update_id": "u-old",
                                                           "args": [5]})))
                conn.execute("UPDATE runs SET status = 'pending', wake_at = 0 "
                             "WHERE run_id = ?", (record.run_id,))
            engine.worker.wake()  # type: ignore[union-attr]
            assert await handle.result(timeout=10) == 5
            outcome = await engine.store.get_update(record.run_id, "u-old")
            assert outcome is not None and outcome.status == "completed"
            assert outcome.result == b"5"

    run(main())


def test_a_child_done_message_carries_the_payload_untouched() -> None:
    envelope = b"\x00duro\x01not json at all"
    done, data = _child_done(InboxMessage(
        id=1, kind="child_done", name="3", data=envelope,
        meta=ChildDone(status="completed", run_id="c").encode()))
    assert done.status == "completed" and data == envelope
    old = orjson.dumps({"status": "failed", "run_id": "c", "result": None,
                        "error": {"type": "ValueError", "message": "x", "traceback": ""}})
    done, data = _child_done(InboxMessage(id=2, kind="child_done", name="3", data=old,
                                          meta=None))
    assert done.status == "failed" and orjson.loads(data or b"")["type"] == "ValueError"


def test_a_task_outcome_carries_the_payload_untouched() -> None:
    envelope = b"\x00duro\x01opaque"
    done, data = _task_done(envelope, TaskDone(attempt=2, duration=0.5,
                                               completed=True).encode())
    assert (done.attempt, done.completed, data) == (2, True, envelope)
    old = orjson.dumps({"attempt": 1, "duration": 0.1, "status": "completed",
                        "result": {"a": 1}, "heartbeat": None})
    done, data = _task_done(old, None)
    assert (done.attempt, done.completed) == (1, True) and orjson.loads(data or b"") == {
        "a": 1}


def test_update_requests_keep_their_arguments_opaque() -> None:
    message = Message.update_request("add", "u1", b"[5]")
    assert message.data == b"[5]" and message.update_id == "u1"
    assert orjson.loads(message.meta or b"") == {"update_id": "u1"}
