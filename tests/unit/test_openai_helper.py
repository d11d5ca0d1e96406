"""``duro.openai`` without a server: its public names, how a provider's Retry-After is
read, and how its errors sit in the retry rules."""

from __future__ import annotations

import email.utils
import subprocess
import sys
import time

import pytest

import duro
import duro.openai
from duro.openai import (
    ChatArgumentError,
    ChatReply,
    ModelBusyError,
    ModelRequestError,
    ModelUnavailableError,
    ToolCall,
)
from duro.openai._errors import retry_after_of


def test_public_names_pinned() -> None:
    assert duro.openai.__all__ == ["ChatArgumentError", "ChatReply", "ModelBusyError",
                                   "ModelRequestError", "ModelUnavailableError",
                                   "ToolCall", "chat"]


def test_import_duro_does_not_import_openai() -> None:
    # The helper is an extra: duro itself must not need (or pay for) the openai package.
    code = "import sys, duro; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "250"}, 0.25),
    ({"Retry-After-Ms": "250", "Retry-After": "9"}, 0.25),
    ({"Retry-After": "0.2"}, 0.2),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "-1"}, 0.0),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_read_from_headers(headers: dict[str, str],
                                       seconds: float | None) -> None:
    assert retry_after_of(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = retry_after_of({"Retry-After": later})
    assert delay is not None and 28 <= delay <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after_of({"Retry-After": past}) == 0.0


def test_errors_meet_the_step_retry_rules() -> None:
    policy = duro.RetryPolicy()
    busy = ModelBusyError("429", retry_after=0.5, status=429)
    assert isinstance(busy, duro.RetryAfterError) and busy.retry_after == 0.5
    assert policy.is_retryable(busy)
    assert policy.is_retryable(ModelUnavailableError("lost"))
    assert not policy.is_retryable(ModelRequestError("400", status=400))
    refused = ChatArgumentError("model must be a non-empty string")
    assert isinstance(refused, duro.InvalidArgumentError) and isinstance(refused, ValueError)
    assert not policy.is_retryable(refused)


def test_reply_as_the_next_message() -> None:
    call = ToolCall(id="call_1", name="search", arguments='{"query": "x"}')
    reply = ChatReply(content=None, tool_calls=(call,), finish_reason="tool_calls")
    assert reply.message() == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "search", "arguments": '{"query": "x"}'}}]}
    assert ChatReply(content="hi").message() == {"role": "assistant", "content": "hi"}
    assert call.args() == {"query": "x"}
    with pytest.raises(ValueError, match="not a JSON object"):
        ToolCall(id="c", name="f", arguments="[1]").args()
