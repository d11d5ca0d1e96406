"""The OpenAI Agents SDK on duro (``pip install 'duro[openai-agents]'``)::

    from agents import Agent, function_tool
    import duro
    from duro import openai_agents

    @function_tool
    async def weather(city: str) -> str: ...

    agent = Agent(name="assistant", tools=[weather], model="gpt-4o-mini")

    @duro.workflow
    async def ask(question: str) -> str:
        result = await openai_agents.run(agent, question)
        return str(result.final_output)

Each model call of the Runner is a step (``duro.openai_agents.model``, its usage
recorded with ``duro.record_usage``), each function tool call a step
(``duro.openai_agents.tool.<name>``): after a kill -9, the run replays them from its
history and calls nothing twice that was recorded. See docs/integrations/openai-agents.md.
"""

try:
    import agents as _agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("duro.openai_agents needs the openai-agents package: "
                      "pip install 'duro[openai-agents]'") from exc

from agents.tracing import get_trace_provider

from duro.openai_agents._model import MODEL_STEP, DurableModel, DurableModelProvider
from duro.openai_agents._run import run, run_streamed, run_with_approvals
from duro.openai_agents._tools import TOOL_STEP_PREFIX, durable_agent, is_durable

# The Runner enters a trace context on every run, even with the SDK's tracing off, and
# the SDK makes its global trace provider (with an HTTP client, whose import reads
# package metadata) on first use: made here, on import, so never first in workflow
# code, where duro's guard refuses file I/O.
get_trace_provider()

__all__ = ["MODEL_STEP", "TOOL_STEP_PREFIX", "DurableModel", "DurableModelProvider",
           "durable_agent", "is_durable", "run", "run_streamed", "run_with_approvals"]
