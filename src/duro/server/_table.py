"""The route table: every route of the API, once, with the scope it needs and what the
OpenAPI document says of it. ``create_app`` serves this table and ``GET /openapi.json``
describes it; nothing else declares a route.

Status codes: 202 for what is accepted and goes on without the caller (a start, a
signal, a cancel, an update still pending), 201 for a new run or schedule made by the
request (retry, reset, fork, trigger, create: with its ``Location``), 200 for what is
read or done at once, 204 for a deletion.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from duro.client._approvals import MAX_LIMIT as MAX_APPROVALS
from duro.client._listing import MAX_PAGE_SIZE
from duro.schedules._spec import MAX_TICKS
from duro.server import _approvals as approvals
from duro.server import _budgets as budgets
from duro.server import _cache as step_cache
from duro.server import _operations as operations
from duro.server import _runs as runs
from duro.server import _schedules as schedules
from duro.server import _steps as steps
from duro.server._events import events
from duro.server._openapi import DOCS_PAGE, openapi
from duro.server._problems import NotEnabled, json
from duro.server._routes import Api, ApiRoute, Param, Scope
from duro.server._runs import MAX_HISTORY_PAGE, MAX_WAIT, SEARCH_PREFIX
from duro.server._streams import stream
from duro.server._ui import UI_ROUTES
from duro.server._webhooks import SIGNAL_ID_HEADER

__all__ = ["ROUTES"]


async def _healthz(request: Request, api: Api) -> Response:
    return json({"ok": True})


async def _readyz(request: Request, api: Api) -> Response:
    await api.client.list(limit=1)  # one indexed read: the store answers (else 503)
    return json({"ok": True})


async def _metrics(request: Request, api: Api) -> Response:
    if api.metrics is None:
        raise NotEnabled("metrics are off: serve with duro serve --metrics")
    from duro.metrics import PrometheusRecorder

    recorder = api.metrics.recorder
    body = await api.metrics.exposition(api.root or api.client)
    assert isinstance(recorder, PrometheusRecorder)
    return Response(body, media_type=recorder.content_type)


async def _openapi(request: Request, api: Api) -> Response:
    return Response(_document(request.scope.get("root_path", "")),
                    media_type="application/json")


@cache
def _document(root_path: str) -> bytes:
    import orjson

    from duro import __version__

    return orjson.dumps(openapi(ROUTES, version=__version__, root_path=root_path))


async def _docs(request: Request, api: Api) -> Response:
    return HTMLResponse(DOCS_PAGE)


def _query(name: str, schema: dict[str, Any], description: str) -> Param:
    return Param(name=name, schema=schema, description=description)


def _last_event_id(description: str) -> Param:
    return Param(name="Last-Event-ID", where="header", schema={"type": "string"},
                 description=description)


_RUN_ID = _query("run_id", {"type": "string", "minLength": 1},
                 "that run of the workflow id (default: its latest)")
_IDEMPOTENCY_KEY = Param(name="Idempotency-Key", where="header", schema={"type": "string"},
                         description="the workflow id when the body has none")
_LIST_PARAMS = (
    _query("status", {"$ref": "#/components/schemas/RunStatus"}, "only runs with it"),
    _query("workflow", {"type": "string"}, "only runs of this workflow name"),
    _query("id_prefix", {"type": "string"}, "only workflow ids that start with it"),
    _query("created_after", {"type": "string"},
           "created at or after: epoch seconds or ISO 8601 with an offset"),
    _query("created_before", {"type": "string"}, "created before it"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
           "runs per page (default 100)"),
    _query("cursor", {"type": "string"}, "the next_cursor of the previous page"),
)
_WAIT = {"type": "number", "minimum": 0}
# A webhook delivery: its id, and a provider's own JSON as the payload (server/_webhooks).
_SIGNAL_ID_HEADER = Param(name=SIGNAL_ID_HEADER, where="header", schema={"type": "string"},
                          description="the delivery id when the body has none")
_PAYLOAD_BODY = _query("payload", {"enum": ["body"]},
                       "body: the whole body (any JSON: a provider's own) is the signal's "
                       "payload, and the other fields come from this query string")
_SIGNAL_ID = _query("signal_id", {"type": "string", "minLength": 1},
                    "the delivery id (with payload=body)")
_DELIVERY = (_SIGNAL_ID_HEADER, _PAYLOAD_BODY, _SIGNAL_ID)
_SIGNAL_START_QUERY = (
    _query("workflow", {"type": "string", "minLength": 1}, "the workflow (with payload=body)"),
    _query("id", {"type": "string", "minLength": 1}, "the workflow id (with payload=body)"),
    _query("signal", {"type": "string", "minLength": 1}, "the signal (with payload=body)"),
)

_CACHE_FILTERS = (
    _query("step", {"type": "string", "minLength": 1}, "only this step's entries"),
    _query("scope", {"type": "string"},
           "only this scope's (a tenant...; empty: the global scope)"),
)

_R: Scope = "read"
_W: Scope = "write"
_A: Scope = "admin"

ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(method="GET", path="/healthz", handler=_healthz, scope=None, tag="service",
             summary="liveness: the process answers", responses={200: "Health"}),
    ApiRoute(method="GET", path="/readyz", handler=_readyz, scope=None, tag="service",
             summary="readiness: the store answers (503 if not)",
             responses={200: "Health"}),
    ApiRoute(method="GET", path="/metrics", handler=_metrics, scope=_R, tag="service",
             summary="Prometheus metrics of this server and its worker (duro serve "
                     "--metrics; 404 not_enabled without)",
             responses={200: "text"}, media="text/plain",
             description="The instruments are listed in docs/observability.md."),
    ApiRoute(method="GET", path="/openapi.json", handler=_openapi, scope=None,
             tag="service", summary="this document", responses={200: "OpenApi"}),
    ApiRoute(method="GET", path="/docs", handler=_docs, scope=None, tag="service",
             summary="a page listing the routes", responses={200: "html"},
             media="text/html"),
    # -- runs: start and message
    ApiRoute(method="POST", path="/v1/runs", handler=runs.start, scope=_W, tag="runs",
             summary="start a run (the same id again: the same run)",
             params=(_IDEMPOTENCY_KEY,), body="StartRequest", responses={202: "RunRef"}),
    ApiRoute(method="POST", path="/v1/signal-with-start", handler=runs.signal_with_start,
             scope=_W, tag="runs", params=(_IDEMPOTENCY_KEY, *_DELIVERY, *_SIGNAL_START_QUERY),
             summary="signal the live run of the id, starting it first if there is none "
                     "(the webhook pattern)",
             body="SignalWithStartRequest", responses={202: "RunRef"}),
    ApiRoute(method="POST", path="/v1/update-with-start", handler=runs.update_with_start,
             scope=_W, tag="runs", params=(_IDEMPOTENCY_KEY,),
             summary="send an update to the live run of the id, starting it first if "
                     "there is none, and wait for its result",
             body="UpdateWithStartRequest",
             responses={200: "UpdateResult", 202: "UpdatePending"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/signals/{name}",
             handler=runs.signal, scope=_W, tag="runs", summary="signal the live run",
             params=_DELIVERY, body="SignalRequest", responses={202: "RunRef"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/updates/{name}",
             handler=runs.update, scope=_W, tag="runs",
             summary="send an update and wait for its result (202 while it is pending: "
                     "send it again with the same id to wait more)",
             body="UpdateRequest", responses={200: "UpdateResult", 202: "UpdatePending"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/queries/{name}",
             handler=runs.query, scope=_R, tag="runs", summary="ask the run a query",
             params=(_query("args", {"type": "string"}, "the arguments, a JSON array"),
                     _RUN_ID, _query("timeout", _WAIT, "seconds a worker may take to "
                                                       "answer (default 10, at most 60)")),
             responses={200: "QueryResult"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/queries/{name}",
             handler=runs.query_post, scope=_R, tag="runs",
             summary="ask the run a query (arguments in the body)", body="QueryRequest",
             responses={200: "QueryResult"}),
    # -- runs: read
    ApiRoute(method="GET", path="/v1/runs", handler=runs.list_runs, scope=_R, tag="runs",
             summary="find runs, newest first, a page at a time", params=_LIST_PARAMS,
             prefix_param=SEARCH_PREFIX, responses={200: "RunPage"},
             description="Search attributes filter as query parameters "
                         f"`{SEARCH_PREFIX}<key>=<value>` (the value as JSON if it is a "
                         "string, number or boolean, else as text)."),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}", handler=runs.describe,
             scope=_R, tag="runs", summary="the run (its result or error once ended)",
             params=(_RUN_ID,), responses={200: "Run"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/result", handler=runs.result,
             scope=_R, tag="runs",
             summary="wait up to ?wait= seconds (at most 60) for the run to end",
             params=(_query("wait", _WAIT, "seconds to wait (default 0)"), _RUN_ID),
             responses={200: "Run", 202: "Run"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/history", handler=runs.history,
             scope=_R, tag="runs", summary="the run's events, a page at a time",
             params=(_query("after", {"type": "integer", "minimum": 0},
                            "only events after this sequence number (default: from the first, 0)"),
                     _query("limit", {"type": "integer", "minimum": 1,
                                      "maximum": MAX_HISTORY_PAGE},
                            "events per page (default 1000)"), _RUN_ID),
             responses={200: "HistoryPage"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/children", handler=runs.children,
             scope=_R, tag="runs", summary="the runs this run started as child workflows",
             params=(_RUN_ID,), responses={200: "RunList"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/usage", handler=runs.usage,
             scope=_R, tag="runs",
             summary="what the run's model calls spent (duro.record_usage): tokens and "
                     "cost, in total, by model and by step",
             params=(_RUN_ID,), responses={200: "RunUsage"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/waiting", handler=runs.waiting,
             scope=_R, tag="runs",
             summary="what the run waits for now: the signals its code awaits and since "
                     "when, its timers and conditions (recorded as it suspended), its "
                     "steps routed to a queue not done yet (claimed or not)",
             params=(_RUN_ID,), responses={200: "RunWaits"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/state/{key}", handler=runs.state,
             scope=_R, tag="runs",
             summary="the value the run published last under the key (duro.set_state), "
                     "following continue-as-new; 202 while it has published none",
             params=(_query("wait", _WAIT, "seconds to wait for a first value (at most 60)"),
                     _RUN_ID),
             responses={200: "StateValue", 202: "StateValue"}),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/events", handler=events,
             scope=_R, tag="runs", media="text/event-stream",
             summary="the run's history live, as Server-Sent Events",
             params=(_last_event_id("resume after this event (its sequence number)"),
                     _query("after", {"type": "integer", "minimum": 0},
                            "start after this sequence number"), _RUN_ID),
             responses={200: "stream"},
             description="Each event is an SSE message with `id:` its sequence number "
                         "and as data its JSON (as in the history); when the run has "
                         "ended, a last message `event: end` carries the run."),
    ApiRoute(method="GET", path="/v1/runs/{workflow_id}/stream", handler=stream,
             scope=_R, tag="runs", media="text/event-stream",
             summary="the run's stream (what its steps give to duro.stream()) live, as "
                     "Server-Sent Events",
             params=(_last_event_id("resume after this item (its offset)"),
                     _query("from", {"type": "integer", "minimum": 0},
                            "the first offset to send (default 0)"), _RUN_ID),
             responses={200: "stream"},
             description="Each item is an SSE message with `id:` its offset and as data "
                         "its JSON (`offset`, `kind`: chunk, superseded or truncated, "
                         "`step`, `op`, `attempt`, `execution`, `data`, `superseded`, "
                         "`time`); when the run has ended and every item was sent, a "
                         "last message `event: end` carries the run."),
    # -- runs: act
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/cancel", handler=runs.cancel,
             scope=_W, tag="runs", summary="ask the live run to cancel",
             responses={202: "RunRef"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/terminate",
             handler=runs.terminate, scope=_A, tag="runs",
             summary="stop the live run at once", body="TerminateRequest",
             responses={200: "Run"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/resume", handler=runs.resume,
             scope=_A, tag="runs",
             summary="retry a parked run now (after repairing what parked it)",
             responses={202: "RunRef"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/retry", handler=runs.retry,
             scope=_A, tag="runs",
             summary="re-run a failed or timed-out run from where it failed",
             responses={201: "RunRef"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/reset", handler=runs.reset,
             scope=_A, tag="runs",
             summary="a new run that keeps the first `to` events (a live run is "
                     "terminated first)", body="ResetRequest", responses={201: "RunRef"}),
    ApiRoute(method="POST", path="/v1/runs/{workflow_id}/fork", handler=runs.fork,
             scope=_A, tag="runs",
             summary="a new run under a new workflow id from the first `to` events",
             body="ForkRequest", responses={201: "RunRef"}),
    # -- human approvals
    ApiRoute(method="GET", path="/v1/approvals", handler=approvals.list_approvals, scope=_R,
             tag="approvals", summary="approvals, oldest request first: the pending ones "
                                      "(the inbox) by default",
             params=(_query("status", {"enum": ["pending", "approved", "rejected",
                                                "timed_out", "run_ended", "all"]},
                            "only approvals with it (default pending; all: every one)"),
                     _query("workflow", {"type": "string"},
                            "only those of runs of this workflow name"),
                     _query("workflow_id", {"type": "string"},
                            "only those of runs with this workflow id"),
                     _query("name", {"type": "string"}, "only approvals of this name"),
                     _query("limit", {"type": "integer", "minimum": 1,
                                      "maximum": MAX_APPROVALS},
                            "approvals per page (default 100)"),
                     _query("cursor", {"type": "string"},
                            "the next_cursor of the previous page")),
             responses={200: "ApprovalPage"}),
    ApiRoute(method="GET", path="/v1/approvals/{approval_id}",
             handler=approvals.get_approval, scope=_R, tag="approvals",
             summary="an approval, whatever its status", responses={200: "Approval"}),
    ApiRoute(method="POST", path="/v1/approvals/{approval_id}/approve",
             handler=approvals.approve, scope=_W, tag="approvals",
             summary="approve a pending approval: the waiting run goes on",
             body="DecisionRequest", responses={200: "Approval"},
             description="With API tokens the decider recorded is the token's name (a "
                         "`by` naming anyone else is refused); without them, `by` or "
                         "`anonymous`. A second decision is refused (409 "
                         "`approval_not_pending`): the first stands."),
    ApiRoute(method="POST", path="/v1/approvals/{approval_id}/reject",
             handler=approvals.reject, scope=_W, tag="approvals",
             summary="reject a pending approval: the waiting run goes on",
             body="DecisionRequest", responses={200: "Approval"},
             description="As `approve`, with the opposite verdict."),
    # -- steps completed from outside (duro.complete_later)
    ApiRoute(method="POST", path="/v1/steps/{token}/complete", handler=steps.complete_step,
             scope=_W, tag="steps", summary="complete a step attempt waiting for it, by its "
             "token", body="StepCompleteRequest", responses={204: None},
             description="The token is the attempt's `duro.step_info().completion_token`. "
                         "The run records the result as the step's outcome if the attempt "
                         "still waits for it (a second completion records nothing)."),
    ApiRoute(method="POST", path="/v1/steps/{token}/fail", handler=steps.fail_step,
             scope=_W, tag="steps", summary="fail a step attempt waiting for it, by its token",
             body="StepFailRequest", responses={204: None},
             description="The step's retry policy applies (a retry runs the step again, "
                         "with a new token) unless `non_retryable`."),
    ApiRoute(method="POST", path="/v1/steps/{token}/heartbeat", handler=steps.heartbeat_step,
             scope=_W, tag="steps", summary="keep progress details of a step attempt",
             body="HeartbeatRequest", responses={204: None}),
    # -- durable RPC (docs/rpc.md)
    ApiRoute(method="POST", path="/v1/operations/{name}", handler=operations.start_operation,
             scope=_W, tag="operations",
             summary="start an exposed operation, once per operation id (the same id "
                     "again: the same run), and say where it stands",
             body="OperationRequest", responses={202: "OperationState"},
             description="Only workflows this deployment exposes are found (404 "
                         "`operation_not_found` for any other name)."),
    ApiRoute(method="GET", path="/v1/operations/{name}/{operation_id}",
             handler=operations.get_operation, scope=_R, tag="operations",
             summary="an operation's state: running, or its outcome (result or error)",
             params=(_query("wait", {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
                            "seconds to wait for the operation to end (default 0, at most "
                            "60): answered as soon as it ends, else with its state then"),),
             responses={200: "OperationState"},
             description="A caller's `duro.call` long-polls with `wait` (its endpoint's "
                         "`long_poll`), so a running operation costs its history one "
                         "`step_retrying` per wait, not one per short poll."),
    ApiRoute(method="POST", path="/v1/operations/{name}/{operation_id}/cancel",
             handler=operations.cancel_operation, scope=_W, tag="operations",
             summary="ask a running operation to cancel (an ended one stays as it ended)",
             responses={202: "OperationState"},
             description="An id never started is recorded as cancelled: a start of it "
                         "that comes later (held by a slow proxy) runs nothing."),
    ApiRoute(method="POST", path="/v1/callbacks", handler=operations.callback, scope=None,
             tag="operations",
             summary="an operation's outcome from its callee, signed (Duro-Signature): it "
                     "reaches the calling run once",
             body="CallbackRequest", responses={200: "CallbackAccepted"},
             description="No token: the HMAC signature under the call's key stands for "
                         "one (401 `invalid_signature` otherwise; 404 `not_enabled` "
                         "without a callback secret)."),
    # -- schedules, queues, workers
    ApiRoute(method="POST", path="/v1/schedules", handler=schedules.create_schedule,
             scope=_W, tag="schedules", summary="create a schedule",
             body="ScheduleRequest", responses={201: "Schedule"}),
    ApiRoute(method="GET", path="/v1/schedules", handler=schedules.list_schedules,
             scope=_R, tag="schedules", summary="every schedule, by id",
             responses={200: "ScheduleList"}),
    ApiRoute(method="GET", path="/v1/schedules/{schedule_id}",
             handler=schedules.get_schedule, scope=_R, tag="schedules",
             summary="a schedule", responses={200: "Schedule"}),
    ApiRoute(method="GET", path="/v1/schedules/{schedule_id}/ticks",
             handler=schedules.schedule_ticks, scope=_R, tag="schedules",
             summary="the schedule's next ticks, from the pending one (times in UTC; its "
                     "time zone beside them)",
             params=(_query("count", {"type": "integer", "minimum": 1,
                                      "maximum": MAX_TICKS},
                            "how many ticks (default 5)"),),
             responses={200: "ScheduleTicks"}),
    ApiRoute(method="PATCH", path="/v1/schedules/{schedule_id}",
             handler=schedules.update_schedule, scope=_W, tag="schedules",
             summary="change a schedule in place (what is given; null or absent: kept)",
             body="ScheduleUpdateRequest", responses={200: "Schedule"},
             description="Its id, runs, counters, paused state and note stay. A new "
                         "timing (`cron`, `every`, `timezone`, `anchor`) fires from the "
                         "first tick after now; other changes keep the pending tick. "
                         "`cron` turns an interval schedule into a cron one, `every` the "
                         "reverse (not both)."),
    ApiRoute(method="DELETE", path="/v1/schedules/{schedule_id}",
             handler=schedules.delete_schedule, scope=_A, tag="schedules",
             summary="delete a schedule (its runs stay)", responses={204: None}),
    ApiRoute(method="POST", path="/v1/schedules/{schedule_id}/pause",
             handler=schedules.pause_schedule, scope=_W, tag="schedules",
             summary="stop firing ticks", body="NoteRequest", responses={200: "Schedule"}),
    ApiRoute(method="POST", path="/v1/schedules/{schedule_id}/resume",
             handler=schedules.resume_schedule, scope=_W, tag="schedules",
             summary="fire ticks again, from the next one", body="NoteRequest",
             responses={200: "Schedule"}),
    ApiRoute(method="POST", path="/v1/schedules/{schedule_id}/trigger",
             handler=schedules.trigger_schedule, scope=_W, tag="schedules",
             summary="start a run now", responses={201: "RunRef"}),
    ApiRoute(method="POST", path="/v1/schedules/{schedule_id}/backfill",
             handler=schedules.backfill_schedule, scope=_W, tag="schedules",
             summary="start the runs of past ticks that have none",
             body="BackfillRequest", responses={200: "Backfilled"}),
    ApiRoute(method="GET", path="/v1/queues", handler=schedules.queues, scope=_R,
             tag="service", summary="each queue's depth, running runs and limits",
             responses={200: "QueueList"}),
    ApiRoute(method="GET", path="/v1/stats", handler=schedules.stats, scope=_R,
             tag="service",
             summary="analytics of the runs created since a time: per workflow and step, "
                     "with the most frequent error types",
             params=(_query("since", {"type": "string"},
                            "a duration before now (7d, 1h30m, 90s), or epoch seconds, or "
                            "ISO 8601 with an offset (default: every run)"),
                     _query("workflow", {"type": "string"}, "only runs of this workflow name")),
             responses={200: "Stats"},
             description="Every field is defined in docs/observability.md."),
    # -- the durable step cache (docs/agents.md)
    ApiRoute(method="GET", path="/v1/cache", handler=step_cache.list_cache, scope=_R,
             tag="service", summary="the step cache: entry counts per step and scope",
             params=_CACHE_FILTERS, responses={200: "CacheList"}),
    ApiRoute(method="DELETE", path="/v1/cache", handler=step_cache.clear_cache, scope=_A,
             tag="service",
             summary="invalidate cached step results (all of the namespace, or by step, "
                     "scope, expired)",
             params=(*_CACHE_FILTERS,
                     _query("expired", {"enum": ["true", "false", "1", "0"]},
                            "only entries past their ttl")),
             responses={200: "CacheCleared"}),
    ApiRoute(method="GET", path="/v1/workers", handler=schedules.workers, scope=_R,
             tag="service", summary="the workers registered in the store",
             responses={200: "WorkerList"}),
    # -- budgets
    ApiRoute(method="GET", path="/v1/budgets", handler=budgets.list_budgets, scope=_R,
             tag="budgets",
             summary="the shared budgets' spend per key and window, latest window first",
             params=(_query("key", {"type": "string"}, "only this budget key"),
                     _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                            "rows at most (default 100)")),
             responses={200: "BudgetList"},
             description="Every field is defined in docs/agents.md (Budgets)."),
    ApiRoute(method="POST", path="/v1/budgets/{key}/limit", handler=budgets.set_budget_limit,
             scope=_A, tag="budgets",
             summary="set the limits of a key's current window (raise them to let paused "
                     "runs go on; none: back to the runs' own)",
             body="BudgetLimitRequest", responses={200: "BudgetSpend"}),
    # -- the web UI: the page and its files (public: they hold no data; docs/ui.md)
    *UI_ROUTES,
)
"""Every route: a route's scope is checked by the one wrapper every request passes
through (``_app.py``)."""
