"""The remote client's pieces without a server: the read models' JSON round trips, the
URL dispatch of ``duro.Client``, every public method overridden (none falls through to
the store path), and the problem codes mapped back to the errors they came from."""

from __future__ import annotations

import datetime as dt
import inspect
from datetime import timedelta

import pytest

import duro
from duro.client import Engine, Event, RemoteClient, RunInfo, RunPage, WorkerInfo
from duro.client._budgets import Budgets
from duro.client._cache import StepCache
from duro.client._handle import WorkflowHandle
from duro.client._http import ERRORS, error_of, segment
from duro.client._records import queue_from_json, queue_json
from duro.client._remote_handle import (
    RemoteBudgets,
    RemoteCache,
    RemoteHandle,
    RemoteSchedules,
    RemoteTokens,
)
from duro.client._schedules import ScheduleInfo, Schedules
from duro.client._tokens import Tokens
from duro.errors import (
    AuthenticationError,
    ErrorInfo,
    PermissionDeniedError,
    SerializationError,
    ServerUnavailableError,
    UpdateFailedError,
    WorkflowAlreadyStartedError,
    WorkflowArgumentsError,
)
from duro.server._problems import PROBLEMS, BadRequest, Conflict, NotEnabled, problem
from duro.server._webhooks import InvalidSignatureError
from duro.store import RunStatus
from duro.store._records import QueueConfig, QueueStats

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _run(**changes: object) -> RunInfo:
    error = ErrorInfo(type="x.Boom", message="boom", traceback="tb",
                      cause=ErrorInfo(type="ValueError", message="v", non_retryable=True))
    fields: dict[str, object] = dict(
        workflow_id="w", run_id="r", workflow_name="app.wf", status=RunStatus.FAILED,
        created_at=T0, updated_at=T0 + timedelta(seconds=2),
        closed_at=T0 + timedelta(seconds=2), wake_at=None, owner="worker-1",
        history_length=4, error=error, result_json={"a": [1, 2.5, None]},
        parent_run_id="p", origin_run_id=None, damage=None, headers={"tenant": "acme"},
        search_attributes={"n": 12, "s": "12", "b": True})
    fields.update(changes)
    return RunInfo(**fields)  # type: ignore[arg-type]


def test_read_models_come_back_from_their_json() -> None:
    run = _run()
    assert RunInfo.from_json(run.to_json()) == run
    assert RunInfo.from_json(_run(error=None, closed_at=None, damage="bad").to_json()) == \
        _run(error=None, closed_at=None, damage="bad")
    page = RunPage(runs=[run, _run(workflow_id="v")], next_cursor="abc")
    assert RunPage.from_json(page.to_json()) == page
    event = Event(seq=3, kind="step_completed", time=T0, op=1, name="s", data={"x": 1},
                  meta={"attempt": 2}, corrupt=None)
    assert Event.from_json(event.to_json()) == event
    broken = Event(seq=0, kind="run_started", time=T0, op=None, name=None, data=None,
                   meta={}, corrupt="corrupt payload: x")
    assert Event.from_json(broken.to_json()) == broken
    worker = WorkerInfo(worker_id="w1", host="h", pid=7, started_at=T0,
                        lease_until=T0 + timedelta(seconds=5), live=True, running=3)
    assert WorkerInfo.from_json(worker.to_json()) == worker
    stats = QueueStats(config=QueueConfig(name="q", concurrency=2, rate_limit=10,
                                          rate_period=60.0), pending=1, suspended=2,
                       running=3, started_last_period=4)
    assert queue_from_json(queue_json(stats)) == stats


def test_a_schedule_comes_back_from_its_json() -> None:
    info = ScheduleInfo(
        schedule_id="s", workflow_name="app.wf", queue="default", args=[1], kwargs={"k": 2},
        cron=None, every=timedelta(hours=1), timezone="Europe/Berlin", anchor=T0,
        overlap="skip", catch_up=timedelta(minutes=5), source="api", paused=True,
        note="why", next_fire_at=T0, last_fire_at=None, last_workflow_id="s@x",
        buffered_at=None, fired=3, missed=1, overlap_skipped=0, created_at=T0,
        updated_at=T0)
    assert ScheduleInfo.from_json(info.to_json()) == info


def test_the_url_says_which_client() -> None:
    remote = duro.Client("http://127.0.0.1:8233", token="t")
    assert type(remote) is RemoteClient and isinstance(remote, duro.Client)
    assert type(duro.Client(url="HTTPS://example.com")) is RemoteClient
    assert type(duro.Client("sqlite:///x.db")) is duro.Client
    assert type(Engine("sqlite:///x.db")) is Engine  # only Client dispatches
    assert repr(remote) == "<duro.RemoteClient http://127.0.0.1:8233>"


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURO_TOKEN", "from-env")
    client = RemoteClient("http://h")
    assert client.transport._headers() == {"Authorization": "Bearer from-env"}
    given = RemoteClient("http://h", token="given")
    assert given.transport._headers() == {"Authorization": "Bearer given"}
    monkeypatch.delenv("DURO_TOKEN")
    assert RemoteClient("http://h").transport._headers() == {}


def _public(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls)
            if not name.startswith("_") and (callable(value) or isinstance(value, property))}


@pytest.mark.parametrize(("base", "remote", "delegating"), [
    (duro.Client, RemoteClient, set()),
    (Schedules, RemoteSchedules, set()),
    (Tokens, RemoteTokens, set()),
    (StepCache, RemoteCache, set()),
    (Budgets, RemoteBudgets, set()),
    # A handle's messages call its client's methods (the remote client's, here).
    (WorkflowHandle, RemoteHandle, {"signal", "query", "update", "cancel", "terminate",
                                    "set_budget"}),
])
def test_every_public_method_is_remote_or_refused(base: type, remote: type,
                                                  delegating: set[str]) -> None:
    """A method added to the embedded API must be given a remote version (or a clear
    refusal): none may fall through to the store path."""
    assert len(_public(base)) > len(delegating)
    missing = [name for name in sorted(_public(base) - delegating) if name not in vars(remote)]
    assert not missing, f"{remote.__name__} does not override {missing}"
    for name in delegating:
        source = inspect.getsource(getattr(base, name))
        assert "self._client." in source, name


def test_arguments_that_do_not_fit_come_back_as_such() -> None:
    assert type(ERRORS["invalid_payload"]("d", {"arguments": True})) is \
        WorkflowArgumentsError
    assert type(ERRORS["invalid_payload"]("d", {})) is SerializationError


def test_every_problem_code_comes_back_as_its_error() -> None:
    internal = (BadRequest, Conflict, NotEnabled, InvalidSignatureError)  # the server's own
    for kind, _status, code in PROBLEMS:
        assert code in ERRORS, code
        made = ERRORS[code]("detail", {})
        if not issubclass(kind, internal):
            assert isinstance(made, kind), (code, made)
        assert str(made) == "detail"


def test_a_problem_response_is_read_back() -> None:
    cause = ErrorInfo(type="KeyError", message="k", traceback="tb")
    response = problem(UpdateFailedError("update 'x' failed", cause=cause))
    error = error_of(response.status_code, bytes(response.body), "POST /x")
    assert isinstance(error, UpdateFailedError) and error.cause == cause
    started = error_of(409, b'{"code": "workflow_already_started", "detail": "taken"}', "x")
    assert isinstance(started, WorkflowAlreadyStartedError)
    assert isinstance(error_of(401, b"<html>", "x"), AuthenticationError)
    assert isinstance(error_of(403, b"", "x"), PermissionDeniedError)
    assert isinstance(error_of(502, b"bad gateway", "x"), ServerUnavailableError)
    assert "no route" in str(error_of(404, b'{"code": "not_found", "detail": ""}', "x"))


def test_ids_are_path_segments() -> None:
    assert segment("a b%?#", "id") == "a%20b%25%3F%23"
    with pytest.raises(duro.InvalidArgumentError, match="'/'"):
        segment("a/b", "workflow id")
