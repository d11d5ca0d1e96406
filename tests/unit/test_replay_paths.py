"""The shortcuts that make replay of long histories cheap behave like the long way."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson
import pytest

import duro
from duro import PayloadDecodeError
from duro.serde import decode
from duro.step._step import _positional_arity
from duro.store import EventRecord
from duro.store._records import event_records
from duro.testing import replay
from duro.workflow._instance import RunInstance, StepCommand


@duro.step(name="rp.add")
async def add(a: int, b: int = 1) -> int:
    return a + b


@duro.step(name="rp.tick")
async def tick() -> None:
    return None


@duro.workflow(name="rp_fanout")
async def rp_fanout(n: int) -> int:
    values = await asyncio.gather(*(add(i) for i in range(n)))
    return sum(values)


@duro.workflow(name="rp_wrong_arity")
async def rp_wrong_arity() -> None:
    await add(1, 2, 3)  # type: ignore[call-arg]


@duro.workflow(name="rp_race")
async def rp_race() -> str:
    slow = asyncio.ensure_future(tick())
    fast = asyncio.ensure_future(tick())
    done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    slow.cancel()
    return "fast" if fast in done else "slow"


def _history(ops: list[tuple[str, int, str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for kind, op, name, data in ops:
        events.append({"seq": len(events) + 1, "kind": kind, "time": 1000.0 + len(events),
                       "op": op or None, "name": name or None, "data": data, "meta": {}})
    return events


def test_event_records_equal_the_dataclass_constructor() -> None:
    rows = [(1, "run_started", 1.5, None, None, b"{}", None),
            (2, "step_completed", 2.5, 1, "s", b"1", b'{"attempt": 1}')]
    fast = event_records("r1", rows)
    slow = [EventRecord(run_id="r1", seq=r[0], kind=r[1], ts=r[2], op=r[3], name=r[4],
                        data=r[5], meta=r[6]) for r in rows]
    assert fast == slow
    assert [hash(e) for e in fast] == [hash(e) for e in slow]
    with pytest.raises(AttributeError):
        fast[0].kind = "x"  # type: ignore[misc]  # still frozen


def test_decode_names_the_payload_lazily() -> None:
    calls: list[int] = []

    def what() -> str:
        calls.append(1)
        return "result of step 'x'"

    assert decode(b"5", int, what=what) == 5
    assert calls == []
    with pytest.raises(PayloadDecodeError, match="result of step 'x' does not fit type int"):
        decode(b'"text"', int, what=what)
    with pytest.raises(PayloadDecodeError, match="corrupt result of step 'x'"):
        decode(b"\xff{", int, what=what)
    assert len(calls) == 2


def test_positional_arity_agrees_with_signature_bind() -> None:
    def f0() -> None: ...
    def f2(a: int, b: int = 0, /) -> None: ...
    def f3(a: int, b: int, c: int = 0) -> None: ...
    def star(a: int, *rest: int) -> None: ...
    def kwonly(a: int, *, b: int) -> None: ...

    for fn in (f0, f2, f3, star, kwonly):
        sig = inspect.signature(fn)
        arity = _positional_arity(sig)
        if fn in (star, kwonly):
            assert arity is None
            continue
        assert arity is not None
        for n in range(5):
            try:
                sig.bind(*range(n))
                binds = True
            except TypeError:
                binds = False
            assert binds == (arity[0] <= n <= arity[1]), (fn.__name__, n)


def test_wrong_step_arguments_still_fail_in_replay() -> None:
    res = replay(rp_wrong_arity, _history([("run_started", 0, "", {"args": [], "kwargs": {}})]))
    assert res.status == "failed" and res.error is not None
    assert res.error.type == "TypeError" and "wrong arguments" in res.error.message


def test_long_fanout_replays_and_a_wrong_name_is_still_caught() -> None:
    n = 300  # more than the loop's task-pruning mark, several times over
    ops: list[tuple[str, int, str, Any]] = [("run_started", 0, "", {"args": [n], "kwargs": {}})]
    ops += [("step_completed", i + 1, "rp.add", i + 1) for i in reversed(range(n))]
    res = replay(rp_fanout, _history(ops))
    assert res.status == "completed" and res.result == sum(range(1, n + 1))

    ops[150] = ("step_completed", ops[150][1], "rp.other", 0)
    with pytest.raises(duro.NondeterminismError, match=r"rp\.other"):
        replay(rp_fanout, _history(ops))


class _Recorder:
    def __init__(self) -> None:
        self.cancelled: list[int] = []

    def step_issued(self, inst: RunInstance, cmd: StepCommand) -> None:
        pass

    def step_cancelled(self, inst: RunInstance, cmd: StepCommand) -> None:
        self.cancelled.append(cmd.op)

    def timer_started(self, inst: RunInstance, cmd: Any) -> None:
        pass

    def child_issued(self, inst: RunInstance, cmd: Any) -> None:
        pass

    def child_cancelled(self, inst: RunInstance, cmd: Any) -> None:
        pass

    def record(self, inst: RunInstance, event: Any) -> None:
        pass


def test_a_cancelled_step_is_still_reported_and_a_delivered_one_is_not() -> None:
    host = _Recorder()
    inst = RunInstance(workflow=rp_race, run_id="r", workflow_id="w", host=host)
    try:
        inst.apply("run_started", None, None, orjson.dumps({"args": [], "kwargs": {}}), None,
                   1.0)
        assert sorted(inst.commands) == [1, 2]
        inst.apply("step_completed", 2, "rp.tick", b"null", None, 2.0)
        assert inst.main is not None and inst.main.done() and inst.main.result() == "fast"
        assert host.cancelled == [1]
        states = {op: cmd.state for op, cmd in inst.commands.items()}
        assert states == {1: "cancelled", 2: "done"}
    finally:
        inst.close()
