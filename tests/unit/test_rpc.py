"""Durable RPC's pieces that need no server (the two-deployment tests are
tests/acceptance/test_rpc.py): an endpoint refuses what cannot work, a call refuses bad
arguments before it records anything, the callback key is one call's only."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import duro
from duro.errors import InvalidSignatureError
from duro.rpc import callback_key, operation_workflow_id, sign, verify_callback
from duro.rpc._endpoint import signal_name
from tests.conftest import run


def test_an_endpoint_refuses_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURO_CALLBACK_SECRET", raising=False)
    for bad in ({"url": "payments:8233"}, {"url": ""},
                {"url": "http://p", "callback_url": "ftp://me"},
                {"url": "http://p", "poll_interval": 0},
                {"url": "http://p", "request_timeout": float("inf")},
                {"url": "http://p", "long_poll": -1}, {"url": "http://p", "long_poll": 61},
                {"url": "http://p", "long_poll": float("nan")},
                {"url": "http://p", "long_poll": True}, {"url": "http://p", "long_poll": "5"},
                {"url": "http://p", "callback_url": "http://me"}):  # no secret to sign with
        with pytest.raises(duro.InvalidArgumentError):
            duro.Endpoint(**bad)  # type: ignore[arg-type]
    endpoint = duro.Endpoint(url="http://p:1/", token="tok-123", callback_url="http://me/",
                             callback_secret="sec-456")
    assert (endpoint.url, endpoint.callback_url) == ("http://p:1", "http://me")
    assert "tok-123" not in repr(endpoint) and "sec-456" not in repr(endpoint)
    assert endpoint.long_poll == 30.0  # the default; 0 (short polls) and 60 are allowed
    assert duro.Endpoint(url="http://p", long_poll=0).long_poll == 0
    assert duro.Endpoint(url="http://p", long_poll=60).long_poll == 60


def test_the_callback_key_is_one_calls_only() -> None:
    keys = {callback_key(b"s", ns, wf, op) for ns, wf, op in [
        ("default", "o-1", "r.1"), ("default", "o-1", "r.2"), ("default", "o-2", "r.1"),
        ("acme", "o-1", "r.1")]}
    assert len(keys) == 4
    assert callback_key(b"s", "default", "o-1", "r.1") != callback_key(b"t", "default", "o-1",
                                                                       "r.1")
    assert operation_workflow_id("charge", "r.1") == "duro.op/charge/r.1"
    # One id, two operations: two keys, two signals.
    assert callback_key(b"s", "default", "o-1", "r.1", "charge") != \
        callback_key(b"s", "default", "o-1", "r.1", "verify")
    assert signal_name("r.1", "charge") != signal_name("r.1", "verify")


def test_a_signed_callback_must_carry_an_ended_outcome() -> None:
    key = callback_key(b"s", "default", "o-1", "r.1", "charge")
    for outcome in ({"status": "running"}, {"status": "weird"}, {"status": "failed",
                    "error": "a string"}, "completed", None):
        body = orjson.dumps({"operation_id": "r.1", "operation": "charge",
                             "workflow_id": "o-1", "namespace": "default",
                             "outcome": outcome})
        with pytest.raises(InvalidSignatureError, match="no outcome"):
            verify_callback(body, sign(key, body), b"s")
    body = orjson.dumps({"operation_id": "r.1", "operation": "charge", "workflow_id": "o-1",
                         "namespace": "default", "outcome": {"status": "completed",
                                                             "result": 1}})
    assert verify_callback(body, sign(key, body), b"s").result == 1
    # The operation is signed: the same body for another operation does not verify.
    other = body.replace(b'"charge"', b'"verify"')
    with pytest.raises(InvalidSignatureError):
        verify_callback(other, sign(key, body), b"s")


ENDPOINT = duro.Endpoint(url="http://127.0.0.1:9")


@duro.workflow(name="test_rpc.bad_calls")
async def bad_calls() -> list[str]:
    refused = []
    for args, kwargs in [(("", 1), {}), (("op" * 200,), {}), (("op",), {"id": ""}),
                         (("op",), {"timeout": -1}), (("op", object()), {})]:
        try:
            await duro.call(ENDPOINT, *args, **kwargs)  # type: ignore[arg-type]
        except (duro.InvalidArgumentError, duro.SerializationError) as exc:
            refused.append(type(exc).__name__)
    try:
        await duro.call("http://p", "op")  # type: ignore[arg-type]
    except TypeError:
        refused.append("TypeError")
    return refused


def test_a_call_refuses_bad_arguments_and_records_nothing(tmp_path: object) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/rpc.db") as engine:
            handle = await engine.start(bad_calls)
            assert await handle.result(timeout=30) == [
                "InvalidArgumentError", "InvalidArgumentError", "InvalidArgumentError",
                "InvalidArgumentError", "SerializationError", "TypeError"]
            kinds = [e.kind for e in await handle.history()]
            assert kinds == ["run_started", "run_completed"]

    run(main())


def test_call_outside_a_workflow_says_so() -> None:
    with pytest.raises(RuntimeError, match="workflow code"):
        run(duro.call(ENDPOINT, "op"))


class _Declared:
    async def charge(self, order_id: str) -> int:
        raise NotImplementedError

    async def _private(self) -> None:
        raise NotImplementedError


class _SyncMethod:
    def charge(self, order_id: str) -> int:
        raise NotImplementedError


class _Nothing:
    pass


def test_a_stub_refuses_what_cannot_be_called() -> None:
    cases: list[tuple[Any, dict[str, Any]]] = [
        (_SyncMethod, {}), (_Nothing, {}), (_Declared(), {}), (_Declared, {"prefix": 3}),
        (_Declared, {"timeout": 0}), (_Declared, {"prefix": "x" * 200})]
    for bad, kwargs in cases:
        with pytest.raises(duro.InvalidArgumentError):
            ENDPOINT.stub(bad, **kwargs)
    stub = ENDPOINT.stub(_Declared, prefix="payments.")
    with pytest.raises(AttributeError, match="no operation '_private'"):
        stub._private  # noqa: B018 - the attribute access is the test
    with pytest.raises(RuntimeError, match="workflow code"):
        run(stub.charge("o-1"))  # a call, as duro.call: from workflow code only


def test_an_operation_state_reads_back_its_own_json() -> None:
    from duro.errors import ErrorInfo
    from duro.rpc import OperationState

    states = [OperationState(operation_id="o1", status="running"),
              OperationState(operation_id="o2", status="completed", result={"n": [1, 2]}),
              OperationState(operation_id="o3", status="failed",
                             error=ErrorInfo(type="ValueError", message="no")),
              OperationState(operation_id="o4", status="cancelled")]
    assert [s.to_json() for s in states] == [
        {"operation_id": "o1", "status": "running"},
        {"operation_id": "o2", "status": "completed", "result": {"n": [1, 2]}},
        {"operation_id": "o3", "status": "failed",
         "error": ErrorInfo(type="ValueError", message="no").to_dict()},
        {"operation_id": "o4", "status": "cancelled", "error": None}]
    assert [OperationState.from_json(s.to_json()) for s in states] == states
