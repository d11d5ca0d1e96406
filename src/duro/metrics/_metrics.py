"""``duro.metrics.Metrics``: the interceptor that turns what a client does and what a
worker commits into the instruments of ``INSTRUMENTS``."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from duro._history import EventKind, usage_of
from duro.errors import InvalidArgumentError
from duro.interceptors import (
    CancelInput,
    ClientInterceptor,
    EventsRecordedInput,
    QueryInput,
    ScheduleFiredInput,
    SignalInput,
    StartInput,
    TerminateInput,
    UpdateInput,
    WorkerInterceptor,
)
from duro.metrics._recorders import PrometheusRecorder, Recorder
from duro.usage import Usage

if TYPE_CHECKING:
    from duro.client import Client

__all__ = ["Metrics"]

K = EventKind
_CLOSED: dict[str, str] = {K.RUN_COMPLETED: "completed", K.RUN_FAILED: "failed",
           K.RUN_CANCELLED: "cancelled", K.RUN_TERMINATED: "terminated",
           K.RUN_TIMED_OUT: "timed_out", K.RUN_CONTINUED_AS_NEW: "continued_as_new"}
_OUTCOME: dict[str, str] = {K.STEP_COMPLETED: "completed", K.STEP_RETRYING: "retrying",
            K.STEP_FAILED: "failed"}
_NONE: Mapping[str, str] = {}


class Metrics(ClientInterceptor, WorkerInterceptor):
    """Metrics of the client calls and worker of an engine (or of a client alone, or a
    worker alone): pass it as an interceptor, and call :meth:`refresh` before reading
    the gauges (``duro serve --metrics`` does at each scrape of ``/metrics``)::

        metrics = duro.metrics.Metrics()          # Prometheus (extra duro[metrics])
        engine = duro.Engine(url, interceptors=[metrics])
        ...
        text = await metrics.exposition(engine)    # the body of a /metrics scrape

    Counters and histograms come from the events a worker commits (the
    ``events_recorded`` notification: never twice, a replay commits nothing) and the
    client calls made through it; gauges from the worker's state and the store,
    read by :meth:`refresh`. Every instrument is in ``duro.metrics.INSTRUMENTS`` and
    docs/observability.md.

    Args:
        recorder: Where values go: a :class:`PrometheusRecorder` (the default) or an
            :class:`OtelRecorder` (OpenTelemetry metrics), or your own.
    """

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder: Recorder = recorder if recorder is not None else PrometheusRecorder()

    # -- client calls ------------------------------------------------------------------

    def _call(self, call: str) -> None:
        self.recorder.add("duro_client_calls", 1, {"call": call})

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[Any]]) -> Any:
        result = await next(input)
        self._call("start")
        self.recorder.add("duro_runs_started", 1, {"workflow": input.workflow})
        return result

    async def signal(self, input: SignalInput,
                     next: Callable[[SignalInput], Awaitable[None]]) -> None:
        await next(input)
        self._call("signal")

    async def update(self, input: UpdateInput,
                     next: Callable[[UpdateInput], Awaitable[Any]]) -> Any:
        result = await next(input)
        self._call("update")
        return result

    async def query(self, input: QueryInput,
                    next: Callable[[QueryInput], Awaitable[Any]]) -> Any:
        result = await next(input)
        self._call("query")
        return result

    async def cancel(self, input: CancelInput,
                     next: Callable[[CancelInput], Awaitable[None]]) -> None:
        await next(input)
        self._call("cancel")

    async def terminate(self, input: TerminateInput,
                        next: Callable[[TerminateInput], Awaitable[None]]) -> None:
        await next(input)
        self._call("terminate")

    # -- what a worker commits ------------------------------------------------------------

    def events_recorded(self, input: EventsRecordedInput) -> None:
        rec = self.recorder
        workflow = input.workflow
        for ev in input.events:
            kind = ev.kind
            if kind in _OUTCOME:
                self._step(workflow, ev.name or "", _OUTCOME[kind], ev.meta)
            elif kind in _CLOSED:
                rec.add("duro_runs_closed", 1, {"workflow": workflow, "status": _CLOSED[kind]})
            elif kind == K.TIMER_FIRED and ev.op is not None and ev.op in input.timers_due:
                lag = ev.ts - input.timers_due[ev.op]
                rec.observe("duro_timer_lag_seconds", max(0.0, lag), {"workflow": workflow})
            elif kind == K.SIGNAL_RECEIVED:
                rec.add("duro_signals_received", 1, {"workflow": workflow})
            elif kind == K.CHILD_STARTED:
                rec.add("duro_runs_started", 1, {"workflow": ev.name or ""})

    def _step(self, workflow: str, step: str, outcome: str, meta: bytes | None) -> None:
        rec = self.recorder
        raw = orjson.loads(meta) if meta else {}
        if not isinstance(raw, dict):
            raw = {}
        if raw.get("cache_hit") is True:
            outcome = "cached"
        labels = {"workflow": workflow, "step": step}
        rec.add("duro_step_attempts", 1, {**labels, "outcome": outcome})
        duration = raw.get("duration")
        if outcome != "cached" and isinstance(duration, int | float) \
                and math.isfinite(duration) and duration >= 0:
            rec.observe("duro_step_duration_seconds", duration, labels)
        for item in usage_of(raw):
            usage = Usage.from_json(item)  # the one reading of a recorded call
            by_model = {**labels, "model": usage.model}
            for direction, count in (("in", usage.input_tokens),
                                     ("out", usage.output_tokens)):
                if count:
                    rec.add("duro_llm_tokens", count, {**by_model, "direction": direction})
            if usage.cost:
                rec.add("duro_llm_cost_usd", usage.cost, by_model)

    def schedule_fired(self, input: ScheduleFiredInput) -> None:
        labels = {"schedule": input.schedule_id}
        for tick in input.ticks:
            self.recorder.observe("duro_schedule_lag_seconds",
                                  max(0.0, input.fired_at - tick), labels)
        if input.missed:
            self.recorder.add("duro_schedule_ticks_missed", input.missed, labels)

    # -- gauges ------------------------------------------------------------------------------

    async def refresh(self, client: Client) -> None:
        """Read the gauges: the worker's held and cached runs and step tasks (when
        ``client`` is an engine with a worker), each queue's depth and running runs,
        and the store's commits (transactions, operations, seconds)."""
        rec = self.recorder
        worker = getattr(client, "worker", None)
        if worker is not None:
            rec.set("duro_worker_held_runs", len(worker.runs.active), _NONE)
            rec.set("duro_worker_cached_runs", len(worker.runs.cache), _NONE)
            rec.set("duro_worker_step_tasks", worker.tasks.running, _NONE)
        for queue in await client.queues():
            labels = {"queue": queue.config.name}
            rec.set("duro_queue_depth", queue.pending, labels)
            rec.set("duro_queue_running", queue.running, labels)
        store = getattr(client, "store", None)
        stats = getattr(store, "write_stats", None)
        if isinstance(stats, tuple):
            rec.set("duro_store_commits", stats[0], _NONE)
            rec.set("duro_store_commit_operations", stats[1], _NONE)
            rec.set("duro_store_commit_seconds", float(getattr(store, "write_seconds", 0.0)),
                    _NONE)

    async def exposition(self, client: Client) -> bytes:
        """:meth:`refresh`, then the Prometheus text (with a :class:`PrometheusRecorder`).

        Raises:
            InvalidArgumentError: The recorder is not a Prometheus one.
        """
        if not isinstance(self.recorder, PrometheusRecorder):
            raise InvalidArgumentError("exposition() needs a PrometheusRecorder")
        await self.refresh(client)
        return self.recorder.exposition()
