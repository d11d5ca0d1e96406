"""The store's engine rules (duro/store/_rules.py), without a database: every store
applies these same functions inside its transactions (issue 15, item 1)."""

from __future__ import annotations

from typing import Any

import pytest

from duro._history import ApprovalMeta, EventKind, UpdateMeta
from duro._messages import ChildDone, MessageKind
from duro.errors import StoreError, WorkflowAlreadyStartedError, WorkflowIdTakenError
from duro.schedules import tick_workflow_id
from duro.store._records import (
    InboxMessage,
    Message,
    NewEvent,
    Placement,
    QueueConfig,
    RunLinks,
    RunRecord,
    RunStatus,
)
from duro.store._rows import claim, queue_config, run_record, schedule_record
from duro.store._rules import (
    Firing,
    Link,
    admission,
    candidate_page,
    carried_over,
    check_copy_target,
    check_existing,
    closing_effects,
    copied_approvals,
    copied_events,
    dedup_hit,
    definition_change,
    fair_share,
    in_namespace,
    list_query,
    plan_run,
    queue_room,
    stream_plan,
    too_deep,
)
from duro.store._schedules import ScheduleDefinition


def _run(status: str = "running", name: str = "wf", **kw: Any) -> RunRecord:
    values: dict[str, Any] = dict(
        run_id="r1", workflow_id="w", workflow_name=name, status=RunStatus(status),
        input=b"[]", result=None, error=None, created_at=1.0, updated_at=1.0,
        closed_at=None, wake_at=None, owner=None, epoch=1, history_len=1)
    values.update(kw)
    return RunRecord(**values)


# -- starting runs -------------------------------------------------------------------------


def test_a_live_run_is_returned_or_refused_by_the_conflict_policy() -> None:
    live = _run("suspended")
    assert check_existing(live, "w", "wf", "use_existing", "allow") == (live, False)
    with pytest.raises(WorkflowAlreadyStartedError) as info:
        check_existing(live, "w", "wf", "fail", "allow")
    assert not isinstance(info.value, WorkflowIdTakenError)
    with pytest.raises(WorkflowIdTakenError):  # never a handle to another workflow's run
        check_existing(live, "w", "other", "use_existing", "allow")


@pytest.mark.parametrize("status, policy, create", [
    ("completed", "allow", True), ("failed", "allow", True),
    ("completed", "allow_failed", False), ("failed", "allow_failed", True),
    ("completed", "use_existing", False), ("completed", "fail", False),
])
def test_an_ended_run_is_reused_by_the_reuse_policy(status: str, policy: Any,
                                                     create: bool) -> None:
    ended = _run(status)
    if create:
        assert check_existing(ended, "w", "wf", "fail", policy) == (ended, True)
    elif policy == "use_existing":
        assert check_existing(ended, "w", "wf", "fail", policy) == (ended, False)
    else:
        with pytest.raises(WorkflowAlreadyStartedError, match="reuse policy"):
            check_existing(ended, "w", "wf", "fail", policy)


@pytest.mark.parametrize("status, policy, create", [
    ("running", "allow", False), ("parked", "allow", False),
    ("completed", "allow", True), ("failed", "allow", True),
    ("failed", "allow_failed", False), ("completed", "use_existing", False),
    ("failed", "fail", False),
])
def test_a_run_of_another_namespace_is_never_returned(status: str, policy: Any,
                                                      create: bool) -> None:
    """Its id is taken while it is live, and free once it ended only with "allow": the
    answer depends on nothing else of the run, and the refusal names nothing of it."""
    theirs = _run(status, name="their.secret", namespace="tenant-a", run_id="r-secret")
    for conflict in ("use_existing", "fail"):
        if create:
            assert check_existing(theirs, "w", "mine", conflict, policy, "tenant-b") == (
                theirs, True)
            continue
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            check_existing(theirs, "w", "mine", conflict, policy, "tenant-b")
        assert type(info.value) is WorkflowAlreadyStartedError
        assert str(info.value) == "workflow id 'w' is taken; choose another id"
        assert info.value.run_id == "" and info.value.workflow_name is None
    # The same namespace, or a caller of every namespace: the policies as always.
    assert check_existing(theirs, "w", "their.secret", "use_existing", "use_existing",
                          "tenant-a")[0] is theirs
    assert check_existing(theirs, "w", "their.secret", "use_existing", "use_existing",
                          None)[0] is theirs
    assert in_namespace("tenant-a", None) and not in_namespace("tenant-a", "tenant-b")


def test_a_deduplication_key_of_another_namespace_refuses_the_start() -> None:
    theirs = _run("running", workflow_id="their-id", namespace="tenant-a")
    place = Placement(queue="q", dedup_key="k")
    assert dedup_hit(place, theirs, "tenant-a") is theirs
    with pytest.raises(WorkflowAlreadyStartedError) as info:
        dedup_hit(place, theirs, "tenant-b")
    assert "their-id" not in str(info.value) and "tenant-a" not in str(info.value)


def test_a_new_run_is_in_its_namespace_and_says_so_at_its_start() -> None:
    from duro._history import RunStartedMeta

    plain = plan_run(run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=1.0,
                     owner=None)
    assert plain.record().namespace == "default"
    assert plain.params()["meta"] is None  # a default start's meta is what it always was
    mine = plan_run(run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=1.0,
                    owner=None, namespace="tenant-a")
    assert mine.record().namespace == mine.params()["namespace"] == "tenant-a"
    meta = mine.params()["meta"]
    assert isinstance(meta, bytes) and RunStartedMeta.decode(meta).namespace == "tenant-a"


@pytest.mark.parametrize("where, query", [
    ({}, "list_runs_by_namespace"), ({"status": "failed"}, "list_runs_by_status"),
    ({"name": "wf"}, "list_runs_by_name"),
    ({"attributes": {"k": 1}}, "list_runs_by_attribute"),
])
def test_a_namespace_lists_through_its_index_unless_a_filter_narrows_more(
        where: dict[str, Any], query: str) -> None:
    given: dict[str, Any] = dict(status=None, name=None, created_after=None,
                                 created_before=None, id_prefix=None, attributes=None,
                                 after=None, limit=10)
    name, params = list_query(**{**given, **where}, namespace="tenant-a")
    assert (name, params["namespace"]) == (query, "tenant-a")
    assert list_query(**given)[0] == "list_runs"
    # 'default' is not in the (partial) namespace index: its listing reads runs_created.
    default = list_query(**given, namespace="default")
    assert default[0] == "list_runs" and default[1]["namespace"] == "default"


def test_a_new_run_owned_by_its_starter_is_running_at_epoch_1() -> None:
    new = plan_run(run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=10.0,
                   owner="me")
    assert (new.status, new.epoch, new.owner, new.wake_at, new.started_at) == (
        RunStatus.RUNNING, 1, "me", None, 10.0)
    record = new.record()
    assert record.status == RunStatus.RUNNING and record.history_len == 1
    assert record.queue == "default" and record.depth == 0
    assert new.params()["meta"] is None  # a plain start says nothing in run_started


def test_a_new_run_nobody_owns_is_pending_and_due_now() -> None:
    new = plan_run(run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=10.0,
                   owner=None, links=RunLinks(parent_run_id="p", parent_op=3, depth=2))
    assert (new.status, new.epoch, new.wake_at, new.started_at) == (
        RunStatus.PENDING, 0, 10.0, None)
    assert new.params()["meta"] is not None and new.record().depth == 2


@pytest.mark.parametrize("placement, wake_at", [
    (Placement(start_at=50.0), 50.0),
    (Placement(start_at=5.0), 10.0),  # never due before it was started
    (Placement(debounce_key="k", debounce=3.0), 13.0),
])
def test_a_delayed_or_debounced_run_waits_for_any_worker(placement: Placement,
                                                        wake_at: float) -> None:
    new = plan_run(run_id="r", workflow_id="w", workflow_name="wf", input=b"[]", now=10.0,
                   owner="me", placement=placement)
    assert (new.status, new.owner, new.epoch, new.wake_at) == (
        RunStatus.PENDING, None, 0, wake_at)


def test_a_deduplicated_start_returns_the_live_run_or_fails() -> None:
    live = _run()
    assert dedup_hit(Placement(dedup_key="k"), live) is live
    with pytest.raises(WorkflowAlreadyStartedError, match="deduplication key 'k'"):
        dedup_hit(Placement(dedup_key="k", on_dedup="fail"), live)


# -- admission ------------------------------------------------------------------------------


def test_the_room_of_a_limited_queue() -> None:
    config = QueueConfig(name="q", concurrency=5, per_worker=3)
    assert queue_room(config, room=10, running=1, held_here=0) == 3
    assert queue_room(config, room=10, running=4, held_here=0) == 1
    assert queue_room(config, room=2, running=0, held_here=0) == 2
    assert queue_room(config, room=10, running=5, held_here=0) <= 0
    assert queue_room(QueueConfig(name="q", rate_limit=1), room=7, running=99,
                      held_here=99) == 7


def test_the_rate_limit_counts_first_starts_only() -> None:
    pick = admission(QueueConfig(name="q", rate_limit=3), room=10, started=2)
    assert pick.offer("a", None, None)          # a first start: the last one in the window
    assert not pick.offer("b", None, None)      # another: over the rate
    assert pick.offer("c", None, 5.0)           # a resume: no rate needed
    assert pick.chosen == ["a", "c"] and pick.first_starts == {"a"}


def test_a_key_limit_caps_running_runs_per_key() -> None:
    pick = admission(QueueConfig(name="q", key_concurrency=1), room=10,
                     per_key={"busy": 1})
    assert not pick.offer("a", "busy", None)
    assert pick.offer("b", "free", None)
    assert not pick.offer("c", "free", None)
    assert pick.offer("d", None, None)  # no key: not limited by keys
    assert pick.chosen == ["b", "d"]


def test_admission_stops_when_full() -> None:
    pick = admission(QueueConfig(name="q", concurrency=2), room=2)
    assert pick.offer("a", None, None) and pick.offer("b", None, None)
    assert pick.full and not pick.offer("c", None, None)
    assert candidate_page(2) > 2


# -- a run's end ------------------------------------------------------------------------------


def _parent(status: str) -> Link:
    return Link(kind="parent", run_id="p", status=status, parent_op=7)


def test_a_live_parent_is_told_its_child_ended() -> None:
    effects = closing_effects("c", "completed", b"1", None, [_parent("suspended")])
    assert effects.tell_parent is not None
    parent, message = effects.tell_parent
    assert parent == "p" and message.kind == MessageKind.CHILD_DONE
    assert message.name == "7" and message.data == b"1"
    assert ChildDone.decode(message.meta).status == "completed"
    failed = closing_effects("c", "failed", None, b"err", [_parent("running")])
    assert failed.tell_parent is not None and failed.tell_parent[1].data == b"err"


@pytest.mark.parametrize("parent_status, status", [
    ("completed", "failed"),          # the parent ended first (closing down its tree)
    ("terminated", "terminated"),
    ("running", "continued_as_new"),  # not an end for the parent: the successor tells
])
def test_no_message_for_an_ended_parent_or_a_run_that_goes_on(parent_status: str,
                                                              status: str) -> None:
    assert closing_effects("c", status, None, None, [_parent(parent_status)]).tell_parent \
        is None


def test_children_follow_their_parent_close_policy() -> None:
    links = [Link(kind="child", run_id="t", status="running", policy="terminate"),
             Link(kind="child", run_id="d", status="running", policy=None),
             Link(kind="child", run_id="c", status="suspended", policy="request_cancel"),
             Link(kind="child", run_id="a", status="running", policy="abandon"),
             Link(kind="child", run_id="x", status="running", policy="terminate",
                  cancelling=True)]
    effects = closing_effects("p", "completed", None, None, links)
    assert effects.terminate == ("t", "d")  # terminate is the default
    assert effects.cancel == ("c",)
    assert effects.tell_parent is None


# -- schedules ------------------------------------------------------------------------------


def _firing(overlap: str, *, last: str | None = "s@prev",
            buffered: float | None = None) -> Firing:
    return Firing(schedule_id="s", overlap=overlap, last=last, buffered=buffered)


def test_allow_all_starts_every_tick() -> None:
    firing = _firing("allow_all")
    assert firing.take(60.0, True) == tick_workflow_id("s", 60.0)
    assert firing.take(120.0, True) == tick_workflow_id("s", 120.0)
    assert (firing.last, firing.last_tick, firing.skipped) == (
        tick_workflow_id("s", 120.0), 120.0, 0)


def test_skip_skips_while_the_previous_run_is_live() -> None:
    firing = _firing("skip")
    assert firing.take(60.0, True) is None and firing.skipped == 1
    assert firing.take(120.0, False) == tick_workflow_id("s", 120.0)
    assert firing.last_tick == 120.0 and firing.buffered is None


def test_buffer_one_keeps_one_tick_for_when_the_previous_run_ends() -> None:
    firing = _firing("buffer_one")
    assert firing.take(60.0, True) is None and firing.buffered == 60.0
    assert firing.take(120.0, True) is None and firing.skipped == 1  # one buffered at most
    later = _firing("buffer_one", buffered=60.0)
    assert later.take_buffered(True) is None and later.buffered == 60.0  # still live
    assert later.take_buffered(False) == tick_workflow_id("s", 60.0)
    assert later.buffered is None and later.last_tick == 60.0
    assert _firing("buffer_one").take_buffered(False) is None  # nothing buffered


def _definition(**kw: Any) -> ScheduleDefinition:
    values: dict[str, Any] = dict(schedule_id="s", workflow_name="wf", queue="default",
                                  input=b"{}", cron="* * * * *", every=None, anchor=0.0,
                                  timezone="UTC", overlap="skip", catch_up=60.0,
                                  source="code")
    values.update(kw)
    return ScheduleDefinition(**values)


def _stored(d: ScheduleDefinition, next_fire_at: float | None) -> Any:
    row = {**{k: getattr(d, k) for k in ("schedule_id", "workflow_name", "queue", "input",
                                          "cron", "every", "anchor", "timezone", "overlap",
                                          "catch_up", "source")},
           "paused": 0, "note": None, "next_fire_at": next_fire_at, "last_fire_at": None,
           "last_workflow_id": None, "buffered_at": None, "fired": 0, "missed": 0,
           "overlap_skipped": 0, "created_at": 1.0, "updated_at": 1.0,
           "namespace": d.namespace}
    return schedule_record(row)


def test_a_declaration_changes_only_what_changed() -> None:
    old = _stored(_definition(), 600.0)
    assert definition_change(old, _definition(), 660.0) == ("unchanged", 600.0)
    # Not the timing: the pending tick stays.
    assert definition_change(old, _definition(input=b"[1]"), 660.0) == ("updated", 600.0)
    # A new timing starts from the next tick computed now.
    assert definition_change(old, _definition(cron="*/5 * * * *"), 900.0) == (
        "updated", 900.0)


# -- copies, carried messages, children --------------------------------------------------------


def _ev(kind: str, op: int | None = None) -> NewEvent:
    return NewEvent(kind=kind, ts=1.0, op=op)


def test_a_copy_drops_outcomes_of_the_ops_to_redo_and_the_end() -> None:
    prefix = [_ev(EventKind.RUN_STARTED), _ev(EventKind.STEP_COMPLETED, 1),
              _ev(EventKind.STEP_FAILED, 2), _ev(EventKind.TIMER_FIRED, 3),
              _ev(EventKind.RUN_FAILED)]
    kept = copied_events(prefix, drop_ops=[2])
    assert [(e.kind, e.op) for e in kept] == [
        (EventKind.RUN_STARTED, None), (EventKind.STEP_COMPLETED, 1),
        (EventKind.TIMER_FIRED, 3)]
    with pytest.raises(StoreError, match="must start with run_started"):
        copied_events([_ev(EventKind.STEP_COMPLETED, 1)], drop_ops=[])
    with pytest.raises(StoreError):
        copied_events([], drop_ops=[])


def test_a_copy_target_must_have_no_other_live_run() -> None:
    check_copy_target(None, "w", "wf", closing=None)
    source = _run(run_id="src")
    check_copy_target(source, "w", "wf", closing="src")  # the source, closed by the copy
    with pytest.raises(WorkflowAlreadyStartedError) as info:
        check_copy_target(source, "w", "wf", closing=None)
    assert not isinstance(info.value, WorkflowIdTakenError)
    with pytest.raises(WorkflowIdTakenError):
        check_copy_target(_run(name="other"), "w", "wf", closing=None)


def test_a_successor_inherits_signals_updates_and_cancels_in_order() -> None:
    carry = [Message(kind=MessageKind.SIGNAL, name="first")]
    meta = UpdateMeta(update_id="u1").encode()
    inbox = [InboxMessage(id=1, kind=MessageKind.CHILD_DONE, name="3", data=b"1", meta=None),
             InboxMessage(id=2, kind=MessageKind.UPDATE, name="set", data=b"[]", meta=meta),
             InboxMessage(id=3, kind=MessageKind.TASK_DONE, name="4", data=None, meta=None),
             InboxMessage(id=4, kind=MessageKind.CANCEL, name=None, data=None, meta=None)]
    moved = carried_over(carry, inbox)
    assert [(m.kind, m.name, m.update_id) for m in moved] == [
        (MessageKind.SIGNAL, "first", None), (MessageKind.UPDATE, "set", "u1"),
        (MessageKind.CANCEL, None, None)]


def test_a_child_nested_past_the_limit_is_recorded_as_not_started() -> None:
    assert too_deep(3, None, 1, "c", "wf", 1.0) is None
    assert too_deep(3, 3, 1, "c", "wf", 1.0) is None
    event = too_deep(4, 3, 1, "c", "wf", 1.0)
    assert event is not None and event.kind == EventKind.CHILD_FAILED and event.op == 1


# -- row mappers ------------------------------------------------------------------------------


def test_mappers_read_rows_by_column_name() -> None:
    row = {"run_id": "r", "workflow_id": "w", "workflow_name": "wf", "epoch": 3,
           "history_len": 9, "queue": "q", "recoveries": 2}
    assert claim(row).recoveries == 0  # only a take-over counts recoveries
    assert claim(row, taken_over=True).recoveries == 2
    config = queue_config({"name": "q", "concurrency": 1, "per_worker": None,
                           "rate_limit": None, "rate_period": None,
                           "key_concurrency": None})
    assert config.rate_period == 1.0 and config.limited
    stored = {"run_id": "r", "workflow_id": "w", "workflow_name": "wf", "status": "pending",
              "input": None, "result": None, "error": None, "created_at": 1.0,
              "updated_at": 1.0, "closed_at": None, "wake_at": 2.0, "owner": None,
              "epoch": 0, "history_len": 1, "parent_run_id": None, "parent_op": None,
              "parent_close": None, "deadline_at": None, "origin_run_id": None,
              "queue": None, "priority": 0, "concurrency_key": None, "depth": 0,
              "namespace": "tenant-a"}
    assert run_record(stored).queue == "default"
    assert run_record(stored).namespace == "tenant-a"


def test_copied_approvals_are_those_the_copy_leaves_undecided() -> None:
    """A copy that requested approvals at ops 2, 3 and 4, with 2 decided and 3 timed out
    in it, waits for 4 only: pending again under the new run's id, with its context and
    deadline."""
    def requested(op: int) -> NewEvent:
        return NewEvent(kind=EventKind.APPROVAL_REQUESTED, ts=float(op), op=op, name="ok",
                        data=b'{"op":%d}' % op,
                        meta=ApprovalMeta(approval_id=f"old.{op}", deadline_at=99.0).encode())

    events = [_ev(EventKind.RUN_STARTED), requested(2), requested(3), requested(4),
              _ev(EventKind.APPROVAL_DECIDED, 2), _ev(EventKind.APPROVAL_TIMED_OUT, 3)]
    [params] = copied_approvals("new", events)
    assert params["approval_id"] == "new.4" and params["op"] == 4
    assert params["context"] == b'{"op":4}' and params["deadline_at"] == 99.0
    assert params["epoch"] is None and params["ts"] == 4.0
    assert copied_approvals("new", events[:1]) == []


def test_stream_plan_keeps_one_execution_per_step() -> None:
    # The op's first execution, then its own later batches.
    assert stream_plan(None, None, execution="a", attempt=1, first=True) == "new"
    assert stream_plan("a", 1, execution="a", attempt=1, first=False) == "write"
    # A retry, or the same attempt run again after its worker was lost: it supersedes.
    assert stream_plan("a", 1, execution="b", attempt=2, first=True) == "supersede"
    assert stream_plan("a", 1, execution="b", attempt=1, first=True) == "supersede"
    # A superseded execution's later batches, and an older attempt's first: dropped.
    assert stream_plan("b", 1, execution="a", attempt=1, first=False) == "drop"
    assert stream_plan("b", 2, execution="c", attempt=1, first=True) == "drop"


def test_fair_share_splits_the_ready_runs_among_live_workers() -> None:
    # Alone: all it has room for.
    assert fair_share(256, peers=0, held=0, mine=0, ready=200, stale=0) == 256
    # Two workers, 200 ready runs: the first takes half, the second the other half
    # (the first's 100 are held by then), the first nothing more meanwhile.
    assert fair_share(256, peers=1, held=0, mine=0, ready=200, stale=0) == 100
    assert fair_share(256, peers=1, held=100, mine=0, ready=100, stale=0) == 100
    assert fair_share(256, peers=1, held=100, mine=100, ready=100, stale=0) == 0
    # Runs a peer left unclaimed for the grace period are anyone's (up to the room).
    assert fair_share(256, peers=1, held=100, mine=100, ready=100, stale=40) == 40
    assert fair_share(30, peers=1, held=100, mine=100, ready=100, stale=40) == 30
    # One ready run among three idle workers: whoever looks first takes it.
    assert fair_share(256, peers=2, held=0, mine=0, ready=1, stale=0) == 1
