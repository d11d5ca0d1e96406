"""The one read-only replayer: a history must be replayed with the workflow that recorded
it, and a replay executes and keeps nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import duro
from duro.errors import InvalidArgumentError, WorkflowMismatchError
from duro.store import EventRecord
from duro.testing import replay
from duro.workflow._instance import NULL_HOST
from duro.workflow._replayer import replayed


@duro.step(name="rpl.double")
async def double(x: int) -> int:
    return 2 * x


@duro.workflow(name="rpl.doubler")
async def doubler(x: int) -> int:
    return await double(x)


@duro.workflow(name="rpl.other")
async def other(x: int) -> int:
    return await double(x)


def _events(workflow_name: str | None) -> list[dict[str, Any]]:
    return [
        {"seq": 0, "kind": "run_started", "time": 1000.0, "op": None, "name": workflow_name,
         "data": {"args": [21], "kwargs": {}}, "meta": {}},
        {"seq": 1, "kind": "step_completed", "time": 1001.0, "op": 1, "name": "rpl.double",
         "data": 42, "meta": {}},
        {"seq": 2, "kind": "run_completed", "time": 1002.0, "op": None, "name": None,
         "data": 42, "meta": {}},
    ]


def test_a_history_replays_with_the_workflow_that_recorded_it() -> None:
    result = replay(doubler, _events("rpl.doubler"))
    assert result.status == "completed" and result.result == 42


def test_a_history_of_another_workflow_is_refused_with_a_typed_error() -> None:
    with pytest.raises(WorkflowMismatchError) as info:
        replay(other, _events("rpl.doubler"))
    error = info.value
    assert isinstance(error, InvalidArgumentError) and isinstance(error, duro.DuroError)
    assert (error.recorded, error.given) == ("rpl.doubler", "rpl.other")
    assert "'rpl.doubler'" in str(error) and "'rpl.other'" in str(error)
    assert "workflow_name='rpl.doubler'" in str(error)  # how to do it on purpose


def test_a_history_replays_with_other_code_when_its_name_is_given() -> None:
    result = replay(other, _events("rpl.doubler"), workflow_name="rpl.doubler")
    assert result.status == "completed" and result.result == 42
    with pytest.raises(WorkflowMismatchError, match=r"'rpl\.elsewhere'"):
        replay(other, _events("rpl.doubler"), workflow_name="rpl.elsewhere")


def test_a_history_that_names_no_workflow_is_taken_as_it_is() -> None:
    assert replay(other, _events(None)).result == 42


def test_the_replayer_executes_nothing_and_closes_the_instance() -> None:
    records = [EventRecord(run_id="r", seq=0, kind="run_started", ts=1.0, op=None,
                           name="rpl.doubler", data=orjson.dumps({"args": [1], "kwargs": {}}),
                           meta=None)]
    with replayed(doubler, records, run_id="r", workflow_id="w") as inst:
        assert inst.park_error is None and inst.main is not None and not inst.main.done()
        assert [(c.op, c.kind, c.state) for c in inst.pending()] == [(1, "step", "new")]
    assert not inst.active and inst.host is NULL_HOST
    with pytest.raises(WorkflowMismatchError), replayed(other, records, run_id="r",
                                                        workflow_id="w"):
        pass  # pragma: no cover - refused before the block runs
