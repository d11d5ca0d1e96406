"""``run_attempt`` and its watchers (``attempt_started``), without a worker: each one
begun is ended once, with what the attempt raised, even when a later one's start raises
something no watcher's bug should (an interrupt), and the attempt's outcome is the step's."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

import pytest

import duro
from duro.interceptors import WorkerInterceptor
from duro.step import StepInfo
from duro.worker._steps import run_attempt


@duro.step(name="watchers.unit.add")
async def add(a: int, b: int) -> int:
    return a + b


@duro.step(name="watchers.unit.fail")
async def fail() -> None:
    raise ValueError("the step's own error")


class Log(WorkerInterceptor):
    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name, self.log = name, log

    def attempt_started(self, info: StepInfo) -> Callable[[BaseException | None], None]:
        self.log.append((self.name, "start"))
        return lambda error: self.log.append(
            (self.name, type(error).__name__ if error else "ok"))


class Interrupt(WorkerInterceptor):
    def attempt_started(self, info: StepInfo) -> None:
        raise KeyboardInterrupt


def _attempt(step: Any, args: tuple[Any, ...], watchers: list[WorkerInterceptor]) -> Any:
    cmd = types.SimpleNamespace(step=step, args=args, kwargs={}, heartbeat=None)
    info = StepInfo(workflow_id="w", run_id="r", step=step.name, seq=1, attempt=1,
                    idempotency_key="r:1", heartbeat_details=None, deadline=None)
    return asyncio.run(run_attempt(cmd, info, None, None, lambda c: None,  # type: ignore[arg-type]
                                   watchers=watchers))


def test_watchers_begin_in_order_and_end_in_reverse_with_the_outcome() -> None:
    log: list[tuple[str, str]] = []
    assert _attempt(add, (1, 2), [Log("a", log), Log("b", log)]) == b"3"
    with pytest.raises(ValueError, match="own error"):
        _attempt(fail, (), [Log("a", log), Log("b", log)])
    assert log == [("a", "start"), ("b", "start"), ("b", "ok"), ("a", "ok"),
                   ("a", "start"), ("b", "start"), ("b", "ValueError"), ("a", "ValueError")]


def test_an_interrupt_in_a_watchers_start_ends_those_begun_and_goes_on_up() -> None:
    log: list[tuple[str, str]] = []
    with pytest.raises(KeyboardInterrupt):
        _attempt(add, (1, 2), [Log("a", log), Interrupt(), Log("b", log)])
    assert log == [("a", "start"), ("a", "KeyboardInterrupt")]


class Broken(WorkerInterceptor):
    def __init__(self, where: str) -> None:
        self.where = where

    def attempt_started(self, info: StepInfo) -> Callable[[BaseException | None], None]:
        if self.where == "start":
            raise RuntimeError("a watcher's bug at the start")

        def end(error: BaseException | None) -> None:
            raise RuntimeError("a watcher's bug at the end")
        return end


def test_one_watcher_is_told_of_the_start_and_the_outcome() -> None:
    """The common case (tracing alone) takes its own path: the same calls."""
    log: list[tuple[str, str]] = []
    assert _attempt(add, (2, 3), [Log("a", log)]) == b"5"
    with pytest.raises(ValueError, match="own error"):
        _attempt(fail, (), [Log("a", log)])
    assert log == [("a", "start"), ("a", "ok"), ("a", "start"), ("a", "ValueError")]


@pytest.mark.parametrize("where", ["start", "end"])
def test_one_watchers_bug_is_logged_and_costs_the_attempt_nothing(
        where: str, caplog: pytest.LogCaptureFixture) -> None:
    assert _attempt(add, (1, 1), [Broken(where)]) == b"2"
    with pytest.raises(ValueError, match="own error"):
        _attempt(fail, (), [Broken(where)])
    expected = "failed in attempt_started" if where == "start" \
        else "attempt_started hook's end failed"
    assert sum(expected in r.getMessage() for r in caplog.records) == 2


def test_an_interrupt_in_a_single_watchers_start_goes_on_up() -> None:
    with pytest.raises(KeyboardInterrupt):
        _attempt(add, (1, 2), [Interrupt()])
