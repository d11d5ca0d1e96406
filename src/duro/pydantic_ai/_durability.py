"""``DuroDurability``: the pydantic-ai durability capability whose engine is duro.

It fills the role pydantic-ai's ``durable_exec`` package defines for a durable engine
(the role of ``TemporalDurability``, ``DBOSDurability``, ``PrefectDurability``): the
agent's run is workflow code, and each model request (plain or streamed), tool call,
MCP discovery and MCP call is a duro step (``_backend.py``). Workflow-side values that
would differ on replay come from duro's replay-safe sources (``duro.uuid4``,
``duro.now``, ``duro.sleep``). On top of the interface: each model request's usage goes
to ``duro.record_usage``, streamed model output to ``duro.stream``, and tool calls that
need a human's approval to ``duro.approval`` (``_approvals.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.agent.abstract import AbstractAgent
from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    DurableOperationBackend,
    RoleBasedOperationConfig,
)
from pydantic_ai.models import Model
from pydantic_ai.tools import AgentDepsT, DeferredToolRequests, DeferredToolResults, RunContext

import duro
from duro._checks import check_choice, check_seconds
from duro.errors import InvalidArgumentError
from duro.pydantic_ai._approvals import ask_approvals
from duro.pydantic_ai._backend import DuroOperationBackend
from duro.pydantic_ai._config import StepConfig
from duro.pydantic_ai._stream import StreamMode, stream_handler
from duro.workflow import in_workflow

__all__ = ["DuroDurability"]

_STREAM_MODES: tuple[str | None, ...] = ("text", "events", None)


@dataclass(init=False, kw_only=True)
class DuroDurability(BaseDurabilityCapability[AgentDepsT]):
    """Makes a pydantic-ai agent durable on duro: attach it, and run the agent in a
    ``@duro.workflow``.

    ```python
    agent = Agent(model, name="support", tools=[...], capabilities=[DuroDurability()])

    @duro.workflow
    async def support(question: str) -> str:
        return (await agent.run(question)).output
    ```

    Inside a workflow, every model request and tool call is a duro step, recorded once:
    after a crash the run resumes and completed calls come from the history. Outside a
    workflow the capability does nothing and the agent runs as usual.
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="duro",
        durable_unit_noun="step",
        durable_unit_plural="steps",
        durable_container_noun="workflow",
        # duro's history stores JSON: results are reduced to JSON inside the step, so a
        # value that cannot be stored fails the attempt, and rebuilt typed on replay.
        codec=JSON_CODEC,
        # Toolsets given at run time were not seen when the steps were named.
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        # Each MCP step opens its own session, inside the step. Not "enter-in-durable-unit"
        # (one session per run, entered by the first step): the run exits that session from
        # workflow code, on the workflow's deterministic loop, while the step entered it on
        # the worker's loop, and the MCP client's tasks cannot be awaited across loops.
        toolset_lifecycles={"function": "enter-always", "mcp": "enter-outside-durable",
                            "dynamic": "enter-never"},
        journal_discovery=True,
        # duro numbers operations as the workflow issues them, on a deterministic loop:
        # parallel tool calls are issued, and replayed, in the same order.
        sequential_tools_in_durable_context=False,
        tool_config_key="duro",
    )

    def __init__(
        self,
        *,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        name: str | None = None,
        model_step: StepConfig | None = None,
        tool_step: StepConfig | None = None,
        mcp_step: StepConfig | None = None,
        stream: Literal["text", "events"] | None = "text",
        approvals: bool = True,
        approval_timeout: float | timedelta | None = None,
    ) -> None:
        """Create the capability (the agent's model, name and toolsets are found when
        it is attached).

        Args:
            models: Other models the run may switch to, by id (pydantic-ai's rule: a
                model instance must be registered to be used in a durable run).
            event_stream_handler: pydantic-ai's event handler, run inside the steps.
            name: The agent's name in its steps' names (default: the agent's ``name``).
                Keep it stable: a replay matches steps by name.
            model_step: Options of the model-request steps. Default: budgeted (the
                run's ``duro.Budget`` is checked before each request), 3 attempts.
            tool_step: Options of the function-tool steps.
            mcp_step: Options of the MCP steps (discovery and calls).
            stream: What a streamed model request sends to the run's stream
                (``duro.stream``, read by ``handle.stream()``): ``"text"`` the text
                deltas, ``"events"`` every model stream event as JSON, None nothing
                (requests are then not streamed unless a handler asks for it).
            approvals: Answer tool calls that need approval (``requires_approval``,
                ``ApprovalRequired``) with a ``duro.approval`` each, named
                ``"<agent>.<tool>"``, its context the tool, its arguments and call id.
            approval_timeout: How long each approval waits (None: forever); a timed
                out approval denies the call.

        Raises:
            InvalidArgumentError: An option of the wrong type or value.
        """
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        for label, value in (("model_step", model_step), ("tool_step", tool_step),
                             ("mcp_step", mcp_step)):
            if value is not None and not isinstance(value, StepConfig):
                raise InvalidArgumentError(f"{label} must be a duro.pydantic_ai.StepConfig, "
                                           f"not {value!r}")
        check_choice(stream, "stream", _STREAM_MODES)
        if not isinstance(approvals, bool):
            raise InvalidArgumentError(f"approvals must be True or False, not {approvals!r}")
        self._approval_timeout = check_seconds(approval_timeout, "approval_timeout")
        self._model_step = model_step or StepConfig(budgeted=True)
        self._tool_step = tool_step or StepConfig()
        self._mcp_step = mcp_step or StepConfig()
        self._stream: StreamMode = stream
        self._approvals = approvals
        self._backend: DuroOperationBackend | None = None

    # --- the engine -----------------------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        """Whether this is workflow code of a duro run (not a step, not plain code)."""
        return in_workflow()

    def _bind_to_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> None:
        self._backend = None  # the bound copy names its steps after its own name
        super()._bind_to_agent(agent)

    def get_durable_operation_backend(self) -> DurableOperationBackend[StepConfig]:
        """The backend running each operation as a duro step (one per bound agent)."""
        if self._backend is None:
            config = RoleBasedOperationConfig(model=self._model_step, event=self._tool_step,
                                              capability=self._tool_step, tool=self._tool_step)
            self._backend = DuroOperationBackend(agent_name=self.name, config=config)
        return self._backend

    def _toolset_base_config(self, kind: Any) -> Any:
        return self._mcp_step if kind == "mcp" else self._tool_step

    # --- replay-safe values of workflow code -------------------------------------------

    def get_default_run_id(self) -> str | None:
        """A run id from the run's seeded PRNG in a workflow, so a replay gets the same."""
        return str(duro.uuid4()) if in_workflow() else None

    async def _get_default_run_id_for_inputs(self, get_inputs: Any) -> str | None:
        return self.get_default_run_id()

    async def get_run_start_time(self, run_id: str) -> datetime | None:
        """The workflow's time (its last event's), the same on replay."""
        return duro.now() if in_workflow() else None

    async def durable_sleep(self, seconds: float) -> None:
        """A durable timer: the wait survives restarts and is not waited again."""
        await duro.sleep(max(seconds, 0.0))

    # --- streaming -------------------------------------------------------------------

    @property
    def has_wrap_run_event_stream(self) -> bool:
        # Streaming to the run's stream needs the model requests streamed.
        return (self._stream is not None and in_workflow()) or super().has_wrap_run_event_stream

    def _model_stream_event_handler(self) -> EventStreamHandler[AgentDepsT] | None:
        return stream_handler(self._stream, super()._model_stream_event_handler())

    # --- approvals -------------------------------------------------------------------

    async def handle_deferred_tool_calls(
        self, ctx: RunContext[AgentDepsT], *, requests: DeferredToolRequests
    ) -> DeferredToolResults | None:
        """Ask a ``duro.approval`` for each call that needs one (in a workflow)."""
        if not (self._approvals and in_workflow() and requests.approvals):
            return None
        return await ask_approvals(self.name, requests, timeout=self._approval_timeout)
