"""``duro.openai.chat`` (issue 17, item 7) inside workflows' steps, against the local
OpenAI-compatible server (``examples/local_llm.py``, a real process on loopback), on
both stores: plain and streamed replies, tool calls, the usage recorded with the step's
outcome, 429 with Retry-After and 500 retried as durable attempts with the same
idempotency key, a completed step not asked again after a worker restart, bad input
refused before any request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

import duro
from duro.openai import (
    ChatArgumentError,
    ChatReply,
    ModelBusyError,
    ModelRequestError,
    ModelUnavailableError,
    chat,
)
from tests.conftest import run, wait_until
from tests.llm import LocalModel, local_model

MODEL = "local-small"
duro.set_model_prices({MODEL: duro.ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0)})

_url: list[str] = []


def _client() -> openai.AsyncOpenAI:
    # One per call: each test runs its own event loop, and the SDK's connections belong
    # to the loop that opened them.
    return openai.AsyncOpenAI(base_url=_url[0], api_key="local")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModel]:
    with local_model() as model:
        _url[:] = [model.url]
        yield model


@pytest.fixture
def llm(server: LocalModel) -> LocalModel:
    server.reset()
    return server


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@duro.step(name="chat.ask", retry=duro.RetryPolicy(max_attempts=4, initial_interval=0.01))
async def ask(question: str, stream: bool) -> ChatReply:
    return await chat(_client(), model=MODEL, messages=_user(question), stream=stream,
                      provider="local")


# If Retry-After were not honoured, its retry would wait 30 s: the test would time out.
@duro.step(name="chat.patient",
           retry=duro.RetryPolicy(max_attempts=3, initial_interval=30.0, jitter=0))
async def patient(question: str) -> ChatReply:
    return await chat(_client(), model=MODEL, messages=_user(question))


@duro.step(name="chat.twice")
async def twice(question: str) -> list[str]:
    first = await chat(_client(), model=MODEL, messages=_user(question))
    second = await chat(_client(), model=MODEL, messages=_user(question + " again"))
    return [first.content or "", second.content or ""]


@duro.step(name="chat.bad")
async def bad(model: str) -> ChatReply:
    return await chat(_client(), model=model, messages=_user("hi"))


@duro.workflow(name="chat.one")
async def one(question: str, stream: bool) -> ChatReply:
    return await ask(question, stream)


@duro.workflow(name="chat.slow")
async def slow(question: str) -> ChatReply:
    return await patient(question)


@duro.workflow(name="chat.calls")
async def calls(question: str) -> list[str]:
    return await twice(question)


@duro.workflow(name="chat.refused")
async def refused(model: str) -> ChatReply:
    return await bad(model)


@duro.workflow(name="chat.paused")
async def paused(question: str) -> list[str]:
    first = await ask(question, False)
    await duro.wait_for_signal("go")
    second = await ask(question + " later", True)
    return [first.content or "", second.content or ""]


def _events(events: list[duro.Event], kind: str) -> list[duro.Event]:
    return [e for e in events if e.kind == kind]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_reply_and_usage_recorded_with_the_step(any_db_url: str, llm: LocalModel,
                                                stream: bool) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(one, "what is durable execution", stream, id="c-1")
            reply = await handle.result(timeout=30)
            # Returned from the step as a dataclass: the history keeps it, typed.
            assert isinstance(reply, ChatReply)
            assert reply.content == "Reply to: what is durable execution"
            assert reply.finish_reason == "stop" and reply.tool_calls == ()
            # The server's figures: 4 words + 3 for the one message; 6 words back.
            assert (reply.input_tokens, reply.output_tokens) == (7, 6)
            (done,) = _events(await handle.history(), "step_completed")
            (usage,) = done.meta["usage"]
            assert usage == {"model": MODEL, "input_tokens": 7, "output_tokens": 6,
                             "cost": pytest.approx((7 * 1.0 + 6 * 2.0) / 1e6),
                             "extra": {"provider": "local", "request_id": reply.id}}
            totals = await handle.usage()
            assert (totals.total.calls, totals.total_tokens) == (1, 13)
        (request,) = llm.stats()["log"]
        assert request["stream"] is stream and request["status"] == 200
        assert request["idempotency_key"]  # the step's own (see the retry tests)

    run(main())


def test_tool_calls_plain_and_streamed(llm: LocalModel) -> None:
    tools = [{"type": "function", "function": {
        "name": "search", "parameters": {"type": "object",
                                         "properties": {"query": {"type": "string"}}}}}]

    async def main() -> None:
        messages = _user("Use search to research: durable timers")
        for stream in (False, True):
            reply = await chat(_client(), model=MODEL, messages=messages, tools=tools,
                               stream=stream)
            assert reply.finish_reason == "tool_calls" and reply.content is None
            (call,) = reply.tool_calls
            assert call.name == "search" and call.args() == {"query": "durable timers"}
            assert call.id
            answered = [*messages, reply.message(),
                        {"role": "tool", "tool_call_id": call.id,
                         "content": "Timers wait durably. They survive restarts."}]
            final = await chat(_client(), model=MODEL, messages=answered, tools=tools,
                               stream=stream)
            assert final.content == "Based on 1 tool results: Timers wait durably."
            assert final.tool_calls == ()

    run(main())


def test_429_with_retry_after_is_a_durable_retry_after_that_delay(
        any_db_url: str, llm: LocalModel) -> None:
    llm.fail(1, 429, retry_after=0.3)

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(slow, "busy?", id="c-429")
            reply = await handle.result(timeout=20)
            assert reply.content == "Reply to: busy?"
            events = await handle.history()
        (retrying,) = _events(events, "step_retrying")
        assert retrying.data["type"].endswith("ModelBusyError")
        assert "429" in retrying.data["message"]
        # The delay recorded is the server's, not the policy's 30 s.
        delay = retrying.meta["retry_at"] - retrying.time.timestamp()
        assert delay == pytest.approx(0.3, abs=0.01)
        failed, ok = llm.stats()["log"]
        assert (failed["status"], ok["status"]) == (429, 200)
        assert ok["at"] - failed["at"] >= 0.3
        # One step, one key, on every attempt; the same request sent twice.
        assert failed["idempotency_key"] == ok["idempotency_key"] is not None
        assert failed["fingerprint"] == ok["fingerprint"]

    run(main())


def test_streamed_tokens_go_to_the_run_stream_and_a_cut_attempt_is_superseded(
        any_db_url: str, llm: LocalModel) -> None:
    llm.fail(1, cut_after=2)  # the first attempt's connection dies after two tokens

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(one, "tell me about streams", True, id="c-cut")
            reply = await handle.result(timeout=20)
            chunks = [c async for c in handle.stream()]
            events = await handle.history()
        tokens = ["Reply", " to:", " tell", " me", " about", " streams"]
        assert reply.content == "".join(tokens)
        assert [(c.kind, c.attempt, c.data, c.superseded) for c in chunks] == [
            ("chunk", 1, "Reply", True), ("chunk", 1, " to:", True),
            ("superseded", 2, None, False),
            *[("chunk", 2, token, False) for token in tokens]]
        (retrying,) = _events(events, "step_retrying")
        assert retrying.data["type"].endswith("ModelUnavailableError")
        (done,) = _events(events, "step_completed")
        assert done.meta["usage"][0]["output_tokens"] == len(tokens)
        assert [r["status"] for r in llm.stats()["log"]] == ["cut", 200]

    run(main())


def test_500_then_success_retried_by_the_policy(any_db_url: str, llm: LocalModel) -> None:
    llm.fail(2, 500)

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(one, "are you up", True, id="c-500")
            assert (await handle.result(timeout=20)).content == "Reply to: are you up"
            events = await handle.history()
        retries = _events(events, "step_retrying")
        assert [e.data["type"].rsplit(".", 1)[-1] for e in retries] == [
            "ModelUnavailableError"] * 2
        # Failed attempts recorded no usage: no tokens were reported for them.
        assert all("usage" not in e.meta for e in retries)
        log = llm.stats()["log"]
        assert [r["status"] for r in log] == [500, 500, 200]
        assert len({r["idempotency_key"] for r in log}) == 1

    run(main())


def test_other_4xx_fails_the_step_at_once(any_db_url: str, llm: LocalModel) -> None:
    llm.fail(1, 401)

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(one, "let me in", False, id="c-401")
            with pytest.raises(duro.WorkflowFailedError):
                await handle.result(timeout=20)
            events = await handle.history()
        assert _events(events, "step_retrying") == []
        (failed,) = _events(events, "step_failed")
        assert failed.data["type"].endswith("ModelRequestError")
        assert llm.stats()["requests"] == 1

    run(main())


def test_each_call_of_a_step_has_its_own_key(any_db_url: str, llm: LocalModel) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(calls, "two", id="c-two")
            assert await handle.result(timeout=20) == ["Reply to: two",
                                                       "Reply to: two again"]
            (done,) = _events(await handle.history(), "step_completed")
            assert len(done.meta["usage"]) == 2
        first, second = (r["idempotency_key"] for r in llm.stats()["log"])
        assert second == f"{first}.2"

    run(main())


def test_completed_step_not_asked_again_after_a_worker_restart(
        any_db_url: str, llm: LocalModel) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(paused, "first question", id="c-restart")

            async def first_done() -> bool:
                return any(e.kind == "step_completed" for e in await handle.history())

            await wait_until(first_done, timeout=20)
        # A new worker takes the run up again: it replays the first step's reply from
        # the history, then asks only the second question.
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = engine.get_handle("c-restart")
            await handle.signal("go")
            assert await handle.result(timeout=20) == [
                "Reply to: first question", "Reply to: first question later"]
            assert (await handle.usage()).total.calls == 2
        stats = llm.stats()
        assert stats["requests"] == 2
        assert set(stats["by_fingerprint"].values()) == {1}

    run(main())


def test_bad_input_refused_before_any_request(any_db_url: str, llm: LocalModel) -> None:
    async def main() -> None:
        client = _client()
        cases: list[tuple[dict[str, Any], str]] = [
            ({"model": ""}, "model must be a non-empty string"),
            ({"model": None}, "model must be a non-empty string"),
            ({"messages": []}, "messages must be a non-empty list"),
            ({"messages": "hello"}, "messages must be a non-empty list"),
            ({"messages": [{"content": "no role"}]}, "messages[0] must be a dict"),
            ({"stream": "yes"}, "stream must be True or False"),
            ({"provider": ""}, "provider must be a non-empty string"),
            ({"idempotency_key": 7}, "idempotency_key must be a non-empty string"),
            ({"n": 2}, "n must be 1"),
            ({"stream_options": {}}, "stream_options is set by chat()"),
        ]
        for change, message in cases:
            kwargs: dict[str, Any] = {"model": MODEL, "messages": _user("hi"), **change}
            with pytest.raises(ChatArgumentError, match=message.replace("[", r"\[")):
                await chat(client, **kwargs)
        with pytest.raises(ChatArgumentError, match=r"openai\.AsyncOpenAI"):
            await chat(openai.OpenAI(base_url=_url[0], api_key="x"),  # type: ignore[arg-type]
                       model=MODEL, messages=_user("hi"))
        assert issubclass(ChatArgumentError, duro.InvalidArgumentError)
        # In a step: failed at once (not retried), and nothing was sent.
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(refused, "", id="c-bad")
            with pytest.raises(duro.WorkflowFailedError):
                await handle.result(timeout=20)
            events = await handle.history()
        assert _events(events, "step_retrying") == []
        (failed,) = _events(events, "step_failed")
        assert failed.data["type"].endswith("ChatArgumentError")
        assert llm.stats()["requests"] == 0

    run(main())


def test_outside_a_step_no_key_and_errors_typed(llm: LocalModel) -> None:
    async def main() -> None:
        reply = await chat(_client(), model=MODEL, messages=_user("plain call"))
        assert reply.content == "Reply to: plain call" and reply.usage_reported
        llm.fail(1, 503, retry_after=0.05)
        with pytest.raises(ModelBusyError) as busy:
            await chat(_client(), model=MODEL, messages=_user("x"))
        assert (busy.value.status, busy.value.retry_after) == (503, 0.05)
        assert isinstance(busy.value, duro.RetryAfterError)
        llm.fail(1, 422)
        with pytest.raises(ModelRequestError) as refused:
            await chat(_client(), model=MODEL, messages=_user("x"))
        assert refused.value.status == 422
        dead = openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x")
        with pytest.raises(ModelUnavailableError) as lost:
            await chat(dead, model=MODEL, messages=_user("x"))
        assert lost.value.status is None
        assert [r["idempotency_key"] for r in llm.stats()["log"]] == [None] * 3

    run(main())
