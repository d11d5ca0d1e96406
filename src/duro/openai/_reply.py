"""What :func:`duro.openai.chat` returns: plain data, so a step can return it as it is
(its history keeps it, replay hands it back)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatReply", "ToolCall", "merge_tool_deltas"]


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """A function the model asks the caller to run."""

    id: str
    name: str
    arguments: str
    """The arguments as the model wrote them: JSON text, not checked."""

    def args(self) -> dict[str, Any]:
        """The arguments decoded.

        Raises:
            ValueError: They are not a JSON object (models do write broken JSON).
        """
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool call {self.name!r}: arguments are not a JSON object: "
                             f"{self.arguments!r}")
        return value

    def to_message(self) -> dict[str, Any]:
        """The call as the OpenAI API writes it in an assistant message."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True, kw_only=True)
class ChatReply:
    """One chat completion's reply (the first choice) and what it cost in tokens."""

    content: str | None
    """The text; None when the model only called tools."""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    """``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``..."""
    model: str = ""
    """The model that answered, as the provider names it."""
    id: str | None = None
    """The provider's id of the completion."""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    """What the provider said the call cost (US dollars), when it says (OpenRouter)."""
    usage_reported: bool = False
    """Whether the provider reported usage (recorded with ``duro.record_usage``)."""

    def message(self) -> dict[str, Any]:
        """The reply as an assistant message, to append to the conversation."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return out

    @classmethod
    def of(cls, *, content: str | None, tool_calls: tuple[ToolCall, ...],
           finish_reason: str | None, model: str, id: str | None, usage: Any) -> ChatReply:
        """A reply from the SDK's pieces (``usage``: its ``CompletionUsage`` or None)."""
        if usage is None:
            return cls(content=content, tool_calls=tool_calls, finish_reason=finish_reason,
                       model=model, id=id)
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        completion_details = getattr(usage, "completion_tokens_details", None)
        cost = (getattr(usage, "model_extra", None) or {}).get("cost")
        return cls(content=content, tool_calls=tool_calls, finish_reason=finish_reason,
                   model=model, id=id, input_tokens=_int(usage.prompt_tokens),
                   output_tokens=_int(usage.completion_tokens),
                   cached_tokens=_int(getattr(prompt_details, "cached_tokens", 0)),
                   reasoning_tokens=_int(getattr(completion_details, "reasoning_tokens", 0)),
                   cost=float(cost) if isinstance(cost, int | float)
                   and not isinstance(cost, bool) else None,
                   usage_reported=True)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def merge_tool_deltas(calls: dict[int, dict[str, str]], deltas: list[Any]) -> None:
    """Fold a streamed chunk's tool-call deltas into ``calls`` (by index): the id and
    name come once, the arguments in pieces."""
    for delta in deltas:
        call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = delta.id or call["id"]
        function = delta.function
        if function is not None:
            call["name"] = function.name or call["name"]
            call["arguments"] += function.arguments or ""
