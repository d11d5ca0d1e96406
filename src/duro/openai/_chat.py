"""``duro.openai.chat``: one chat completion from inside a step, durably accounted for.

Retries are the step's: the SDK's own retries are turned off for the call, and a 429 or
5xx becomes an exception the step's retry policy acts on (:mod:`._errors`), so every
attempt, and the delay the provider asked for, is in the run's history.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import openai

from duro.openai._errors import (
    RETRIED_STATUSES,
    ChatArgumentError,
    ModelBusyError,
    ModelRequestError,
    ModelUnavailableError,
    retry_after_of,
)
from duro.openai._reply import ChatReply, ToolCall, merge_tool_deltas
from duro.step._step import StepInfo, _current_step
from duro.step._step import stream as stream_chunk
from duro.usage._model_call import record_model_call

__all__ = ["chat"]

# How many chat() calls this attempt has made, to give each its own idempotency key
# (an idempotent provider would answer a second, different request under the first
# one's key with the first one's response). The StepInfo is kept, not its id(): a new
# attempt's info is a new object, so the count starts again at each attempt.
_calls: contextvars.ContextVar[tuple[StepInfo, int] | None] = contextvars.ContextVar(
    "duro_openai_calls", default=None)


async def chat(client: openai.AsyncOpenAI, *, model: str,
               messages: Sequence[Mapping[str, Any]], stream: bool = False,
               provider: str | None = None, idempotency_key: str | None = None,
               **params: Any) -> ChatReply:
    """Ask for one chat completion; call it inside a ``@duro.step``.

    - **Retries**: 429, 408, 409 and 5xx raise :class:`ModelBusyError` (a
      :class:`duro.RetryAfterError`) when the provider said when to come back
      (``Retry-After``, ``retry-after-ms``), else :class:`ModelUnavailableError`, as do
      a lost connection and a timeout: the step's retry policy retries them, durably,
      each attempt in the history. Another 4xx raises :class:`ModelRequestError` (a
      :class:`duro.NonRetryableError`). The client's own retries are off for this call.
    - **Streaming** (``stream=True``): each text delta goes to the run's stream with
      ``duro.stream(text)`` as it arrives (readers: ``handle.stream()``); the reply is
      returned whole at the end, and the history keeps only it.
    - **Usage**: the tokens the provider reports are recorded with
      :func:`duro.record_usage` (``model`` as asked; ``response_model``,
      ``cached_tokens``, ``reasoning_tokens``, ``request_id`` and ``provider`` as
      extras), so they are stored with the step's outcome. Streaming asks for the usage
      chunk (``stream_options.include_usage``); a provider that reports no usage records
      nothing.
    - **Idempotency**: the request carries an ``Idempotency-Key`` header, the step's
      ``duro.step_info().idempotency_key`` (the same on every attempt of the step); the
      step's second call gets ``KEY.2``, its third ``KEY.3``, and so on.

    Args:
        client: An ``openai.AsyncOpenAI`` (any OpenAI-compatible server: set its
            ``base_url``).
        model: The model's name.
        messages: The conversation, as OpenAI message objects (dicts).
        stream: Stream the reply, each text delta out through ``duro.stream``; the
            result is the same, assembled.
        provider: The provider's name, recorded with the usage (helps the price table
            find the model, e.g. ``"openai"``).
        idempotency_key: The key to send instead of the step's own (needed when one
            step makes several calls concurrently, whose order is not fixed).
        **params: Passed on to ``client.chat.completions.create`` (``tools``,
            ``temperature``, ``max_tokens``, ``timeout``, ``extra_headers``...).

    Returns:
        The reply: its text, tool calls, finish reason and token counts; a dataclass
        that a step can return as it is.

    Raises:
        ChatArgumentError: An argument is refused (no request is sent).
        ModelBusyError: The provider asked to retry after a delay.
        ModelUnavailableError: The provider failed or could not be reached.
        ModelRequestError: The provider refused the request.
    """
    _check(client, model, messages, stream, provider, idempotency_key, params)
    headers = dict(params.pop("extra_headers", None) or {})
    key = idempotency_key or _step_key()
    if key is not None:
        headers["Idempotency-Key"] = key
    quiet = client.with_options(max_retries=0)
    request: dict[str, Any] = {"model": model, "messages": list(messages), **params}
    if headers:
        request["extra_headers"] = headers
    try:
        if stream:
            reply = await _streamed(quiet, request)
        else:
            reply = _plain(await quiet.chat.completions.create(**request))
    except openai.APIStatusError as exc:
        raise _status_error(exc) from exc
    except (openai.APIConnectionError, httpx.TransportError) as exc:
        raise ModelUnavailableError(f"the model server could not be reached: {exc}") from exc
    if reply.usage_reported:
        record_model_call(model=model, input_tokens=reply.input_tokens,
                          output_tokens=reply.output_tokens,
                          cached_tokens=reply.cached_tokens,
                          reasoning_tokens=reply.reasoning_tokens, cost=reply.cost,
                          provider=provider, response_model=reply.model,
                          request_id=reply.id)
    return reply


def _check(client: Any, model: Any, messages: Any, stream: Any, provider: Any,
           key: Any, params: Mapping[str, Any]) -> None:
    if not isinstance(client, openai.AsyncOpenAI):
        raise ChatArgumentError(f"client must be an openai.AsyncOpenAI, not {client!r}")
    if not isinstance(model, str) or not model:
        raise ChatArgumentError(f"model must be a non-empty string, not {model!r}")
    if (isinstance(messages, str | bytes) or not isinstance(messages, Sequence)
            or not messages):
        raise ChatArgumentError("messages must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ChatArgumentError(f"messages[{i}] must be a dict with a 'role', "
                                    f"not {message!r}")
    if not isinstance(stream, bool):
        raise ChatArgumentError(f"stream must be True or False, not {stream!r}")
    for name, value in (("provider", provider), ("idempotency_key", key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ChatArgumentError(f"{name} must be a non-empty string or None, "
                                    f"not {value!r}")
    if params.get("n", 1) != 1:
        raise ChatArgumentError("n must be 1: chat() returns one reply")
    if "stream_options" in params:
        raise ChatArgumentError("stream_options is set by chat() (it asks for the usage)")


def _step_key() -> str | None:
    info = _current_step.get()
    if info is None:
        return None
    last = _calls.get()
    count = last[1] + 1 if last is not None and last[0] is info else 1
    _calls.set((info, count))
    return info.idempotency_key if count == 1 else f"{info.idempotency_key}.{count}"


def _status_error(exc: openai.APIStatusError) -> Exception:
    status, request_id = exc.status_code, exc.request_id
    text = f"the model server answered {status}: {exc.message}"
    if status in RETRIED_STATUSES or status >= 500:
        delay = retry_after_of(exc.response.headers)
        if delay is not None:
            return ModelBusyError(text, retry_after=delay, status=status,
                                  request_id=request_id)
        return ModelUnavailableError(text, status=status, request_id=request_id)
    return ModelRequestError(text, status=status, request_id=request_id)


def _plain(completion: Any) -> ChatReply:
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice is not None else None
    raw_calls = (message.tool_calls if message is not None else None) or []
    calls = tuple(ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                  for c in raw_calls if getattr(c, "function", None) is not None)
    return ChatReply.of(content=message.content if message is not None else None,
                        tool_calls=calls,
                        finish_reason=choice.finish_reason if choice is not None else None,
                        model=completion.model, id=completion.id, usage=completion.usage)


async def _streamed(client: openai.AsyncOpenAI, request: dict[str, Any]) -> ChatReply:
    parts: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = usage = model = rid = None
    chunks = await client.chat.completions.create(
        **request, stream=True, stream_options={"include_usage": True})
    async with chunks:
        async for chunk in chunks:
            model, rid = chunk.model or model, chunk.id or rid
            usage = chunk.usage or usage
            for choice in chunk.choices[:1]:
                finish = choice.finish_reason or finish
                delta = choice.delta
                if delta.content:
                    parts.append(delta.content)
                    stream_chunk(delta.content)  # live to the run's readers
                merge_tool_deltas(calls, delta.tool_calls or [])
    tools = tuple(ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"])
                  for _, c in sorted(calls.items()))
    return ChatReply.of(content="".join(parts) if parts or not tools else None,
                        tool_calls=tools, finish_reason=finish, model=model or "",
                        id=rid, usage=usage)
