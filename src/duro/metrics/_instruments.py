"""Every instrument duro records, in one table: its name, kind, labels and meaning (the
Prometheus and OpenTelemetry recorders both build theirs from it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["INSTRUMENTS", "Instrument"]

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 300.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Instrument:
    """One metric."""

    name: str
    """Without unit or ``_total`` suffix handling: Prometheus counters get ``_total``."""
    kind: str
    """``counter``, ``histogram`` or ``gauge``."""
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()


INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument(name="duro_runs_started", kind="counter", labels=("workflow",),
               help="runs started by this process: client starts, and children its worker "
                    "started"),
    Instrument(name="duro_runs_closed", kind="counter", labels=("workflow", "status"),
               help="runs whose end this process's worker recorded, by status (completed, "
                    "failed, cancelled, timed_out, continued_as_new)"),
    Instrument(name="duro_client_calls", kind="counter", labels=("call",),
               help="client calls made by this process: start, signal, update, query, "
                    "cancel, terminate"),
    Instrument(name="duro_step_attempts", kind="counter",
               labels=("workflow", "step", "outcome"),
               help="step attempts recorded, by outcome: completed, retrying (failed, to be "
                    "retried), failed (for good), cached (a cache hit, nothing ran)"),
    Instrument(name="duro_step_duration_seconds", kind="histogram", unit="s",
               labels=("workflow", "step"), buckets=_SECONDS,
               help="the running time of step attempts (retries each counted)"),
    Instrument(name="duro_timer_lag_seconds", kind="histogram", unit="s",
               labels=("workflow",), buckets=_SECONDS,
               help="how late durable timers fired (recorded time - due time)"),
    Instrument(name="duro_schedule_lag_seconds", kind="histogram", unit="s",
               labels=("schedule",), buckets=_SECONDS,
               help="how late schedule ticks were acted on (fired - due), by this "
                    "process's scheduler"),
    Instrument(name="duro_schedule_ticks_missed", kind="counter", labels=("schedule",),
               help="schedule ticks skipped as older than their catch-up window"),
    Instrument(name="duro_signals_received", kind="counter", labels=("workflow",),
               help="signals delivered into runs' histories"),
    Instrument(name="duro_llm_tokens", kind="counter",
               labels=("workflow", "step", "model", "direction"),
               help="model tokens recorded by duro.record_usage, direction in or out"),
    Instrument(name="duro_llm_cost_usd", kind="counter", labels=("workflow", "step", "model"),
               help="model cost in US dollars recorded by duro.record_usage (priced calls)"),
    Instrument(name="duro_worker_held_runs", kind="gauge",
               help="runs this process's worker holds in memory and executes"),
    Instrument(name="duro_worker_cached_runs", kind="gauge",
               help="suspended runs this process's worker keeps in memory"),
    Instrument(name="duro_worker_step_tasks", kind="gauge",
               help="step attempts of other runs (step queues) running in this worker"),
    Instrument(name="duro_queue_depth", kind="gauge", labels=("queue",),
               help="runs waiting in the queue (deployment-wide, read from the store)"),
    Instrument(name="duro_queue_running", kind="gauge", labels=("queue",),
               help="runs of the queue running now (deployment-wide)"),
    Instrument(name="duro_store_commits", kind="gauge",
               help="transactions this process's store has committed since it opened"),
    Instrument(name="duro_store_commit_operations", kind="gauge",
               help="operations in those transactions (operations / commits = batch size)"),
    Instrument(name="duro_store_commit_seconds", kind="gauge", unit="s",
               help="seconds spent in those transactions (seconds / commits = the mean "
                    "commit latency)"),
)}
