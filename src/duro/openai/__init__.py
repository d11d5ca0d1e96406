"""Chat completions on any OpenAI-compatible server, from inside a step
(``pip install 'duro[openai]'``)::

    import openai
    import duro
    from duro.openai import chat

    llm = openai.AsyncOpenAI()  # or base_url="http://127.0.0.1:8808/v1"

    @duro.step(retry=duro.RetryPolicy(max_attempts=5))
    async def ask(question: str) -> str:
        reply = await chat(llm, model="gpt-4o-mini", stream=True,
                           messages=[{"role": "user", "content": question}])
        return reply.content or ""

:func:`chat` retries through the step (429 and 5xx honour ``Retry-After``), records
the usage with ``duro.record_usage``, and sends the step's idempotency key. See
docs/agents.md, "The OpenAI-compatible chat helper".
"""

try:
    import openai as _openai  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError("duro.openai needs the openai package: "
                      "pip install 'duro[openai]'") from exc

from duro.openai._chat import chat
from duro.openai._errors import (
    ChatArgumentError,
    ModelBusyError,
    ModelRequestError,
    ModelUnavailableError,
)
from duro.openai._reply import ChatReply, ToolCall

__all__ = ["ChatArgumentError", "ChatReply", "ModelBusyError", "ModelRequestError",
           "ModelUnavailableError", "ToolCall", "chat"]
