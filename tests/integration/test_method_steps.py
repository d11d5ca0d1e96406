"""Steps as methods: ``@duro.step`` on a method of an object that holds a resource runs
on that object (bound as a method is), under the stable name ``module.Class.method``;
replay, a restart with a new object, and a queue's worker (``duro.register_steps``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

import duro
from duro.errors import InvalidArgumentError
from duro.step._step import _instances
from duro.testing import replay
from tests.conftest import run

NAME = f"{__name__}.Ledger"


class Ledger:
    """Holds a resource (a database connection, shared by the step threads)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, amount INTEGER)")
        self.lock = threading.Lock()
        self.calls: list[str] = []

    @duro.step
    def put(self, key: str, amount: int) -> str:
        with self.lock:
            self.calls.append(f"put {key}")
            self.conn.execute("INSERT INTO entries VALUES (?, ?)", (key, amount))
        return f"{self.label}:{key}"

    @duro.step(retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=0))
    async def total(self) -> int:
        self.calls.append("total")
        if self.calls.count("total") == 1:
            raise ConnectionError("the pool was busy")
        with self.lock:
            (value,) = self.conn.execute("SELECT SUM(amount) FROM entries").fetchone()
        return int(value)

    @duro.step(queue="ledger-gpu")
    def audit(self, key: str) -> str:
        self.calls.append(f"audit {key}")
        return f"{self.label} audited {key}"


class Branch(Ledger):
    """A subclass inherits the method steps (and their names)."""


LEDGER = Ledger("first")


@duro.workflow(name="ms.book")
async def book(keys: list[str]) -> dict[str, object]:
    receipts = [await LEDGER.put(k, 10) for k in keys]
    await duro.wait_for_signal("go")
    receipts.append(await LEDGER.put("last", 1))
    return {"receipts": receipts, "total": await LEDGER.total()}


@duro.workflow(name="ms.audit")
async def audit_one(key: str) -> str:
    return await LEDGER.audit(key)


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


@pytest.fixture(autouse=True)
def fresh_ledger() -> None:
    global LEDGER
    LEDGER = Ledger("first")
    _instances.clear()


def test_method_steps_run_on_their_object_with_stable_names_and_replay(db_url: str) -> None:
    async def main() -> None:
        global LEDGER
        async with duro.Engine(db_url, poll_interval=0.02) as engine:
            handle = await engine.start(book, ["a", "b"], id="book")
            for _ in range(500):  # bounded: until both steps are recorded
                done = [e for e in await handle.history() if e.kind == "step_completed"]
                if len(done) == 2:
                    break
                await asyncio.sleep(0.01)
        assert LEDGER.calls == ["put a", "put b"]
        first = LEDGER
        # A new process would build its own object (its own connection): the recorded
        # steps come back from the history, only the rest runs on the new object.
        LEDGER = Ledger("second")
        LEDGER.conn.execute("INSERT INTO entries VALUES ('a', 10), ('b', 10)")
        async with duro.Engine(db_url, poll_interval=0.02) as engine:
            handle = engine.get_handle("book")
            await handle.signal("go")
            result = await handle.result(timeout=10)
            history = await handle.history()
        assert result == {"receipts": ["first:a", "first:b", "second:last"], "total": 21}
        assert first.calls == ["put a", "put b"]
        assert LEDGER.calls == ["put last", "total", "total"]
        steps = [(e.kind, e.name) for e in history if e.kind.startswith("step_")]
        assert steps == [("step_completed", f"{NAME}.put")] * 3 + [
            ("step_retrying", f"{NAME}.total"), ("step_completed", f"{NAME}.total")]
        # The object never enters the history: a step's recorded input is its arguments.
        assert replay(book, history).result == result

    run(main())


def test_a_queued_method_step_runs_on_the_object_registered_for_its_class(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, queues=["default"], poll_interval=0.02) as cpu:
            handle = await cpu.start(audit_one, "k1", id="audit")
            # No object of the class is registered: the queue's worker claims nothing.
            async with duro.Engine(db_url, queues=["ledger-gpu"], poll_interval=0.02) as gpu:
                assert gpu.worker is not None
                assert f"{NAME}.audit" not in gpu.worker.tasks.steps()
                await asyncio.sleep(0.2)
                assert await handle.status() == duro.RunStatus.SUSPENDED
            worker_side = duro.register_steps(Branch("registered"))
            async with duro.Engine(db_url, queues=["ledger-gpu"], poll_interval=0.02):
                assert await handle.result(timeout=10) == "registered audited k1"
        assert isinstance(worker_side, Branch)
        assert worker_side.calls == ["audit k1"]
        assert LEDGER.calls == []  # the workflow's object is not the one the worker has

    run(main())


def test_method_step_access_and_registration_refuse_misuse() -> None:
    plain = duro.step(name="ms.plain")(lambda x: x)

    class Holder:
        step = plain  # a plain step stored on a class stays a plain step

    assert Holder().step is plain
    assert Ledger.put.name == f"{NAME}.put"  # class access: the unbound step
    assert LEDGER.put.name == f"{NAME}.put" and LEDGER.put.instance is LEDGER
    assert "self" not in LEDGER.put.signature.parameters
    # Outside a workflow a bound step runs the method, on its object.
    assert run(LEDGER.put("x", 1)) == "first:x"
    assert run(Ledger.put(LEDGER, "y", 2)) == "first:y"
    with pytest.raises(InvalidArgumentError, match="not the class"):
        duro.register_steps(Ledger)
    with pytest.raises(InvalidArgumentError, match="declares no method step"):
        duro.register_steps(Holder())
    assert _instances == {}
