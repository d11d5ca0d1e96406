"""What a remote client hands out: handles whose methods go through the server, and its
``schedules`` and ``tokens`` (see ``_remote.py``)."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson

from duro._checks import check_count, check_id
from duro._waits import RunWaits
from duro.budget._budget import check_tokens, check_usd
from duro.client._budgets import Budgets
from duro.client._cache import CacheInfo, StepCache, check_scope
from duro.client._client import _return_hint
from duro.client._handle import WorkflowHandle, check_offset
from duro.client._http import PAUSES, error_of, segment
from duro.client._records import Event, RunInfo, StreamChunk
from duro.client._schedules import ScheduleInfo, Schedules, _ts
from duro.client._tokens import Tokens
from duro.errors import (
    CorruptRunError,
    InvalidArgumentError,
    LocalOnlyError,
    ServerUnavailableError,
)
from duro.schedules._declare import DEFAULT_CATCH_UP, build_definition
from duro.schedules._spec import OverlapPolicy
from duro.serde import decode, encode
from duro.store import RunStatus
from duro.store._budgets import BudgetSpend
from duro.usage._summary import RunUsage
from duro.workflow._api import Workflow

if TYPE_CHECKING:
    from duro.client._remote import RemoteClient

__all__ = ["RemoteBudgets", "RemoteHandle", "RemoteSchedules", "RemoteTokens"]

R = TypeVar("R")

_LONG_POLL = 30.0
"""Seconds one ``/result?wait=`` request waits at most (the server allows 60): shorter
than the proxies' usual idle limits."""
_HISTORY_PAGE = 10_000


def _local_only(what: str) -> NoReturn:
    raise LocalOnlyError(f"{what} is not available through a server (there is no route for "
                         "it): use a client on the database")


class RemoteHandle(WorkflowHandle[R]):
    """A handle of a remote client: :class:`~duro.WorkflowHandle`'s methods over HTTP."""

    def __init__(self, client: RemoteClient, workflow_id: str, run_id: str | None = None,
                 *, result_hint: Any = Any, start_status: RunStatus | None = None) -> None:
        super().__init__(client, workflow_id, run_id, result_hint=result_hint,
                         start_status=start_status)
        self._remote = client

    def _path(self, *rest: str) -> str:
        return self._remote._runs(self.workflow_id, *rest)

    def _pin(self, run_id: str | None) -> dict[str, str]:
        return {} if run_id is None else {"run_id": run_id}

    async def describe(self) -> RunInfo:
        """The run's current description (``GET /v1/runs/{id}``)."""
        _, data = await self._remote.call("GET", self._path(), params=self._pin(self.run_id),
                                          idempotent=True)
        return RunInfo.from_json(data)

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.describe()).status

    async def history(self) -> list[Event]:
        """The run's history, in order (``GET .../history``, a page at a time)."""
        events: list[Event] = []
        after: int | None = None
        while True:
            params = {**self._pin(self.run_id), "limit": str(_HISTORY_PAGE)}
            if after is not None:
                params["after"] = str(after)
            _, data = await self._remote.call("GET", self._path("history"), params=params,
                                              idempotent=True)
            events += [Event.from_json(e) for e in data["events"]]
            after = data.get("next_after")
            if after is None:
                return events

    async def result(self, *, timeout: float | None = None) -> R:
        """Wait for the run to end and return its result, as
        :meth:`WorkflowHandle.result` does (the same errors, with the same causes),
        through long polls of ``GET .../result?wait=``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        run_id = self.run_id
        while True:
            left = _LONG_POLL if deadline is None else deadline - time.monotonic()
            wait = max(0.0, min(left, _LONG_POLL))
            # A server that restarts meanwhile is asked again (until the deadline); one
            # that hangs does not hold the caller past it.
            status, data = await self._remote.long_poll(
                "GET", self._path("result"), wait=wait, deadline=deadline,
                params={**self._pin(run_id), "wait": f"{wait:g}"},
                what=f"run {self.workflow_id!r} did not finish in {timeout}s")
            info = RunInfo.from_json(data)
            if info.status == RunStatus.CONTINUED_AS_NEW:
                run_id = None  # follow the chain to the latest run of this id
                continue
            if status == 200 and info.status.is_terminal:
                return self._ended(info.status, info.workflow_id, info.run_id,
                                   orjson.dumps(info.result_json),
                                   None if info.error is None else info.error.to_payload())
            if info.status == RunStatus.CORRUPT:
                raise CorruptRunError(f"run {info.run_id} of {self.workflow_id!r} cannot "
                                      f"end: its stored row is damaged ({info.damage})")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.workflow_id!r} did not finish in {timeout}s")

    async def events(self, *, after: int | None = None) -> AsyncIterator[Event]:
        """The run's history as it grows (``GET .../events``, Server-Sent Events): as
        :meth:`WorkflowHandle.events`. A dropped stream is opened again after the last
        event seen (``Last-Event-ID``), again and again while the server is away; it
        gives up (:class:`~duro.errors.ServerUnavailableError`) when the client's
        ``timeout`` has passed without an event."""
        pinned = (await self.describe()).run_id
        async for data in self._follow("events", pinned, -1 if after is None else after,
                                       "seq"):
            yield Event.from_json(data)

    async def stream(self, *, from_offset: int = 0) -> AsyncIterator[StreamChunk]:
        """The run's stream, live (``GET .../stream``, Server-Sent Events): as
        :meth:`WorkflowHandle.stream`. A dropped connection is opened again after the
        last item seen (``Last-Event-ID``), as for :meth:`events`.

        Raises:
            InvalidArgumentError: ``from_offset`` is not a whole number from 0.
        """
        first = check_offset(from_offset)
        pinned = (await self.describe()).run_id
        async for data in self._follow("stream", pinned, first - 1, "offset"):
            yield StreamChunk.from_json(data)

    async def _follow(self, route: str, run_id: str, seen: int,
                      key: str) -> AsyncIterator[dict[str, Any]]:
        """The messages of an SSE route of the run, from after ``seen`` (-1: from the
        first) to its ``end``, reopened after the last one seen (its ``key``) while the
        server is away, for as long as the client's timeout without a message."""
        patience = self._remote.transport.timeout
        quiet_since, pause = time.monotonic(), PAUSES[0]
        while True:
            before = seen
            try:
                async for data in self._sse(route, run_id, seen):
                    if data is None:
                        return
                    seen = int(data[key])
                    yield data
                lost: ServerUnavailableError | None = None
            except ServerUnavailableError as exc:
                lost = exc
            # The stream ended without its end (a dropped connection, a server that
            # stopped and may be restarting): open it again after the last message seen,
            # as an EventSource would, for as long as the client's timeout without one.
            if seen != before:
                quiet_since, pause = time.monotonic(), PAUSES[0]
            elif time.monotonic() - quiet_since > patience:
                raise lost or ServerUnavailableError(
                    f"the {route} of {self.workflow_id!r} kept ending without messages")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _sse(self, route: str, run_id: str,
                   seen: int) -> AsyncIterator[dict[str, Any] | None]:
        """One opening of an SSE route: its messages' JSON, then None at its ``end``."""
        headers = {} if seen < 0 else {"Last-Event-ID": str(seen)}
        async with self._remote.transport.stream(self._path(route),
                                                 params={"run_id": run_id},
                                                 headers=headers) as lines:
            kind, data = "message", ""
            async for line in lines:
                if line:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        kind = value
                    elif field == "data":
                        data = value
                    continue
                if kind == "end":
                    yield None
                    return
                if kind == "error":
                    problem = orjson.loads(data)
                    raise error_of(int(problem.get("status", 503)), data.encode(),
                                   f"GET {self._path(route)}")
                if data:
                    yield orjson.loads(data)
                kind, data = "message", ""

    async def _state(self, key: str, wait: float,
                     deadline: float | None = None) -> tuple[bool, Any]:
        """(published, value) of ``GET .../state/{key}?wait=`` (asked again while the
        server does not answer, until ``deadline``)."""
        status, data = await self._remote.long_poll(
            "GET", self._path("state", segment(key, "state key")), wait=wait,
            deadline=deadline, params={**self._pin(self.run_id), "wait": f"{wait:g}"},
            what=f"run {self.workflow_id!r} did not publish {key!r} in time")
        return status == 200, data.get("value")

    def _typed(self, key: str, value: Any, type: Any) -> Any:
        return decode(orjson.dumps(value), type, what=f"state {key!r} of {self.workflow_id!r}")

    async def get_state(self, key: str, *, type: Any = Any, default: Any = None) -> Any:
        """The latest value the run published under ``key``, as
        :meth:`WorkflowHandle.get_state` (``GET .../state/{key}``)."""
        published, value = await self._state(key, 0)
        return self._typed(key, value, type) if published else default

    async def wait_state(self, key: str, *, timeout: float | None = None,
                         type: Any = Any) -> Any:
        """Wait until the run has published ``key``, as :meth:`WorkflowHandle.wait_state`
        (long polls of ``GET .../state/{key}?wait=``).

        Raises:
            TimeoutError: Not published within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _LONG_POLL if deadline is None else deadline - time.monotonic()
            published, value = await self._state(key, max(0.0, min(left, _LONG_POLL)),
                                                 deadline)
            if published:
                return self._typed(key, value, type)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.workflow_id!r} did not publish {key!r} in "
                                   f"{timeout}s")

    async def children(self) -> list[RunInfo]:
        """The runs this run started as child workflows (``GET .../children``)."""
        _, data = await self._remote.call("GET", self._path("children"),
                                          params=self._pin(self.run_id), idempotent=True)
        return [RunInfo.from_json(run) for run in data["runs"]]

    async def usage(self) -> RunUsage:
        """What the run's model calls spent so far (``GET .../usage``), as
        :meth:`WorkflowHandle.usage`."""
        _, data = await self._remote.call("GET", self._path("usage"),
                                          params=self._pin(self.run_id), idempotent=True)
        return RunUsage.from_json(data["usage"])

    async def waiting(self) -> RunWaits:
        """What the run waits for now (``GET .../waiting``), as
        :meth:`WorkflowHandle.waiting`."""
        _, data = await self._remote.call("GET", self._path("waiting"),
                                          params=self._pin(self.run_id), idempotent=True)
        return RunWaits.from_json(data)


class RemoteSchedules(Schedules):
    """``client.schedules`` of a remote client: the schedule routes of the server."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    def _path(self, schedule_id: str, *rest: str) -> str:
        return "/".join(["/v1/schedules", segment(schedule_id, "schedule id"), *rest])

    async def _info(self, method: str, path: str, body: Any = None) -> ScheduleInfo:
        _, data = await self._remote.call(method, path, body=body,
                                          idempotent=method == "GET")
        return ScheduleInfo.from_json(data)

    async def create(
        self, schedule_id: str, workflow: Workflow[..., Any] | str, *,
        args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
        cron: str | None = None, every: float | timedelta | None = None,
        timezone: str = "UTC", anchor: float | dt.datetime | None = None,
        overlap: OverlapPolicy = "skip", catch_up: float | timedelta = DEFAULT_CATCH_UP,
        queue: str | None = None, paused: bool = False, note: str | None = None,
    ) -> ScheduleInfo:
        """Create a schedule (``POST /v1/schedules``): :meth:`Schedules.create`."""
        # Checked here as embedded (the same errors; nothing sent when refused).
        definition, _ = build_definition(
            schedule_id, workflow, args, kwargs, cron=cron, every=every, timezone=timezone,
            anchor=anchor, overlap=overlap, catch_up=catch_up, queue=queue, source="api")
        raw = orjson.loads(definition.input)
        body: dict[str, Any] = {
            "id": schedule_id, "workflow": definition.workflow_name, **raw,
            "timezone": timezone, "overlap": overlap, "paused": paused,
            "catch_up": catch_up.total_seconds() if isinstance(catch_up, timedelta)
            else catch_up}
        if cron is not None:
            body["cron"] = cron
        if every is not None:
            body["every"] = every.total_seconds() if isinstance(every, timedelta) else every
        if anchor is not None:
            body["anchor"] = anchor.timestamp() if isinstance(anchor, dt.datetime) else anchor
        if queue is not None or isinstance(workflow, Workflow):
            body["queue"] = definition.queue  # a workflow's own queue, as embedded
        if note is not None:
            body["note"] = note
        return await self._info("POST", "/v1/schedules", body)

    async def update(
        self, schedule_id: str, *, args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None, cron: str | None = None,
        every: float | timedelta | None = None, timezone: str | None = None,
        anchor: float | dt.datetime | None = None, overlap: OverlapPolicy | None = None,
        catch_up: float | timedelta | None = None, queue: str | None = None,
    ) -> ScheduleInfo:
        """Change a schedule in place (``PATCH /v1/schedules/{id}``):
        :meth:`Schedules.update`."""
        if cron is not None and every is not None:
            raise InvalidArgumentError("give cron or every, not both")
        if args is not None and (isinstance(args, (str, bytes))
                                 or not isinstance(args, Sequence)):
            raise TypeError(f"args must be a list or tuple of arguments, not {args!r}")
        given: dict[str, Any] = {
            "args": None if args is None else list(args),
            "kwargs": None if kwargs is None else dict(kwargs), "cron": cron,
            "every": every.total_seconds() if isinstance(every, timedelta) else every,
            "timezone": timezone,
            "anchor": anchor.timestamp() if isinstance(anchor, dt.datetime) else anchor,
            "overlap": overlap, "queue": queue,
            "catch_up": catch_up.total_seconds() if isinstance(catch_up, timedelta)
            else catch_up}
        body = {k: v for k, v in given.items() if v is not None}
        encode(body, what=f"the changes of schedule {schedule_id!r}")  # refused here
        return await self._info("PATCH", self._path(schedule_id), body)

    async def list(self) -> builtins.list[ScheduleInfo]:
        """Every schedule, by id (``GET /v1/schedules``)."""
        _, data = await self._remote.call("GET", "/v1/schedules", idempotent=True)
        return [ScheduleInfo.from_json(s) for s in data["schedules"]]

    async def get(self, schedule_id: str) -> ScheduleInfo:
        """One schedule: :meth:`Schedules.get`."""
        return await self._info("GET", self._path(schedule_id))

    async def pause(self, schedule_id: str, *, note: str | None = None) -> ScheduleInfo:
        """Stop firing ticks: :meth:`Schedules.pause`."""
        return await self._info("POST", self._path(schedule_id, "pause"),
                                {} if note is None else {"note": note})

    async def resume(self, schedule_id: str, *, note: str | None = None) -> ScheduleInfo:
        """Fire ticks again: :meth:`Schedules.resume`."""
        return await self._info("POST", self._path(schedule_id, "resume"),
                                {} if note is None else {"note": note})

    async def trigger(self, schedule_id: str) -> WorkflowHandle[Any]:
        """Start a run now: :meth:`Schedules.trigger`."""
        _, data = await self._remote.call("POST", self._path(schedule_id, "trigger"))
        name = data.get("workflow_name")
        return RemoteHandle(self._remote, data["workflow_id"], data["run_id"],
                            result_hint=Any if name is None else _return_hint(name))

    async def backfill(self, schedule_id: str, start: dt.datetime | float,
                       end: dt.datetime | float) -> builtins.list[WorkflowHandle[Any]]:
        """Start the runs of past ticks that have none: :meth:`Schedules.backfill`."""
        lo, hi = _ts(start, "start"), _ts(end, "end")
        if hi < lo:
            raise ValueError("backfill end is before its start")
        # The same ticks again start nothing: safe to send again.
        _, data = await self._remote.call("POST", self._path(schedule_id, "backfill"),
                                          body={"start": lo, "end": hi}, idempotent=True)
        return [RemoteHandle(self._remote, h["workflow_id"], h["run_id"])
                for h in data["started"]]

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule: :meth:`Schedules.delete`."""
        await self._remote.call("DELETE", self._path(schedule_id))


class RemoteTokens(Tokens):
    """``client.tokens`` of a remote client: tokens are made where the database is."""

    async def create(self, name: str, *, scope: str = "read", namespace: str = "default",
                     expires_in: float | timedelta | None = None) -> NoReturn:
        """Not through a server: ``duro token create`` on the database."""
        _local_only("making API tokens")

    async def list(self, *, namespace: str | None = None) -> NoReturn:
        """Not through a server: ``duro token ls`` on the database."""
        _local_only("listing API tokens")

    async def revoke(self, token_id: str) -> NoReturn:
        """Not through a server: ``duro token revoke`` on the database."""
        _local_only("revoking API tokens")

    async def verify(self, token: str, *, scope: str = "read") -> NoReturn:
        """Not through a server: the server verifies the tokens it is sent."""
        _local_only("verifying API tokens")


class RemoteCache(StepCache):
    """``client.cache`` of a remote client: the cache routes of the server, in the
    token's namespace."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    async def list(self, *, step: str | None = None,
                   scope: str | None = None) -> builtins.list[CacheInfo]:
        """Entry counts per step and scope (``GET /v1/cache``): :meth:`StepCache.list`."""
        params = _cache_params(step, scope)
        _, data = await self._remote.call("GET", "/v1/cache", params=params, idempotent=True)
        return [CacheInfo.from_json(g) for g in data["entries"]]

    async def invalidate(self, *, step: str | None = None, scope: str | None = None,
                         expired: bool = False) -> int:
        """Delete cached results (``DELETE /v1/cache``): :meth:`StepCache.invalidate`.
        Sent again after a lost answer: deleting twice deletes nothing more."""
        params = _cache_params(step, scope)
        if not isinstance(expired, bool):
            raise InvalidArgumentError(f"expired must be True or False, not {expired!r}")
        if expired:
            params["expired"] = "true"
        _, data = await self._remote.call("DELETE", "/v1/cache", params=params,
                                          idempotent=True)
        return int(data["deleted"])

    async def clear(self) -> int:
        """Delete every cached result of the token's namespace (``DELETE /v1/cache``)."""
        return await self.invalidate()


def _cache_params(step: str | None, scope: str | None) -> dict[str, str]:
    """The filters as query parameters, checked here as embedded (before a request)."""
    step = None if step is None else check_id(step, "step name")
    scope = check_scope(scope)
    params: dict[str, str] = {}
    if step is not None:
        params["step"] = step
    if scope is not None:
        params["scope"] = scope
    return params


class RemoteBudgets(Budgets):
    """``client.budgets`` of a remote client: the budget routes of the server."""

    def __init__(self, client: RemoteClient) -> None:
        super().__init__(client)
        self._remote = client

    async def list(self, key: str | None = None, *, limit: int = 100
                   ) -> builtins.list[BudgetSpend]:
        """The shared budgets' spend (``GET /v1/budgets``): :meth:`Budgets.list`."""
        if key is not None:
            check_id(key, "budget key", limit=200)
        params = {"limit": str(check_count(limit, "limit"))}
        if key is not None:
            params["key"] = key
        _, data = await self._remote.call("GET", "/v1/budgets", params=params,
                                          idempotent=True)
        return [BudgetSpend.from_json(b) for b in data["budgets"]]

    async def set_limit(self, key: str, *, usd: float | None = None,
                        tokens: int | None = None) -> BudgetSpend:
        """Set a key's limits (``POST /v1/budgets/{key}/limit``): :meth:`Budgets.set_limit`."""
        body = {"usd": check_usd(usd), "tokens": check_tokens(tokens)}
        path = f"/v1/budgets/{segment(check_id(key, 'budget key', limit=200), 'budget key')}"
        _, data = await self._remote.call("POST", f"{path}/limit", body=body, idempotent=True)
        return BudgetSpend.from_json(data)
