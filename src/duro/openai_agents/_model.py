"""The durable model: each model call of an ``agents`` run is one duro step.

The Runner runs in the workflow (deterministic, no I/O); when it asks its model for a
response, :class:`DurableModel` issues the step ``duro.openai_agents.model``, whose
attempt calls the real model in the worker, records its usage and returns the response
as JSON. The history keeps that JSON, so a replay (after a kill -9, or to rebuild a run)
hands the Runner the very same response without calling the model again.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from agents import Model, ModelProvider, ModelResponse, ModelTracing
from agents.items import TResponseOutputItem
from agents.models.multi_provider import MultiProvider
from agents.usage import Usage, deserialize_usage, serialize_usage
from openai.types.responses import Response, ResponseCompletedEvent
from pydantic import TypeAdapter, ValidationError

import duro
from duro._checks import check_seconds
from duro.errors import InvalidArgumentError
from duro.step import Step
from duro.usage._model_call import record_model_call

if TYPE_CHECKING:
    from agents import AgentOutputSchemaBase, Handoff, ModelSettings, Tool
    from agents.items import TResponseInputItem, TResponseStreamEvent
    from openai.types.responses.response_prompt_param import ResponsePromptParam

__all__ = ["MODEL_STEP", "DurableModel", "DurableModelProvider", "default_provider"]

MODEL_STEP = "duro.openai_agents.model"
"""The recorded name of every model call's step (``duro stats`` sums them under it)."""

_OUTPUT_ITEM: TypeAdapter[TResponseOutputItem] = TypeAdapter(TResponseOutputItem)


@dataclass(frozen=True)
class _Request:
    """One model call's arguments, as the Runner gave them (positional: system
    instructions, input, settings, tools, output schema, handoffs, tracing). Never
    stored: a local step's arguments stay in memory, only its result enters the
    history."""

    args: tuple[Any, ...]
    previous_response_id: str | None
    conversation_id: str | None
    prompt: ResponsePromptParam | None

    def kwargs(self) -> dict[str, Any]:
        return {"previous_response_id": self.previous_response_id,
                "conversation_id": self.conversation_id, "prompt": self.prompt}


def check_retry(retry: object) -> None:
    """Refuse a retry policy that is not one (``@duro.step`` raises a TypeError)."""
    if retry is not None and not isinstance(retry, duro.RetryPolicy):
        raise InvalidArgumentError(f"retry must be a duro.RetryPolicy, not {retry!r}")


class DurableModelProvider(ModelProvider):
    """A model provider whose models make each call as a duro step.

    Give it as ``RunConfig(model_provider=...)`` to a Runner run inside a workflow (or
    let :func:`duro.openai_agents.run` do it). It wraps the provider that makes the
    real calls (by default the SDK's own, ``MultiProvider``: OpenAI from the
    environment); that provider is only asked for a model inside the step, in the
    worker, never in workflow code.

    Args:
        provider: The provider of the real models. ``None``: the SDK's default.
        retry: The model step's retry policy (default ``duro.RetryPolicy()``). Turn the
            SDK's own retries off (``ModelSettings.retry``): duro's are durable.
        timeout: Limit of one attempt of a model call (seconds or timedelta).
        budgeted: Check the run's budgets (``duro.Budget``) before each model call.
        provider_name: Kept as ``provider`` with each call's usage (helps pricing).

    Raises:
        InvalidArgumentError: ``provider`` is not an ``agents.ModelProvider``, or an
            option is invalid (as ``@duro.step`` refuses it).
    """

    def __init__(self, provider: ModelProvider | None = None, *,
                 retry: duro.RetryPolicy | None = None,
                 timeout: float | timedelta | None = None, budgeted: bool = False,
                 provider_name: str | None = None) -> None:
        if provider is not None and not isinstance(provider, ModelProvider):
            raise InvalidArgumentError(f"provider must be an agents.ModelProvider, "
                                       f"not {provider!r}")
        if isinstance(provider, DurableModelProvider):
            raise InvalidArgumentError("provider is already a DurableModelProvider")
        if provider_name is not None and (not isinstance(provider_name, str)
                                          or not provider_name):
            raise InvalidArgumentError(f"provider_name must be a non-empty string, "
                                       f"not {provider_name!r}")
        check_retry(retry)
        self.provider = provider if provider is not None else MultiProvider()
        self.provider_name = provider_name
        self.step = _model_step(retry, timeout, budgeted)

    def get_model(self, model_name: str | None) -> Model:
        """A :class:`DurableModel` for ``model_name`` (no real model is made here)."""
        return DurableModel(model_name, provider=self)

    def wrap(self, model: Model) -> Model:
        """``model`` (an instance set on an agent or a RunConfig) made durable."""
        if isinstance(model, DurableModel):
            return model
        return DurableModel(getattr(model, "model", None), provider=self, model=model)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.provider.aclose()


_steps: dict[tuple[Any, ...], Step[..., Any]] = {}


def _model_step(retry: duro.RetryPolicy | None, timeout: float | timedelta | None,
                budgeted: bool) -> Step[..., Any]:
    """The model step for these options, made once: a provider made for each run (a
    ``RunConfig()`` in the workflow names a new one each time) shares it."""
    key = (retry, check_seconds(timeout, "timeout"), budgeted)
    if key not in _steps:
        _steps[key] = Step(_call_model, name=MODEL_STEP, retry=retry, timeout=timeout,
                           budgeted=budgeted)
    return _steps[key]


_default: list[DurableModelProvider] = []


def default_provider() -> DurableModelProvider:
    """The process's one durable wrapper of the SDK's default provider: the provider
    makes an OpenAI client (a connection pool) on first use, so it is shared by the runs
    that name no provider rather than made again for each."""
    if not _default:
        _default.append(DurableModelProvider())
    return _default[0]


# The durable wrapper made for a provider given to a run (weakly: it lives as long as
# the provider): a run's config names the same provider each time, and a wrapper made
# again would build its model Step again on every run.
_wrappers: weakref.WeakKeyDictionary[ModelProvider, DurableModelProvider] = (
    weakref.WeakKeyDictionary())


def durable_provider(given: ModelProvider | None) -> DurableModelProvider:
    """``given`` when it is durable, else its one durable wrapper (``None``: the
    process's default)."""
    if given is None:
        return default_provider()
    if isinstance(given, DurableModelProvider):
        return given
    wrapper = _wrappers.get(given)
    if wrapper is None:
        wrapper = _wrappers[given] = DurableModelProvider(given)
    return wrapper


class DurableModel(Model):
    """A model whose calls are duro steps (made by :class:`DurableModelProvider`).

    Inside a workflow, each call is the step ``duro.openai_agents.model``: run once,
    recorded, replayed from the history. Outside a workflow it calls the real model
    directly (as any step does outside a workflow).
    """

    def __init__(self, model_name: str | None, *, provider: DurableModelProvider,
                 model: Model | None = None) -> None:
        self.model_name = model_name
        self._provider = provider
        self._model = model

    def real_model(self) -> Model:
        """The model that makes the calls (asked of the wrapped provider each time)."""
        if self._model is not None:
            return self._model
        return self._provider.provider.get_model(self.model_name)

    async def get_response(
        self, system_instructions: str | None, input: str | list[TResponseInputItem],
        model_settings: ModelSettings, tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None, handoffs: list[Handoff],
        tracing: ModelTracing, *, previous_response_id: str | None,
        conversation_id: str | None, prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        """One model call, as a step: its response from the history when recorded."""
        request = _Request((system_instructions, input, model_settings, tools, output_schema,
                            handoffs, tracing), previous_response_id, conversation_id, prompt)
        data = await self._provider.step(self, request, False)
        return _response_from_json(data)

    async def stream_response(  # an async generator: yields the completed response
        self, system_instructions: str | None, input: str | list[TResponseInputItem],
        model_settings: ModelSettings, tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None, handoffs: list[Handoff],
        tracing: ModelTracing, *, previous_response_id: str | None,
        conversation_id: str | None, prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        """One streamed model call, as a step: the text deltas go to the run's stream
        (``duro.stream``) as they come; the Runner gets the completed response."""
        request = _Request((system_instructions, input, model_settings, tools, output_schema,
                            handoffs, tracing), previous_response_id, conversation_id, prompt)
        data = await self._provider.step(self, request, True)
        yield ResponseCompletedEvent(type="response.completed", sequence_number=0,
                                     response=Response.model_validate(data))

    async def close(self) -> None:
        """Close the real model when it was given as an instance."""
        if self._model is not None:
            await self._model.close()


async def _call_model(model: DurableModel, request: _Request, streamed: bool
                      ) -> dict[str, Any]:
    """The step: the real call, its usage recorded, its response as JSON."""
    real = model.real_model()
    response_id: str | None
    name = model.model_name or str(getattr(real, "model", "") or type(real).__name__)
    if streamed:
        response = await _streamed(real, request)
        usage, response_id = _usage_of_response(response), response.id
        data = response.model_dump(mode="json", exclude_unset=True)
    else:
        reply = await real.get_response(*request.args, **request.kwargs())
        usage, response_id = reply.usage, reply.response_id
        data = _response_to_json(reply)
    details_in, details_out = usage.input_tokens_details, usage.output_tokens_details
    record_model_call(model=name, input_tokens=usage.input_tokens,
                      output_tokens=usage.output_tokens,
                      cached_tokens=details_in.cached_tokens,
                      cache_write_tokens=getattr(details_in, "cache_write_tokens", 0),
                      reasoning_tokens=details_out.reasoning_tokens,
                      provider=model._provider.provider_name, request_id=response_id)
    return data


async def _streamed(real: Model, request: _Request) -> Response:
    args = list(request.args)
    settings: ModelSettings = args[2]
    if settings.include_usage is None:
        # A streamed Chat Completions call reports its usage only when asked: ask, so
        # the usage is recorded as for a plain call (the Responses API always does).
        args[2] = dataclasses.replace(settings, include_usage=True)
    completed: Response | None = None
    async for event in real.stream_response(*args, **request.kwargs()):
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            duro.stream(event.delta)  # type: ignore[union-attr]
        elif kind == "response.completed":
            completed = event.response  # type: ignore[union-attr]
        elif kind in ("response.failed", "response.incomplete", "error"):
            raise RuntimeError(f"the model's stream ended with {kind}: "
                               f"{getattr(event, 'response', event)!r}")
    if completed is None:
        raise RuntimeError("the model's stream ended without response.completed")
    return completed


def _usage_of_response(response: Response) -> Usage:
    u = response.usage
    if u is None:
        return Usage(requests=1)
    return deserialize_usage({
        "requests": 1, "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "input_tokens_details": u.input_tokens_details.model_dump(),
        "output_tokens_details": u.output_tokens_details.model_dump()})


def _response_to_json(reply: ModelResponse) -> dict[str, Any]:
    # exclude_unset: the item read back has the same fields set as the one the model
    # made, so what the Runner sends on (model_dump(exclude_unset=True)) is the same.
    output = [item.model_dump(mode="json", exclude_unset=True)
              if hasattr(item, "model_dump") else item for item in reply.output]
    return {"output": output, "usage": serialize_usage(reply.usage),
            "response_id": reply.response_id, "request_id": reply.request_id}


def _response_from_json(data: dict[str, Any]) -> ModelResponse:
    return ModelResponse(output=[_output_item(item) for item in data["output"]],
                         usage=deserialize_usage(data.get("usage") or {}),
                         response_id=data.get("response_id"),
                         request_id=data.get("request_id"))


def _output_item(item: Any) -> Any:
    try:
        return _OUTPUT_ITEM.validate_python(item)
    except ValidationError:  # a kind this SDK's union does not know: kept as data
        return item
