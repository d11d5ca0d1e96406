"""Steps routed to queues: the worker side that runs other runs' step attempts.

A run whose step has ``queue=...`` does not execute it: it stores a task (one per
attempt) and waits. Workers serving that queue claim tasks here, run the attempt with
the same timeouts and heartbeats as a local step, and send the outcome to the run's
inbox; the run's owner then records it exactly as for a local step (and applies the
retry policy), so the history does not depend on where the step ran.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from duro._history import headers_of
from duro._messages import TaskDone
from duro.errors import DuroError, ErrorInfo, NonRetryableError, PayloadDecodeError
from duro.step._step import CompleteLater, Step, StepInfo, _registry, registered
from duro.store._records import TaskRecord
from duro.worker._steps import cancelled_here, run_attempt
from duro.workflow._instance import StepCommand
from duro.workflow._messages import convert_args

if TYPE_CHECKING:
    from duro.worker._worker import Worker

__all__ = ["TaskRunner"]

log = logging.getLogger("duro.worker")


class TaskRunner:
    """Claims and runs step tasks for one worker."""

    def __init__(self, worker: Worker, *, max_tasks: int) -> None:
        self.worker = worker
        self.max_tasks = max_tasks
        self.running = 0

    def steps(self) -> list[str]:
        """Steps this process can run for others (those declared with a queue; a method
        step only if an object of its class is registered: ``duro.register_steps``)."""
        return sorted(name for name, s in _registry.items()
                      if s.queue is not None and registered(s) is not None)

    async def poll(self, queues: Sequence[str] | None) -> None:
        """Claim waiting tasks while there is room, and start them."""
        steps = self.steps()
        room = self.max_tasks - self.running
        store = self.worker.store
        if room <= 0 or not steps or not await store.has_tasks(queues, steps):
            return
        tasks = await store.claim_tasks(self.worker.worker_id, queues, steps, room,
                                        real_now=time.time())
        for task in tasks:
            self.running += 1
            self.worker.spawn(self._run(task))

    async def _run(self, task: TaskRecord) -> None:
        try:
            data, meta = await self._attempt(task)
            if TaskDone.decode(meta).completed:
                data = await self.worker.payloads.encode(data)
            done = await self.worker.store.complete_task(
                task, self.worker.worker_id, data, meta, now=self.worker.clock.now())
            if not done:
                log.info("task %s was taken over meanwhile; its outcome is dropped",
                         task.task_id)
        except asyncio.CancelledError:
            pass  # the worker stops: the task goes back to pending with its lease
        except DuroError as exc:
            log.warning("could not complete task %s: %s", task.task_id, exc)
        finally:
            self.running -= 1
            self.worker.wake()

    async def _attempt(self, task: TaskRecord) -> tuple[bytes | None, bytes]:
        known = _registry.get(task.step)
        step = None if known is None else registered(known)
        info = orjson.loads(task.info) if task.info else {}
        started = time.perf_counter()
        if step is None:  # pragma: no cover - claims only name steps it can run
            raise DuroError(f"no step {task.step!r} here")
        try:
            stored = await self.worker.payloads.decode(task.args)
            raw = orjson.loads(stored) if stored else {}
            args = convert_args(step.fn, list(raw.get("args", [])))
            kwargs = dict(raw.get("kwargs", {}))
        except (orjson.JSONDecodeError, TypeError, ValueError, PayloadDecodeError) as exc:
            err = PayloadDecodeError(f"arguments of task {task.task_id}: {exc}")
            return _outcome(task, None, err, step, time.perf_counter() - started, None)
        loop = asyncio.get_running_loop()
        cmd = StepCommand(op=task.op, step=step, args=tuple(args), kwargs=kwargs,
                          future=loop.create_future(), heartbeat=info.get("heartbeat"))
        deadline = loop.time() + step.timeout if step.timeout is not None else None
        step_info = StepInfo(workflow_id=str(info.get("workflow_id", "")), run_id=task.run_id,
                             step=step.name, seq=task.op, attempt=task.attempt,
                             idempotency_key=f"{task.run_id}:{task.op}",
                             heartbeat_details=cmd.heartbeat, deadline=deadline,
                             headers=headers_of(info.get("headers")) or {},
                             queue=task.queue, workflow=str(info.get("workflow", "")))
        try:
            data = await run_attempt(cmd, step_info, self.worker.executor, deadline,
                                     lambda c: None, self.worker.step_hooks,
                                     self.worker.streams, self.worker.attempt_hooks)
        except BaseException as exc:  # the step's code may raise anything
            if cancelled_here(exc):
                raise
            if isinstance(exc, CompleteLater):  # its token names the run's worker's attempt
                exc = NonRetryableError(f"step {step.name!r} called duro.complete_later(), "
                                        "which steps routed to a queue cannot do")
            return _outcome(task, None, exc, step, time.perf_counter() - started,
                            cmd.heartbeat, step_info._usage)
        return _outcome(task, data, None, step, time.perf_counter() - started, cmd.heartbeat,
                        step_info._usage)


def _outcome(task: TaskRecord, data: bytes | None, exc: BaseException | None,
             step: Step[Any, Any], took: float, heartbeat: Any,
             usage: list[dict[str, Any]] | None = None) -> tuple[bytes | None, bytes]:
    """What the run's owner needs to record the attempt as if it had run it: the result
    (or the error payload), as it is to be stored, and :class:`TaskDone` (with what the
    attempt spent)."""
    spent = tuple(usage or ())
    if exc is None:
        return data, TaskDone(attempt=task.attempt, duration=took, completed=True,
                              heartbeat=heartbeat, usage=spent).encode()
    retryable = step.retry.is_retryable(exc)
    err = ErrorInfo.from_exception(exc, non_retryable=not retryable)
    return err.to_payload(), TaskDone(
        attempt=task.attempt, duration=took, completed=False, heartbeat=heartbeat,
        non_retryable=not retryable, retry_after=getattr(exc, "retry_after", None),
        usage=spent).encode()
