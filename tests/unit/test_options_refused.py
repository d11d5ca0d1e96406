"""Options that cannot work are refused where they are written, with a typed error that
names them (issue 13, item 9): engine and worker options, retry policies, step timeouts,
queues, schedules declared in code."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.schedules._declare import forget_declaration


@pytest.mark.parametrize("options, message", [
    ({"max_active": 0}, "max_active"),
    ({"max_active": -1}, "max_active"),
    ({"max_active": 2.5}, "max_active"),
    ({"max_cached": -1}, "max_cached"),
    ({"max_threads": 0}, "max_threads"),
    ({"lease": 0}, "lease"),
    ({"lease": -5}, "lease"),
    ({"lease": math.inf}, "lease"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"poll_interval": math.nan}, "poll_interval"),
    ({"workflow_task_timeout": 0}, "workflow_task_timeout"),
    ({"history_warning": 0}, "history_warning"),
    ({"history_limit": 10}, "history_limit must be at least history_warning"),
    ({"lookahead": -1}, "lookahead"),
    ({"queues": "gpu"}, "list of queue names"),
    ({"queues": ["gpu", ""]}, "queue"),
])
def test_unworkable_worker_options_are_refused_when_the_engine_is_made(
        tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(duro.InvalidArgumentError, match=message):
        duro.Engine(f"sqlite:///{tmp_path}/x.db", **options)
    assert list(tmp_path.iterdir()) == []  # no database was created


def test_an_unknown_worker_option_is_refused_when_the_engine_is_made(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_actve'"):
        duro.Engine(f"sqlite:///{tmp_path}/x.db", max_actve=5)  # type: ignore[call-arg]


def test_sensible_edge_values_are_accepted(tmp_path: Path) -> None:
    engine = duro.Engine(f"sqlite:///{tmp_path}/x.db", max_cached=0, lookahead=0,
                         max_active=1, lease=timedelta(seconds=30).total_seconds())
    assert engine._worker_options.items() >= {"max_cached": 0, "lookahead": 0,
                                              "max_active": 1, "lease": 30.0}.items()


@pytest.mark.parametrize("options, message", [
    ({"max_attempts": -1}, "max_attempts"),
    ({"max_attempts": 2.5}, "max_attempts"),
    ({"initial_interval": math.nan}, "initial_interval"),
    ({"initial_interval": -1}, "initial_interval"),
    ({"initial_interval": math.inf}, "initial_interval"),
    ({"max_interval": math.nan}, "max_interval"),
    ({"max_interval": timedelta(seconds=-1)}, "max_interval"),
    ({"backoff": math.nan}, "backoff"),
    ({"backoff": math.inf}, "backoff"),
    ({"backoff": 0.5}, "backoff"),
    ({"jitter": math.nan}, "jitter"),
    ({"jitter": 2}, "jitter"),
])
def test_nonsense_retry_policies_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(duro.InvalidArgumentError, match=message):
        duro.RetryPolicy(**options)


@pytest.mark.parametrize("option", ["timeout", "total_timeout", "heartbeat_timeout"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, timedelta(0), "5"], ids=repr)
def test_nonsense_step_timeouts_are_refused(option: str, value: Any) -> None:
    with pytest.raises(duro.InvalidArgumentError, match=option):
        @duro.step(**{option: value})
        def never(x: int) -> int:
            return x


def test_a_step_retry_must_be_a_policy() -> None:
    with pytest.raises(TypeError, match="RetryPolicy"):
        @duro.step(retry={"max_attempts": 3})  # type: ignore[arg-type]
        def never(x: int) -> int:
            return x


@pytest.mark.parametrize("options, message", [
    ({"concurrency": 0}, "concurrency"),
    ({"rate_limit": 1, "rate_period": math.nan}, "rate_period"),
    ({"rate_limit": 1, "rate_period": 0}, "rate_period"),
    ({"per_worker": 1.5}, "per_worker"),
])
def test_nonsense_queue_limits_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(duro.InvalidArgumentError, match=message):
        duro.Queue("refused-queue", **options)
    with pytest.raises(duro.InvalidArgumentError, match="queue name"):
        duro.Queue("")


@duro.workflow
async def nightly() -> None:
    return None


def test_a_declared_schedule_that_never_fires_is_refused() -> None:
    with pytest.raises(duro.InvalidArgumentError, match=r"'0 0 30 2 \*' never fires"):
        duro.schedule(nightly, id="feb-30", cron="0 0 30 2 *")
    forget_declaration("feb-30")
    duro.schedule(nightly, id="leap-day", cron="0 0 29 2 *", timezone="Europe/Berlin")
    forget_declaration("leap-day")


@pytest.mark.parametrize("options", [{"keep": math.nan}, {"keep": -1}, {"keep": 1, "batch": 0},
                                     {"keep": 1, "interval": math.inf}])
def test_nonsense_retention_policies_are_refused(options: dict[str, Any]) -> None:
    from duro.worker._retention import RetentionPolicy

    with pytest.raises(duro.InvalidArgumentError, match="retention"):
        RetentionPolicy(**options)


def test_a_queue_is_given_by_name_or_by_its_declaration() -> None:
    declared = duro.Queue("q-given-as-object", concurrency=2)

    @duro.workflow(queue=declared)
    async def by_object() -> None: ...

    @duro.step(queue=declared)
    async def step_by_object() -> None: ...

    assert by_object.queue == "q-given-as-object"
    assert step_by_object.queue == "q-given-as-object"


@pytest.mark.parametrize("queue", [5, "", "  ", "a\nb", None])
def test_a_workflow_s_queue_is_refused_where_it_is_declared(queue: Any) -> None:
    async def body() -> None: ...

    with pytest.raises(duro.InvalidArgumentError, match="queue"):
        duro.workflow(queue=queue)(body)


@pytest.mark.parametrize("queue", [5, "", "a\x00b"])
def test_a_step_s_queue_is_refused_where_it_is_declared(queue: Any) -> None:
    async def body() -> None: ...

    with pytest.raises(duro.InvalidArgumentError, match="queue"):
        duro.step(queue=queue)(body)
