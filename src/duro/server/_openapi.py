"""The API's description, made from the route table: the OpenAPI 3.1 document
(``GET /openapi.json``) and a small page that renders it (``GET /docs``: no CDN, no
build, one inline script).

The schemas below are the JSON forms the routes send and take (the read models'
``to_json()``, the bodies ``_runs.py`` and ``_schedules.py`` read); a test checks every
route of the table is in the document, and schemathesis checks the responses against
it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from duro._checks import MAX_ID_LENGTH
from duro.server._routes import ApiRoute
from duro.store import RunStatus

__all__ = ["DOCS_PAGE", "SCHEMAS", "openapi"]

_PATH_PARAM = re.compile(r"{(\w+)}")
_PROBLEM_MEDIA = "application/problem+json"

_STRING: dict[str, Any] = {"type": "string"}
_NULL_STRING: dict[str, Any] = {"type": ["string", "null"]}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NULL_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_INT: dict[str, Any] = {"type": "integer"}
_ANY: dict[str, Any] = {}
_STRINGS: dict[str, Any] = {"type": "object", "additionalProperties": _STRING}
_SEARCH_VALUE: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Mapping[str, Any], required: Iterable[str] = (), *,
            closed: bool = False) -> dict[str, Any]:
    """An object schema (``closed``: no other properties, as the request bodies are)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required := sorted(required):
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _body(properties: Mapping[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    return _object(properties, required, closed=True)


_ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_SIGNAL_ID: dict[str, Any] = {
    **_ID, "description": "the delivery id: at most one signal with it reaches the workflow "
                          "id's runs (a provider's retries are no-ops)"}
_START_FIELDS: dict[str, Any] = {
    "workflow": {**_ID, "description": "the workflow's registered name"},
    "id": {**_ID, "description": "the workflow id: the idempotency key (default: the "
                                 "Idempotency-Key header, else a random one)"},
    "args": {"type": "array", "description": "positional arguments"},
    "kwargs": {"type": "object", "description": "keyword arguments"},
    "headers": {**_STRINGS, "description": "context carried with the run"},
    "search_attributes": {"type": "object", "additionalProperties": _SEARCH_VALUE},
}
_REUSE = {"enum": ["use_existing", "allow", "allow_failed", "fail"],
          "description": "what a finished run with this id means"}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0,
            "description": "seconds the whole run may take"}
_START_OPTIONS: dict[str, Any] = {
    "on_conflict": {"enum": ["use_existing", "fail"],
                    "description": "what a live run with this id means"},
    "on_reuse": _REUSE, "execution_timeout": _TIMEOUT,
    "queue": {**_ID, "description": "the queue (default: the workflow's)"},
    "priority": {"type": "integer", "description": "higher starts first"},
    "concurrency_key": _STRING, "dedup_key": _STRING,
    "on_dedup": {"enum": ["use_existing", "fail"]},
    "start_at": {"type": ["number", "string"],
                 "description": "not before: epoch seconds, or ISO 8601 with a UTC offset"},
    "start_delay": {"type": "number", "minimum": 0, "description": "not before this delay"},
    "debounce_key": _STRING, "debounce": _TIMEOUT,
    "budget": {"oneOf": [{"$ref": "#/components/schemas/Budget"},
                         {"type": "array", "items": {"$ref": "#/components/schemas/Budget"}}],
               "description": "the run's budgets (docs/agents.md, Budgets)"},
}
"""The options of a start (``duro.Client.start``'s, by name)."""
_SECONDS: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0,
                            "description": "seconds to wait (at most 60, the default)"}
_RUN_FIELDS: dict[str, Any] = {
    "workflow_id": _STRING, "run_id": _STRING, "workflow_name": _STRING,
    "status": _ref("RunStatus"), "created_at": _TIME, "updated_at": _TIME,
    "closed_at": _NULL_TIME, "duration": {"type": ["number", "null"]}, "wake_at": _NULL_TIME,
    "owner": _NULL_STRING, "history_length": _INT, "result": _ANY,
    "error": {"anyOf": [_ref("ErrorInfo"), {"type": "null"}]},
    "parent_run_id": _NULL_STRING, "origin_run_id": _NULL_STRING, "headers": _STRINGS,
    "search_attributes": {"type": "object", "additionalProperties": _SEARCH_VALUE},
    "damage": _STRING,
}
_SCHEDULE_FIELDS: dict[str, Any] = {
    "schedule_id": _STRING, "workflow_name": _STRING, "queue": _STRING,
    "args": {"type": "array"}, "kwargs": {"type": "object"}, "cron": _NULL_STRING,
    "every": {"type": ["number", "null"]}, "timezone": _STRING, "anchor": _NULL_TIME,
    "overlap": _STRING, "catch_up": {"type": "number"}, "source": _STRING,
    "paused": {"type": "boolean"}, "note": _NULL_STRING, "next_fire_at": _NULL_TIME,
    "next_fire_local": _NULL_TIME, "last_fire_at": _NULL_TIME,
    "last_workflow_id": _NULL_STRING, "buffered_at": _NULL_TIME,
    "fired": _INT, "missed": _INT, "overlap_skipped": _INT, "created_at": _TIME,
    "updated_at": _TIME,
}
_INSTANT: dict[str, Any] = {"type": ["number", "string"],
                            "description": "epoch seconds, or ISO 8601 with a UTC offset"}
_NULL_INT: dict[str, Any] = {"type": ["integer", "null"]}
_NULL_NUMBER: dict[str, Any] = {"type": ["number", "null"]}
_WORKFLOW_COUNTS = ("started", "completed", "failed", "timed_out", "cancelled", "terminated",
                    "continued_as_new", "live")
_STEP_COUNTS = ("attempts", "completed", "retries", "failed", "failures")

SCHEMAS: dict[str, Any] = {
    "Problem": _object({"type": _STRING, "title": _STRING, "status": _INT, "code": _STRING,
                        "detail": _STRING,
                        "cause": {**_ref("ErrorInfo"),
                                  "description": "what an update's handler raised "
                                                 "(update_handler_failed)"}},
                       ["type", "title", "status", "code", "detail"]),
    "RunStatus": {"type": "string", "enum": [s.value for s in RunStatus]},
    "ErrorInfo": _object({"type": _STRING, "message": _STRING,
                          "traceback": _NULL_STRING, "non_retryable": {"type": "boolean"},
                          "cause": _ANY}, ["type", "message"]),
    "Run": _object(_RUN_FIELDS, set(_RUN_FIELDS) - {"damage"}),
    "RunRef": _object({"workflow_id": _STRING, "run_id": _STRING,
                       "status": _ref("RunStatus"),
                       "workflow_name": {**_STRING, "description": "a new run's workflow "
                                                                  "(retry, reset, fork, "
                                                                  "trigger)"}},
                      ["workflow_id", "run_id", "status"]),
    "RunPage": _object({"runs": {"type": "array", "items": _ref("Run")},
                        "next_cursor": _NULL_STRING}, ["runs", "next_cursor"]),
    "RunList": _object({"runs": {"type": "array", "items": _ref("Run")}}, ["runs"]),
    "UsageTotals": _object({"calls": _INT, "input_tokens": _INT, "output_tokens": _INT,
                            "total_tokens": _INT, "cost": {"type": "number"},
                            "unpriced_calls": _INT},
                           ["calls", "input_tokens", "output_tokens", "total_tokens", "cost",
                            "unpriced_calls"]),
    "RunUsage": _object({"workflow_id": _STRING, "run_id": _STRING,
                         "usage": _object({"total": _ref("UsageTotals"),
                                           "by_model": {"type": "object",
                                                        "additionalProperties":
                                                            _ref("UsageTotals")},
                                           "by_step": {"type": "object",
                                                       "additionalProperties":
                                                           _ref("UsageTotals")}},
                                          ["total", "by_model", "by_step"])},
                        ["workflow_id", "run_id", "usage"]),
    "ScheduleTicks": _object({"schedule_id": _STRING, "timezone": _STRING,
                              "paused": {"type": "boolean"},
                              "ticks": {"type": "array", "items": _TIME}},
                             ["schedule_id", "timezone", "paused", "ticks"]),
    "RunWaits": _object({
        "workflow_id": _STRING, "run_id": _STRING, "status": _ref("RunStatus"),
        "recorded": {"type": "boolean", "description": "whether the run's waits were "
                                                       "recorded (it is suspended)"},
        "signals": {"type": "array", "items": _object({"name": _STRING, "since": _TIME},
                                                       ["name", "since"])},
        "signal_handlers": {"type": "array", "items": _STRING},
        "conditions": _INT,
        "timers": {"type": "array", "items": _object(
            {"op": _INT, "set_at": _TIME, "fire_at": _TIME}, ["op", "set_at", "fire_at"])},
        "tasks": {"type": "array", "items": _object(
            {"op": _INT, "step": _STRING, "queue": _STRING, "attempt": _INT,
             "claimed_by": _NULL_STRING, "since": _TIME},
            ["op", "step", "queue", "attempt", "claimed_by", "since"])}},
        ["workflow_id", "run_id", "status", "recorded", "signals", "signal_handlers",
         "conditions", "timers", "tasks"]),
    "StateValue": _object({"workflow_id": _STRING, "key": _STRING,
                           "published": {"type": "boolean"}, "value": _ANY},
                          ["workflow_id", "key", "published"]),
    "Event": _object({"seq": _INT, "kind": _STRING, "time": _TIME, "op": _NULL_INT,
                      "name": _NULL_STRING, "data": _ANY, "meta": {"type": "object"},
                      "corrupt": _STRING}, ["seq", "kind", "time", "op", "name", "data",
                                            "meta"]),
    "HistoryPage": _object({"workflow_id": _STRING, "run_id": _STRING,
                            "status": _ref("RunStatus"),
                            "events": {"type": "array", "items": _ref("Event")},
                            "next_after": _NULL_INT},
                           ["workflow_id", "run_id", "status", "events", "next_after"]),
    "UpdateResult": _object({"workflow_id": _STRING, "run_id": _STRING,
                             "update_id": _STRING, "result": _ANY},
                            ["workflow_id", "update_id", "result"]),
    "UpdatePending": _object({"workflow_id": _STRING, "run_id": _STRING,
                              "update_id": _STRING, "status": {"const": "pending"}},
                             ["workflow_id", "update_id", "status"]),
    "QueryResult": _object({"result": _ANY}, ["result"]),
    "OperationRequest": _body({
        "operation_id": {**_ID, "maxLength": 200,
                         "description": "the caller's idempotency key: the same id "
                                        "again is the same operation"},
        "args": {"type": "array"}, "kwargs": {"type": "object"},
        "callback": {"type": ["object", "null"], "description": (
            "where to post the outcome (url, key: the call's HMAC key in hex, namespace "
            "and workflow_id of the caller's run); duro.call fills it")}},
        ["operation_id"]),
    "OperationState": _object({
        "operation_id": _STRING,
        "status": {"enum": ["running", "completed", "failed", "cancelled", "terminated",
                            "timed_out", "continued_as_new"]},
        "result": _ANY, "error": {"type": ["object", "null"]}},
        ["operation_id", "status"]),
    "CallbackRequest": _body({"operation_id": _STRING, "workflow_id": _STRING,
                              "namespace": _STRING, "outcome": {"type": "object"}},
                             ["operation_id", "workflow_id", "namespace", "outcome"]),
    "CallbackAccepted": _object({"operation_id": _STRING, "accepted": {"type": "boolean"}},
                                ["operation_id", "accepted"]),
    "Schedule": _object(_SCHEDULE_FIELDS, _SCHEDULE_FIELDS),
    "ScheduleList": _object({"schedules": {"type": "array", "items": _ref("Schedule")}},
                            ["schedules"]),
    "Backfilled": _object({"started": {"type": "array", "items": _object(
        {"workflow_id": _STRING, "run_id": _STRING}, ["workflow_id", "run_id"])}},
        ["started"]),
    "Queue": _object({"queue": _STRING, "pending": _INT, "suspended": _INT,
                      "running": _INT, "started_last_period": _INT,
                      "tasks_pending": _INT, "tasks_running": _INT,
                      "limits": {"type": "object"}},
                     ["queue", "pending", "suspended", "running", "limits"]),
    "QueueList": _object({"queues": {"type": "array", "items": _ref("Queue")}},
                         ["queues"]),
    "Worker": _object({"worker_id": _STRING, "host": _STRING, "pid": _INT,
                       "started_at": _TIME, "lease_until": _TIME,
                       "live": {"type": "boolean"}, "running": _INT,
                       "queues": {"type": ["array", "null"], "items": _STRING,
                                  "description": "the queues it serves; null: every queue"}},
                      ["worker_id", "host", "pid", "started_at", "lease_until", "live",
                       "running", "queues"]),
    "WorkerList": _object({"workers": {"type": "array", "items": _ref("Worker")}},
                          ["workers"]),
    "Percentiles": _object({"count": _INT, "p50": _NULL_NUMBER, "p95": _NULL_NUMBER,
                            "p99": _NULL_NUMBER}, ["count", "p50", "p95", "p99"]),
    "WorkflowStats": _object(
        {"workflow": _STRING, **dict.fromkeys(_WORKFLOW_COUNTS, _INT),
         **dict.fromkeys(("completion_rate", "failure_rate", "timeout_rate"), _NULL_NUMBER),
         "durations": _ref("Percentiles"), "usage": _ref("UsageTotals")},
        ["workflow", *_WORKFLOW_COUNTS, "completion_rate", "failure_rate", "timeout_rate",
         "durations", "usage"]),
    "StepStats": _object(
        {"workflow": _STRING, "step": _STRING, **dict.fromkeys(_STEP_COUNTS, _INT),
         "durations": _ref("Percentiles"), "usage": _ref("UsageTotals")},
        ["workflow", "step", *_STEP_COUNTS, "durations", "usage"]),
    "ErrorCount": _object({"workflow": _STRING, "step": _NULL_STRING, "type": _STRING,
                           "count": _INT}, ["workflow", "step", "type", "count"]),
    "Stats": _object({"since": _NULL_TIME,
                      "workflows": {"type": "array", "items": _ref("WorkflowStats")},
                      "steps": {"type": "array", "items": _ref("StepStats")},
                      "errors": {"type": "array", "items": _ref("ErrorCount")}},
                     ["since", "workflows", "steps", "errors"]),
    "CacheGroup": _object({"namespace": _STRING, "step": _STRING, "scope": _STRING,
                           "entries": _INT, "expired": _INT, "oldest": _TIME,
                           "newest": _TIME},
                          ["namespace", "step", "scope", "entries", "expired", "oldest",
                           "newest"]),
    "CacheList": _object({"entries": {"type": "array", "items": _ref("CacheGroup")}},
                         ["entries"]),
    "CacheCleared": _object({"deleted": _INT}, ["deleted"]),
    "Budget": {"type": "object", "additionalProperties": False, "properties": {
        "usd": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "tokens": {"type": ["integer", "null"], "minimum": 1},
        "key": {"type": "string"}, "period": {"type": "number", "minimum": 1},
        "on_exceeded": {"enum": ["raise", "pause"]}},
        "description": "duro.Budget: a limit in US dollars and/or tokens, the run's own or "
                       "shared by key (per period)"},
    "BudgetSpend": _object(
        {"namespace": _STRING, "key": _STRING, "window_start": {"type": "number"},
         "period": _NULL_NUMBER, "spent_usd": {"type": "number"}, "spent_tokens": _INT,
         "settled": _INT, "limit_usd": _NULL_NUMBER, "limit_tokens": _NULL_INT,
         "in_flight": _INT, "reserved_usd": {"type": "number"},
         "updated_at": {"type": "number"}},
        ["namespace", "key", "window_start", "period", "spent_usd", "spent_tokens",
         "settled", "limit_usd", "limit_tokens", "in_flight", "reserved_usd", "updated_at"]),
    "BudgetList": _object({"budgets": {"type": "array", "items": _ref("BudgetSpend")}},
                          ["budgets"]),
    "Health": _object({"ok": {"type": "boolean"}}, ["ok"]),
    "OpenApi": {"type": "object"},
    # Request bodies: closed objects (an unknown field is refused, not ignored).
    "StartRequest": _body({**_START_FIELDS, **_START_OPTIONS}, ["workflow"]),
    "SignalWithStartRequest": _body(
        {**_START_FIELDS, "on_reuse": _REUSE, "execution_timeout": _TIMEOUT,
         "signal": {**_ID, "description": "the signal's name"},
         "payload": _ANY, "signal_id": _SIGNAL_ID}, ["workflow", "signal"]),
    "UpdateWithStartRequest": _body(
        {**_START_FIELDS, "on_reuse": _REUSE, "update": {**_ID, "description": "the update's name"},
         "update_args": {"type": "array"}, "update_id": _ID, "timeout": _SECONDS},
        ["workflow", "update"]),
    "SignalRequest": _body({"payload": _ANY, "headers": _STRINGS, "signal_id": _SIGNAL_ID}),
    "UpdateRequest": _body({"args": {"type": "array"}, "id": {
        **_ID, "description": "the update id: the same id again is the same update"},
        "headers": _STRINGS, "timeout": _SECONDS}),
    "QueryRequest": _body({"args": {"type": "array"}, "run_id": _ID, "headers": _STRINGS,
                           "timeout": _SECONDS}),
    "TerminateRequest": _body({"reason": {"type": "string", "maxLength": 4096}}),
    "ResetRequest": _body({"to": {"type": "integer", "minimum": 1,
                                  "description": "events of the history kept"}}, ["to"]),
    "ForkRequest": _body({"to": {"type": "integer", "minimum": 1}, "id": _ID}),
    "ScheduleRequest": _body({
        "id": _ID, "workflow": _ID, "args": {"type": "array"}, "kwargs": {"type": "object"},
        "cron": {"type": "string", "description": "a 5-field cron expression or @daily..."},
        "every": {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
        "timezone": _STRING, "anchor": _INSTANT,
        "overlap": {"type": "string", "enum": ["skip", "buffer_one", "allow_all"]},
        "catch_up": {"type": "number", "minimum": 0}, "queue": _ID,
        "paused": {"type": "boolean"}, "note": {"type": "string", "maxLength": 4096}},
        ["id", "workflow"]),
    "ScheduleUpdateRequest": _body({
        "args": {"type": "array"}, "kwargs": {"type": "object"},
        "cron": {"type": "string", "description": "a 5-field cron expression or @daily..."},
        "every": {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
        "timezone": _STRING, "anchor": _INSTANT,
        "overlap": {"type": "string", "enum": ["skip", "buffer_one", "allow_all"]},
        "catch_up": {"type": "number", "minimum": 0}, "queue": _ID}),
    "StepCompleteRequest": _body({"result": _ANY}),
    "StepFailRequest": _body({
        "message": {"type": "string", "minLength": 1, "maxLength": 10000},
        "type": {"type": "string", "minLength": 1, "maxLength": 10000},
        "non_retryable": {"type": "boolean"}}, ["message"]),
    "HeartbeatRequest": _body({"details": _ANY}),
    "NoteRequest": _body({"note": {"type": "string", "maxLength": 4096}}),
    "DecisionRequest": _body({
        "by": {"type": "string", "minLength": 1, "maxLength": 200,
               "description": "who decides (with API tokens: the token's name, or absent)"},
        "comment": {"type": "string", "maxLength": 4000}}),
    "Approval": _object({
        "approval_id": _STRING, "workflow_id": _STRING, "run_id": _STRING,
        "workflow_name": _STRING, "name": _STRING,
        "context": {**_ANY, "description": "what the workflow asks to approve"},
        "requested_at": _TIME, "deadline": _NULL_TIME,
        "status": {"enum": ["pending", "approved", "rejected", "timed_out", "run_ended"]},
        "decided_by": _NULL_STRING, "comment": _NULL_STRING, "decided_at": _NULL_TIME,
        "namespace": _STRING}),
    "ApprovalPage": _object({"approvals": {"type": "array", "items": _ref("Approval")},
                             "next_cursor": _NULL_STRING}),
    "BackfillRequest": _body({"start": _INSTANT, "end": _INSTANT}, ["start", "end"]),
    "BudgetLimitRequest": _body({"usd": {"type": ["number", "null"], "exclusiveMinimum": 0},
                                 "tokens": {"type": ["integer", "null"], "minimum": 1}}),
}


def _parameters(route: ApiRoute) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _ID}
        for name in _PATH_PARAM.findall(route.path)]
    params += [{"name": p.name, "in": p.where, "required": False, "schema": dict(p.schema),
                "description": p.description} for p in route.params]
    return params


def _responses(route: ApiRoute) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, schema in route.responses.items():
        response: dict[str, Any] = {"description": _REASONS.get(status, str(status))}
        if schema is not None:
            content = _ref(schema) if route.media == "application/json" else {"type": "string"}
            response["content"] = {route.media: {"schema": content}}
        out[str(status)] = response
    out["default"] = {"description": "an error: a problem document with a stable code",
                      "content": {_PROBLEM_MEDIA: {"schema": _ref("Problem")}}}
    return out


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def _operation(route: ApiRoute) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id, "summary": route.summary, "tags": [route.tag],
        "parameters": _parameters(route), "responses": _responses(route),
        "x-duro-scope": route.scope}
    # A scoped route takes an API token when the server requires them (duro serve
    # --auth); a public one never does.
    operation["security"] = [{"bearer": []}, {}] if route.scope is not None else []
    if route.description:
        operation["description"] = route.description
    if route.body is not None:
        operation["requestBody"] = {"required": route.body in _REQUIRED_BODIES, "content": {
            "application/json": {"schema": _ref(route.body)}}}
    return operation


# Bodies with a required field: the others may be left out (no body, or ``{}``).
_REQUIRED_BODIES = frozenset(name for name, schema in SCHEMAS.items()
                             if name.endswith("Request") and schema.get("required"))


def openapi(routes: Iterable[ApiRoute], *, version: str, root_path: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (served under ``root_path``)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "duro", "version": version,
                 "description": "duro's HTTP API: start, message, watch and control "
                                "durable workflow runs (docs/http.md). Errors are "
                                "application/problem+json with a stable code. "
                                "x-duro-scope: what a caller must be allowed to do."},
        "servers": [{"url": root_path or "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "an API token (duro token create), when the server requires "
                           "them: its scope must allow the route's x-duro-scope, and the "
                           "request acts in its namespace"}}},
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>duro HTTP API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
h2{margin-top:2rem;border-bottom:1px solid #ddd}code,pre{font:13px ui-monospace,monospace}
details{margin:.3rem 0;padding:.3rem .5rem;border:1px solid #e4e4e4;border-radius:4px}
summary{cursor:pointer}.m{display:inline-block;width:4.2rem;font-weight:bold}
.s{color:#777;font-size:12px}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
</style></head><body>
<h1>duro HTTP API</h1>
<p>The routes of <a href="openapi.json">openapi.json</a>. Errors are
<code>application/problem+json</code> with a stable <code>code</code>.</p>
<div id="routes">loading openapi.json...</div>
<script>
"use strict";
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}
function resolve(spec, schema) {
  const ref = schema && schema.$ref;
  return ref ? spec.components.schemas[ref.split("/").pop()] : schema;
}
fetch("openapi.json").then(r => r.json()).then(spec => {
  const root = document.getElementById("routes");
  root.textContent = "";
  const tags = {};
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      (tags[op.tags[0]] = tags[op.tags[0]] || []).push([method, path, op]);
    }
  }
  for (const [tag, ops] of Object.entries(tags)) {
    root.append(el("h2", tag));
    for (const [method, path, op] of ops) {
      const item = el("details"), head = el("summary");
      head.append(el("span", method.toUpperCase(), "m"), el("code", path), " ",
                  el("span", op.summary), " ",
                  el("span", op["x-duro-scope"] ? "scope " + op["x-duro-scope"] : "public",
                     "s"));
      item.append(head);
      if (op.description) item.append(el("p", op.description));
      for (const p of op.parameters) {
        item.append(el("div", p.in + " " + p.name + (p.description ? ": " + p.description
                                                                    : ""), "s"));
      }
      const body = op.requestBody && op.requestBody.content["application/json"];
      if (body) {
        item.append(el("div", "body " + body.schema.$ref.split("/").pop()));
        item.append(el("pre", JSON.stringify(resolve(spec, body.schema), null, 1)));
      }
      const codes = Object.keys(op.responses).filter(c => c !== "default");
      item.append(el("div", "answers " + codes.join(", ") + "; errors: problem+json", "s"));
      root.append(item);
    }
  }
}).catch(err => {
  document.getElementById("routes").textContent = "could not load openapi.json: " + err;
});
</script></body></html>
"""
"""``GET /docs``: renders ``openapi.json`` (fetched relative to the page, so it works
where the application is mounted)."""
