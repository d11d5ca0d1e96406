"""Durable RPC between two deployments (issue 20, first slice): two real ``duro serve
--worker`` processes on free loopback ports, each with its own database and worker. The
callee, payments, runs on PostgreSQL with API tokens; the caller, orders, on SQLite,
with a callback secret. An order's workflow calls ``charge`` with ``duro.call``: its
result comes back (by callback, or by polling when the callback cannot get through);
the callee's failure arrives typed; kill -9 of either process mid-call loses nothing and
starts nothing twice; a bad token, an unknown or unexposed operation, a forged or
replayed callback are refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

import duro
from duro.rpc import callback_key, sign, verify_callback
from tests.acceptance.rpc_pair import (
    SECRET,
    Deployment,
    Pair,
    Receiver,
    callback_outage,
    free_port,
    pair_on,
    soak,
)
from tests.acceptance.serving import problem
from tests.conftest import run

pytestmark = pytest.mark.postgres

@pytest.fixture(scope="module")
def pair(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    from tests.conftest import drop_schema

    pg_url: str = pg_cluster.fresh_url()
    try:
        with pair_on(pg_url, tmp_path_factory.mktemp("gates")) as both:
            yield both
    finally:
        drop_schema(pg_cluster, pg_url)


def _side_order(side: Deployment, order_id: str, amount: int) -> dict[str, Any]:
    response = httpx.post(f"{side.url}/v1/runs", json={
        "workflow": "order", "id": order_id, "args": [order_id, amount]})
    assert response.status_code == 202, response.text
    body = httpx.get(f"{side.url}/v1/runs/{order_id}/result", params={"wait": "30"},
                     timeout=40).json()
    assert body["status"] == "completed", body
    result: dict[str, Any] = body["result"]
    return result


def _call_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"].startswith("call_")]


def test_an_order_calls_charge_and_gets_its_result_by_callback(pair: Pair) -> None:
    # Short polls (a long poll would race the callback, answered as the charge ends).
    run_id = pair.order("gated-cb", 250, workflow="order_short")
    pair.wait_entered("gated-cb")
    # Once a poll has seen it running, the next is 2 s away: the callback comes first.
    _wait_history(pair, "gated-cb", "step_retrying")
    pair.open_gate("gated-cb")
    result = pair.result("gated-cb")
    assert result == {"order_id": "gated-cb",
                      "payment": {"charge_id": "ch_gated-cb_250", "amount": 250}}
    calls = _call_events(pair.history("gated-cb"))
    assert [e["kind"] for e in calls] == ["call_started", "call_completed"]
    assert calls[0]["meta"]["operation_id"] == f"{run_id}.1"
    assert calls[1]["meta"]["via"] == "callback"
    assert pair.charges(run_id) == 1


def test_one_id_for_calls_of_two_operations_makes_two_calls(pair: Pair) -> None:
    """The callee runs one operation per (operation, id): the caller tells their
    callbacks apart too (their signals, delivery ids and keys name the operation)."""
    pair.order("gated-two", 7, workflow="order_checked")
    pair.wait_entered("gated-two")
    _wait_history(pair, "gated-two", "step_retrying")  # polled once: callbacks come first
    pair.open_gate("gated-two")
    assert pair.result("gated-two") == {
        "payment": {"charge_id": "ch_gated-two_7", "amount": 7},
        "check": {"verified": "gated-two", "limit": 70}}
    calls = _call_events(pair.history("gated-two"))
    assert [(e["kind"], e["name"]) for e in calls] == [
        ("call_started", "charge"), ("call_completed", "charge"),
        ("call_started", "verify"), ("call_completed", "verify")]
    assert calls[1]["meta"]["via"] == "callback"


def test_ids_spelt_like_paths_are_refused_or_reached(pair: Pair) -> None:
    """An id with a "/" no route of the callee could reach is refused at the call (it
    was started there, then its polls found no route: the call "refused", the operation
    running on unowned); "." and ".." reach their operation."""
    for odd, workflow_id in (("order/42", "odd-slash"), (".", "odd-dot"), ("..", "odd-dots")):
        response = httpx.post(f"{pair.orders.url}/v1/runs", json={
            "workflow": "order_odd_id", "id": workflow_id, "args": [odd]}, timeout=30)
        assert response.status_code == 202, response.text
        result = pair.result(workflow_id)
        if "/" in odd:
            assert result["refused"].startswith("InvalidArgumentError"), result
        else:
            assert result == {"payment": {"charge_id": f"ch_x{odd}_1", "amount": 1}}
    listed = httpx.get(f"{pair.payments.url}/v1/runs",
                       params={"id_prefix": "duro.op/charge/order/"},
                       headers={"Authorization": f"Bearer {pair.token}"}, timeout=30)
    assert listed.json()["runs"] == []  # nothing of the refused one reached the callee


def _wait_history(pair: Pair, order_id: str, kind: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while not any(e["kind"] == kind for e in pair.history(order_id)):
        assert time.monotonic() < deadline, f"no {kind} in {order_id}'s history"
        time.sleep(0.05)


def test_the_typed_stub_calls_the_operation_and_converts_its_result(pair: Pair) -> None:
    run_id = pair.order("o-typed", 12, workflow="order_typed")
    assert pair.result("o-typed") == {"order_id": "o-typed", "type": "Payment",
                                      "charge_id": "ch_o-typed_12"}
    assert pair.charges(run_id) == 1


def test_a_callee_failure_reaches_the_caller_typed(pair: Pair) -> None:
    pair.order("o-declined", 0)
    result = pair.result("o-declined")
    assert result["failed"] == "failed"
    assert result["error_type"].endswith("CardDeclinedError")
    assert result["message"] == "card declined for order o-declined"
    assert "rpc_payments.py" in result["traceback"]  # the callee's own frames
    failed = _call_events(pair.history("o-declined"))[-1]
    assert failed["kind"] == "call_failed" and failed["meta"]["status"] == "failed"


def test_unknown_or_unexposed_operations_are_refused_typed(pair: Pair) -> None:
    for operation in ("no_such_op", "internal_refund"):
        pair.order(f"o-{operation}", 5, operation=operation)
        result = pair.result(f"o-{operation}")
        assert result["failed"] == "refused"
        assert result["error_type"] == "operation_not_found"
    # Over HTTP too, whatever the token: not found, nothing started.
    response = httpx.post(f"{pair.payments.url}/v1/operations/internal_refund",
                          json={"operation_id": "x1", "args": ["a"]},
                          headers={"Authorization": f"Bearer {pair.token}"})
    problem(response, 404, "operation_not_found")


def test_a_bad_token_is_refused_typed(pair: Pair) -> None:
    response = httpx.post(f"{pair.payments.url}/v1/operations/charge",
                          json={"operation_id": "forged-1", "args": ["a", 1]},
                          headers={"Authorization": "Bearer duro_nope"})
    problem(response, 401, "unauthenticated")
    # A caller configured with a bad token: its call fails refused, typed.
    with pair.side("orders-bad.db", {"PAYMENTS_TOKEN": "duro_nope"}) as bad:
        result = _side_order(bad, "o-badtoken", 5)
        assert result["failed"] == "refused"
        assert result["error_type"] == "unauthenticated"


def test_without_a_reachable_callback_the_result_comes_by_polling(pair: Pair) -> None:
    # A caller whose callback URL reaches nothing (a closed port): polling only.
    with pair.side("orders-poll.db", {
            "ORDERS_URL": f"http://127.0.0.1:{free_port()}", "DURO_CALLBACK_SECRET": SECRET,
            "POLL_INTERVAL": "0.3"}) as lone:
        result = _side_order(lone, "o-poll", 7)
        assert result["payment"] == {"charge_id": "ch_o-poll_7", "amount": 7}
        events = httpx.get(f"{lone.url}/v1/runs/o-poll/history").json()["events"]
        done = _call_events(events)[-1]
        assert done["kind"] == "call_completed" and done["meta"]["via"] == "poll"


def test_while_callbacks_are_refused_results_arrive_by_polling(pair: Pair) -> None:
    # The outage is 30 s: scripts/rpc_soak.py runs that one (docs/rpc.md has its
    # figures); the same check, shorter, here.
    figures = callback_outage(pair, 3.0, orders=2)
    assert figures["refused"] >= 2


def test_an_outside_caller_starts_an_operation_and_gets_its_signed_callback(
        pair: Pair) -> None:
    secret = "outside-secret"

    async def main(receiver: Receiver) -> None:
        async with duro.Client(pair.payments.url, token=pair.token) as client:
            ops = client.operations
            started = await ops.start("charge", "ext-1", 77, operation_id="ext-op-1",
                                      callback_url=f"{receiver.url}/hooks/pay",
                                      callback_secret=secret)
            assert started.operation_id == "ext-op-1"
            path, signature, body = receiver.received.get(timeout=30)
            assert path == "/hooks/pay"
            outcome = verify_callback(body, signature, secret)
            assert (outcome.operation_id, outcome.status, outcome.result) == (
                "ext-op-1", "completed", {"charge_id": "ch_ext-1_77", "amount": 77})
            # The same id again: the same operation, ended; nothing runs twice.
            again = await ops.start("charge", "ext-1", 77, operation_id="ext-op-1",
                                    callback_url=f"{receiver.url}/hooks/pay",
                                    callback_secret=secret)
            assert (again.status, again.result) == ("completed", outcome.result)
            assert len(await _payments_runs(pair, "duro.op/charge/ext-op-1/")) == 1
            # A wrong secret, a changed body, no signature: refused.
            for args in ((body, signature, "not-it"), (body.replace(b"77", b"78"),
                                                       signature, secret), (body, None, secret)):
                with pytest.raises(duro.InvalidSignatureError):
                    verify_callback(*args)
            # Cancelling from outside: the callback says so too.
            await ops.start("charge", "gated-ext-2", 5, operation_id="ext-op-2",
                            callback_url=receiver.url, callback_secret=secret)
            pair.wait_entered("gated-ext-2")
            cancelled = await ops.cancel("charge", "ext-op-2")
            assert cancelled.status in ("running", "cancelled")
            _, signature, body = receiver.received.get(timeout=30)
            assert verify_callback(body, signature, secret).status == "cancelled"
            # The callback is sent as the operation's run ends: its state follows.
            deadline = asyncio.get_running_loop().time() + 30
            while (await ops.get("charge", "ext-op-2")).status != "cancelled":
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            pair.open_gate("gated-ext-2")
            # Refused before anything is sent or started.
            with pytest.raises(duro.InvalidArgumentError):
                await ops.start("charge", "x", 1, operation_id="ext-op-3",
                                callback_url=receiver.url)
            with pytest.raises(duro.OperationNotFoundError):
                await ops.start("internal_refund", "x", operation_id="ext-op-4")
            with pytest.raises(duro.RunNotFoundError):
                await ops.get("charge", "ext-op-3")

    with Receiver() as receiver:
        run(main(receiver))


def test_an_outside_start_sends_its_arguments_as_duro_encodes_them(pair: Pair) -> None:
    async def main() -> duro.rpc.OperationState:
        async with duro.Client(pair.payments.url, token=pair.token) as client:
            # bytes are no JSON: encoded (base64) they are checked, and that is sent.
            await client.operations.start("charge", b"ext-b", 5, operation_id="ext-op-b")
            deadline = asyncio.get_running_loop().time() + 30
            while (state := await client.operations.get("charge", "ext-op-b")).status \
                    == "running":
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            return state

    state = run(main())
    assert (state.status, state.result) == ("completed",
                                            {"charge_id": "ch_ZXh0LWI=_5", "amount": 5})


def test_cancelling_an_ended_operation_leaves_its_outcome(pair: Pair) -> None:
    """An operation that ended stays as it ended: cancelled while its wrapper still
    delivers the callback (to a URL nobody answers), or after everything ended."""
    async def main() -> None:
        async with duro.Client(pair.payments.url, token=pair.token) as client:
            ops = client.operations
            await ops.start("charge", "ended-1", 3, operation_id="ended-op-1",
                            callback_url=f"http://127.0.0.1:{free_port()}/nobody",
                            callback_secret="s")
            state = await ops.get("charge", "ended-op-1")
            for _ in range(300):
                if state.done:
                    break
                await asyncio.sleep(0.05)
                state = await ops.get("charge", "ended-op-1")
            assert state.status == "completed", state
            for _ in range(2):  # while the callback is retried, and again
                again = await ops.cancel("charge", "ended-op-1")
                assert (again.status, again.result) == ("completed", state.result)
            assert (await ops.get("charge", "ended-op-1")).status == "completed"
            # A wrapper run that ended too: its state, not "no live run".
            await ops.start("charge", "ended-2", 4, operation_id="ended-op-2")
            async with duro.Client(pair.payments.db_url) as store:  # the wrapper's id: a "/"
                await store.get_handle("duro.op/charge/ended-op-2").result(timeout=30)
            assert (await ops.cancel("charge", "ended-op-2")).status == "completed"

    run(main())


def test_a_cancel_before_the_start_is_recorded_and_the_late_start_runs_nothing(
        pair: Pair) -> None:
    """A cancel that overtakes its start (the start held by a slow proxy past the
    caller's timeout): the callee records the operation as cancelled; the start that
    comes after it finds it ended, and the exposed workflow never runs."""
    async def main() -> None:
        async with duro.Client(pair.payments.url, token=pair.token) as client:
            ops = client.operations
            first = await ops.cancel("charge", "early-cancel-1")
            assert first.status in ("running", "cancelled"), first
            deadline = asyncio.get_running_loop().time() + 30
            while (state := await ops.get("charge", "early-cancel-1")).status != "cancelled":
                assert state.status == "running", state
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            late = await ops.start("charge", "late-1", 9, operation_id="early-cancel-1")
            assert late.status == "cancelled", late
            assert (await ops.cancel("charge", "early-cancel-1")).status == "cancelled"
            started = await ops.start("charge", "after-1", 2, operation_id="after-1")
            while not started.done:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
                started = await ops.get("charge", "after-1")
            # Refused before anything is recorded.
            with pytest.raises(duro.OperationNotFoundError):
                await ops.cancel("internal_refund", "early-cancel-2")
            with pytest.raises(duro.InvalidArgumentError):
                await ops.cancel("charge", "x" * 201)
        # The exposed workflow never ran (as another operation's run shows it would be).
        assert await _payments_runs(pair, "duro.op/charge/early-cancel-") == []
        assert len(await _payments_runs(pair, "duro.op/charge/after-1/")) == 1

    run(main())


async def _payments_runs(pair: Pair, id_prefix: str) -> list[duro.RunInfo]:
    async with duro.Client(pair.payments.db_url) as payments:
        return await payments.list(name="charge", id_prefix=id_prefix)


def test_kill_9_of_the_caller_mid_call_starts_the_callee_once(pair: Pair) -> None:
    run_id = pair.order("gated-caller", 40)
    pair.wait_entered("gated-caller")
    pair.orders.kill()
    pair.open_gate("gated-caller")  # the callee finishes while the caller is dead
    pair.orders.start()
    result = pair.result("gated-caller")
    assert result["payment"] == {"charge_id": "ch_gated-caller_40", "amount": 40}
    assert pair.charges(run_id) == 1
    assert [e["kind"] for e in _call_events(pair.history("gated-caller"))] == [
        "call_started", "call_completed"]


def test_kill_9_of_the_callee_mid_operation_still_delivers(pair: Pair) -> None:
    run_id = pair.order("gated-callee", 60)
    pair.wait_entered("gated-callee")
    pair.payments.kill()
    pair.open_gate("gated-callee")
    pair.payments.start()
    result = pair.result("gated-callee")
    assert result["payment"] == {"charge_id": "ch_gated-callee_60", "amount": 60}
    assert pair.charges(run_id) == 1


def test_forged_and_replayed_callbacks_are_refused_and_change_nothing(pair: Pair) -> None:
    run_id = pair.order("gated-forge", 9)
    pair.wait_entered("gated-forge")
    operation_id = f"{run_id}.1"
    body = orjson.dumps({"operation_id": operation_id, "workflow_id": "gated-forge",
                         "namespace": "default",
                         "outcome": {"status": "completed", "result": "forged"}})
    url = f"{pair.orders.url}/v1/callbacks"
    # No signature, a wrong secret, another operation's key: 401, nothing recorded.
    problem(httpx.post(url, content=body), 401, "invalid_signature")
    wrong = callback_key(b"not-the-secret", "default", "gated-forge", operation_id)
    problem(httpx.post(url, content=body, headers={"Duro-Signature": sign(wrong, body)}),
            401, "invalid_signature")
    other = callback_key(SECRET.encode(), "default", "gated-forge", f"{run_id}.2")
    problem(httpx.post(url, content=body, headers={"Duro-Signature": sign(other, body)}),
            401, "invalid_signature")
    assert not [e for e in pair.history("gated-forge") if e["kind"] == "signal_received"]
    pair.open_gate("gated-forge")
    result = pair.result("gated-forge")
    assert result["payment"] == {"charge_id": "ch_gated-forge_9", "amount": 9}
    # The genuine callback replayed (same body, same signature) changes nothing.
    key = callback_key(SECRET.encode(), "default", "gated-forge", operation_id)
    replay = orjson.dumps({"operation_id": operation_id, "workflow_id": "gated-forge",
                           "namespace": "default",
                           "outcome": {"status": "completed", "result": "again"}})
    response = httpx.post(url, content=replay, headers={"Duro-Signature": sign(key, replay)})
    assert response.status_code in (200, 404), response.text
    assert pair.result("gated-forge")["payment"]["amount"] == 9


def _operation_status(pair: Pair, operation_id: str, expected: str) -> None:
    """Until the callee says the operation ended ``expected`` (bounded)."""
    import time

    deadline = time.monotonic() + 30
    while True:
        state = httpx.get(f"{pair.payments.url}/v1/operations/charge/{operation_id}",
                          headers={"Authorization": f"Bearer {pair.token}"}).json()
        if state["status"] == expected:
            return
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def test_cancelling_the_caller_cancels_the_callee(pair: Pair) -> None:
    run_id = pair.order("gated-cancel", 3)
    pair.wait_entered("gated-cancel")
    assert httpx.post(f"{pair.orders.url}/v1/runs/gated-cancel/cancel").status_code == 202
    body = httpx.get(f"{pair.orders.url}/v1/runs/gated-cancel/result",
                     params={"wait": "30"}, timeout=40).json()
    assert body["status"] == "cancelled", body
    _operation_status(pair, f"{run_id}.1", "cancelled")
    failed = _call_events(pair.history("gated-cancel"))[-1]
    assert failed["kind"] == "call_failed" and failed["meta"]["status"] == "call_cancelled"
    pair.open_gate("gated-cancel")


def test_a_call_timeout_is_durable_and_cancels_the_callee(pair: Pair) -> None:
    run_id = pair.order("gated-timeout", 3, timeout=0.5)
    result = pair.result("gated-timeout")
    assert result["failed"] == "call_timed_out"
    _operation_status(pair, f"{run_id}.1", "cancelled")
    kinds = [e["kind"] for e in pair.history("gated-timeout")]
    assert "timer_fired" in kinds and kinds.count("call_failed") == 1
    pair.open_gate("gated-timeout")


def test_20_calls_with_kill_9_of_each_side_complete_exactly_once(pair: Pair) -> None:
    # The 200 calls: scripts/rpc_soak.py (docs/rpc.md has its figures).
    figures = soak(pair, 20)
    assert figures["ledger_keys"] == 20
