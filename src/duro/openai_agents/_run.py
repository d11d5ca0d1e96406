"""``duro.openai_agents.run``: a Runner run whose model and tool calls are steps."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from agents import (
    Agent,
    Model,
    ModelProvider,
    RunConfig,
    Runner,
    RunResult,
    RunState,
    ToolApprovalItem,
)
from agents.result import RunResultStreaming

from duro.errors import InvalidArgumentError
from duro.openai_agents._model import default_provider, durable_provider
from duro.openai_agents._tools import durable_agent
from duro.workflow._approvals import ask_approval, tool_approval_name

__all__ = ["run", "run_streamed", "run_with_approvals"]


async def run(agent: Agent[Any], input: Any, *,
              model_provider: ModelProvider | None = None,
              run_config: RunConfig | None = None, **kwargs: Any) -> RunResult:
    """``agents.Runner.run``, durable: call it from a ``@duro.workflow``.

    Each model call is a step (``duro.openai_agents.model``) and each function tool
    call a step (``duro.openai_agents.tool.<name>``): after a crash the run replays
    them from its history and goes on from the first call that was not recorded.

    Args:
        agent: The starting agent (made durable with :func:`durable_agent` unless it is
            already).
        input: The Runner's input (a string or input items).
        model_provider: The provider of the real models: a
            :class:`DurableModelProvider` is used as it is, any other
            ``agents.ModelProvider`` is wrapped in one; ``None``: the run config's
            provider, wrapped, or without a run config the SDK's default provider
            (one per process, shared by such runs).
        run_config: The Runner's config. Its provider is replaced as said above and
            the SDK's tracing is turned off (a replay would trace again; duro's
            OpenTelemetry tracing covers the steps).
        **kwargs: Passed to ``Runner.run`` (``context``, ``max_turns``, ``hooks``...).

    Returns:
        The Runner's result.

    Raises:
        InvalidArgumentError: A bad agent, provider or config (see
            :func:`durable_agent`), or a ``session`` (its store would be read and
            written from workflow code), before any call is made.
    """
    durable, config = _prepare(agent, model_provider, run_config, kwargs)
    return await Runner.run(durable, input, run_config=config, **kwargs)


def run_streamed(agent: Agent[Any], input: Any, *,
                 model_provider: ModelProvider | None = None,
                 run_config: RunConfig | None = None, **kwargs: Any) -> RunResultStreaming:
    """``agents.Runner.run_streamed``, durable (arguments as :func:`run`).

    Each model call streams: its text deltas go to the duro run's stream
    (``duro.stream``: read them with ``handle.stream()``) while the call runs; the
    Runner's own events carry each call's completed response, not its deltas.
    """
    durable, config = _prepare(agent, model_provider, run_config, kwargs)
    return Runner.run_streamed(durable, input, run_config=config, **kwargs)


def _prepare(agent: Agent[Any], model_provider: ModelProvider | None,
             run_config: RunConfig | None, kwargs: dict[str, Any]
             ) -> tuple[Agent[Any], RunConfig]:
    if kwargs.get("session") is not None:
        # A session reads and writes its store from workflow code; the run's history
        # already keeps the conversation.
        raise InvalidArgumentError("session= is not supported by duro.openai_agents: the "
                                   "run's history keeps the conversation (pass the "
                                   "earlier items as input)")
    if run_config is not None and not isinstance(run_config, RunConfig):
        raise InvalidArgumentError(f"run_config must be an agents.RunConfig, "
                                   f"not {run_config!r}")
    config = run_config or RunConfig()
    if model_provider is None and run_config is None:
        provider = default_provider()
    else:
        given = model_provider if model_provider is not None else config.model_provider
        provider = durable_provider(given)
    model = config.model
    if isinstance(model, Model):
        model = provider.wrap(model)
    durable = durable_agent(agent, model_provider=provider)
    return durable, dataclasses.replace(config, model_provider=provider, model=model,
                                        tracing_disabled=True)


async def run_with_approvals(agent: Agent[Any], input: Any, *,
                             timeout: float | timedelta | None = None,
                             model_provider: ModelProvider | None = None,
                             run_config: RunConfig | None = None,
                             **kwargs: Any) -> RunResult:
    """:func:`run`, with the SDK's tool approvals answered by duro approvals.

    When the run stops on tool calls that need approval (``needs_approval``: the SDK's
    ``interruptions``), each becomes ``await duro.approval("<agent>.<tool>", {"agent",
    "tool", "call_id", "arguments"}, timeout=timeout)``, decided from anywhere
    (``duro approve ID``, ``client.approvals``, the HTTP API), and the run goes on from
    its state with each call approved or rejected (a rejection, or a timeout, is sent to
    the model with the approver's comment). The decisions are in the run's history; a
    replay does not ask again.

    Args:
        agent: The starting agent.
        input: The Runner's input.
        timeout: How long each approval waits (None: for ever); no answer rejects.
        model_provider: As for :func:`run`.
        run_config: As for :func:`run`.
        **kwargs: Passed to ``Runner.run``.

    Returns:
        The Runner's result, with no interruption left.
    """
    durable, config = _prepare(agent, model_provider, run_config, kwargs)
    result = await Runner.run(durable, input, run_config=config, **kwargs)
    while result.interruptions:
        state = result.to_state()
        for item in result.interruptions:
            await _decide(state, item, timeout)
        result = await Runner.run(durable, state, run_config=config, **kwargs)
    return result


async def _decide(state: RunState[Any], item: ToolApprovalItem,
                  timeout: float | timedelta | None) -> None:
    context = {"agent": item.agent.name, "tool": item.tool_name,
               "call_id": item.call_id, "arguments": item.arguments}
    # Named "tool:<tool>" before the one convention of all integrations: a run recorded
    # then replays under its old name.
    decision = await ask_approval(tool_approval_name(item.agent.name, item.tool_name or "tool"),
                                  context, timeout=timeout, was=(f"tool:{item.tool_name}",))
    if decision.approved:
        state.approve(item)
        return
    why = "timed out" if decision.timed_out else f"rejected by {decision.by}"
    comment = f": {decision.comment}" if decision.comment else ""
    state.reject(item, rejection_message=f"The call was not approved ({why}{comment}).")
