"""pydantic-ai agents made durable by duro (``pip install 'duro[pydantic-ai]'``)::

    from pydantic_ai import Agent
    import duro
    from duro.pydantic_ai import DuroDurability

    agent = Agent("openai:gpt-4o", name="support", capabilities=[DuroDurability()])

    @duro.workflow
    async def support(question: str) -> str:
        return (await agent.run(question)).output

``DuroDurability`` is duro's backend for pydantic-ai's durable-execution interface
(``pydantic_ai.durable_exec``): model requests, tool calls and MCP calls run as duro
steps; usage flows into ``duro.record_usage``, streamed text into ``duro.stream``, and
tools that need approval into ``duro.approval``. See docs/integrations/pydantic-ai.md.
"""

try:
    import pydantic_ai as _pydantic_ai  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("duro.pydantic_ai needs pydantic-ai: "
                      "pip install 'duro[pydantic-ai]'") from exc

from duro.pydantic_ai._backend import DuroOperationBackend
from duro.pydantic_ai._config import StepConfig
from duro.pydantic_ai._durability import DuroDurability

__all__ = ["DuroDurability", "DuroOperationBackend", "StepConfig"]
