"""Durable tools: each call of an agent's function tool is one duro step.

:func:`durable_agent` copies an agent (and the agents it hands off to) with every
``FunctionTool``'s ``on_invoke_tool`` replaced by a call to a step named
``duro.openai_agents.tool.<tool name>``, whose attempt runs the tool's own invoke in the
worker. Tools the provider runs (web and file search, code interpreter, hosted MCP,
image generation, tool search) are part of the model call, itself a step. Tools that
run locally without a function (computer, shell, apply_patch, custom tools) and MCP
servers would do their I/O in workflow code: they are refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from agents import (
    Agent,
    ApplyPatchTool,
    ComputerTool,
    CustomTool,
    FunctionTool,
    Handoff,
    LocalShellTool,
    Model,
    ShellTool,
    Tool,
)
from agents.tool_context import ToolContext

import duro
from duro._checks import check_seconds
from duro.errors import InvalidArgumentError
from duro.openai_agents._model import DurableModelProvider, check_retry, default_provider
from duro.step import Step

__all__ = ["TOOL_STEP_PREFIX", "durable_agent"]

TOOL_STEP_PREFIX = "duro.openai_agents.tool."
"""A tool call's step is named this prefix followed by the tool's name."""

_LOCAL_TOOLS = (ComputerTool, ApplyPatchTool, LocalShellTool, ShellTool, CustomTool)

_Invoke = Callable[[ToolContext[Any], str], Awaitable[Any]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options:
    retry: duro.RetryPolicy | None
    timeout: float | timedelta | None
    at_most_once: frozenset[str]
    models: DurableModelProvider


def durable_agent(agent: Agent[Any], *, retry: duro.RetryPolicy | None = None,
                  timeout: float | timedelta | None = None,
                  at_most_once: Iterable[str] = (),
                  model_provider: DurableModelProvider | None = None) -> Agent[Any]:
    """A copy of ``agent`` whose function tools run each call as a duro step.

    The agents it hands off to (directly, or through ``handoff(agent)``) are copied the
    same way, once each (cycles are fine). The original agent is not changed. A copy
    given again is returned as it is. The copy is made on each call (a clone: an agent
    changed since is copied as it is now); each function tool's durable version and
    its step are made once per tool and options (kept on the tool), so the runs of an
    agent share its tool steps.

    Args:
        agent: The agent.
        retry: Each tool step's retry policy (default ``duro.RetryPolicy()``). A tool made
            by ``@function_tool`` already turns its exceptions into a message for the
            model (its ``failure_error_function``): such a call completes, it is not
            retried.
        timeout: Limit of one attempt of a tool call.
        at_most_once: Names of tools whose calls must never run twice
            (``@duro.step(at_most_once=True)``): if the worker is lost during such a
            call, the call raises ``duro.StepOutcomeUnknownError`` in the workflow.
        model_provider: Wraps a model given to an agent as an instance
            (``Agent(model=SomeModel())``), so its calls are steps too (default: the
            process's ``DurableModelProvider()``). Models named by a string are
            resolved by the run's provider: give the Runner a
            :class:`DurableModelProvider`.

    Returns:
        The durable copy.

    Raises:
        InvalidArgumentError: ``agent`` is not an ``agents.Agent``; it (or an agent it
            hands off to) has MCP servers or a tool that runs locally without a
            function (computer, shell, local shell, apply_patch, custom); a name in
            ``at_most_once`` names no function tool; an option is invalid.
    """
    if not isinstance(agent, Agent):
        raise InvalidArgumentError(f"agent must be an agents.Agent, not {agent!r}")
    check_retry(retry)
    if isinstance(at_most_once, str):
        raise InvalidArgumentError("at_most_once takes tool names (a list), not a string")
    if model_provider is not None and not isinstance(model_provider, DurableModelProvider):
        raise InvalidArgumentError(f"model_provider must be a DurableModelProvider, "
                                   f"not {model_provider!r}")
    check_seconds(timeout, "timeout")  # before it keys the copies (a list is unhashable)
    options = _Options(retry=retry, timeout=timeout, at_most_once=frozenset(at_most_once),
                       models=model_provider or default_provider())
    # The copy itself is made anew (a cheap clone, so a changed agent -- instructions,
    # settings, an agent it hands off to -- is never served stale); what is costly to
    # make, each tool's step and the model's, is kept with the tool and the provider.
    copies: dict[int, Agent[Any]] = {}
    result = _copy(agent, options, copies)
    names = {tool.name for copy in copies.values() for tool in copy.tools
             if isinstance(tool, FunctionTool)}
    unknown = sorted(options.at_most_once - names)
    if unknown:
        raise InvalidArgumentError(f"at_most_once names no function tool: {unknown}")
    return result


def is_durable(agent: Agent[Any]) -> bool:
    """True for a copy made by :func:`durable_agent`."""
    return getattr(agent, "_duro_durable", False) is True


def _copy(agent: Agent[Any], options: _Options, copies: dict[int, Agent[Any]]
          ) -> Agent[Any]:
    if is_durable(agent):
        copies[id(agent)] = agent
        return agent
    done = copies.get(id(agent))
    if done is not None:
        return done
    if agent.mcp_servers:
        raise InvalidArgumentError(
            f"agent {agent.name!r} has MCP servers: their tools would be listed and "
            "called from workflow code (not supported yet; wrap the calls in function "
            "tools)")
    model = agent.model
    if isinstance(model, Model):
        model = options.models.wrap(model)
    copy = agent.clone(tools=[_tool(tool, agent, options) for tool in agent.tools],
                       model=model)
    copy._duro_durable = True  # a mark, read by is_durable
    copies[id(agent)] = copy
    # After the copy is known: a handoff back to an agent being copied finds it.
    copy.handoffs = [_handoff(h, options, copies) for h in agent.handoffs]
    return copy


def _tool(tool: Tool, agent: Agent[Any], options: _Options) -> Tool:
    if isinstance(tool, _LOCAL_TOOLS):
        raise InvalidArgumentError(
            f"agent {agent.name!r}: tool {getattr(tool, 'name', tool)!r} "
            f"({type(tool).__name__}) runs locally without a function tool: not supported "
            "by duro.openai_agents yet (wrap its work in a @function_tool)")
    if not isinstance(tool, FunctionTool):
        return tool  # a hosted tool: the provider runs it within the model call
    invoke = tool.on_invoke_tool
    key = (tool.name, invoke, options.retry, options.timeout,
           tool.name in options.at_most_once)
    made: dict[tuple[Any, ...], Any] = tool.__dict__.setdefault(_MADE, {})
    if key not in made:  # else the runs of an agent (each copies it anew) share the step
        step: Step[..., Any] = Step(_call_tool, name=TOOL_STEP_PREFIX + tool.name,
                                    retry=options.retry, timeout=options.timeout,
                                    at_most_once=tool.name in options.at_most_once)

        async def on_invoke_tool(ctx: ToolContext[Any], arguments: str) -> Any:
            return await step(invoke, ctx, arguments)

        made[key] = on_invoke_tool
    # The tool as it is now (its description, schema...), calling through the step.
    return dataclasses.replace(tool, on_invoke_tool=made[key])


# The durable call of a function tool (its step), per options, kept on the tool itself:
# it lives as long as the tool does (tools are unhashable dataclasses, so no weak
# mapping can key them). Each run of an agent copies it (durable_agent); a step made
# again would cost a signature inspection on every run.
_MADE = "_duro_durable_calls"


def _handoff(target: Agent[Any] | Handoff[Any, Any], options: _Options,
             copies: dict[int, Agent[Any]]) -> Agent[Any] | Handoff[Any, Any]:
    if isinstance(target, Agent):
        return _copy(target, options, copies)
    invoke = target.on_invoke_handoff

    async def on_invoke_handoff(ctx: Any, arguments: str) -> Any:
        # The agent a handoff returns is known only when it is taken: copied then.
        return _copy(await invoke(ctx, arguments), options, copies)

    return dataclasses.replace(target, on_invoke_handoff=on_invoke_handoff)


async def _call_tool(invoke: _Invoke, ctx: ToolContext[Any], arguments: str) -> Any:
    """The step: the tool's own invoke, in the worker. Its output is recorded as JSON
    (text, numbers, lists, objects); a replay hands the Runner the recorded value."""
    return await invoke(ctx, arguments)
