"""A small local OpenAI-compatible chat server, for duro's examples and tests.

It stands in for an LLM provider (the one thing the examples cannot run offline): it
answers ``POST /v1/chat/completions`` deterministically, plain or streamed (``"stream":
true``: server-sent events, ``data: {...}`` chunks, the usage in a last chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``), counts tokens, and can
be told to fail. Standard library only; it listens on loopback.

Run it::

    python examples/local_llm.py --port 8808 [--token-delay 0.02]

and point an OpenAI client at it: ``openai.AsyncOpenAI(base_url="http://127.0.0.1:8808/v1",
api_key="local")``. From Python, ``serve(port=0)`` starts one in a thread.

**The model.** Words are tokens (split on white space). The prompt costs its words plus 3
per message; the reply costs its words. Given the conversation's last user message U:

- If the request offers ``tools`` and U names some of them, the model calls each named
  tool once, in the order U names them, one call per turn (``finish_reason:
  "tool_calls"``); then it answers. A call's arguments fill each string property of the
  tool's parameters with U's topic (the text after U's last colon, else all of U); a
  property whose name contains ``url`` takes instead the first ``http(s)://`` URL of the
  latest tool result, when there is one.
- Otherwise it answers ``"Reply to: U"``, or, once tools have answered since U, ``"Based
  on N tool results: ..."`` with the first sentence of each result. ``max_tokens`` cuts
  the answer (``finish_reason: "length"``).

**The control API** (JSON):

- ``GET /stats``: ``{"requests": N, "by_fingerprint": {fingerprint: count}, "log":
  [{"fingerprint", "status", "stream", "model", "idempotency_key", "at"}, ...]}`` (``at``:
  when it arrived, Unix time). A request's
  fingerprint is a hash of its JSON body, so a request sent again counts twice; every
  request is counted, failed ones too.
- ``POST /fail`` ``{"count": N, "status": 429, "retry_after": 0.2}``: the next N chat
  requests fail with that status (any 4xx or 5xx), with a ``Retry-After`` header when
  ``retry_after`` is given; ``{"count": 1, "cut_after": 3}``: the next request's
  connection is cut after 3 streamed tokens (at once if not streamed), logged as
  status ``"cut"``.
- ``POST /config`` ``{"token_delay": 0.02}``: seconds between two streamed tokens;
  ``{"cached_tokens": 4, "reasoning_tokens": 2}``: what each usage reports as read from
  a prompt cache and spent reasoning (at most the prompt's and the completion's tokens).
- ``POST /reset``: forget the counts, the log and pending failures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LocalLLM", "LocalLLMServer", "serve"]

_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What the model answers to one request."""

    words: list[str] = field(default_factory=list)
    tool_call: dict[str, Any] | None = None
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class BadRequest(Exception):
    """A request the server refuses with 400, as a provider would."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """An injected failure: an HTTP error, or a connection cut after some tokens."""

    status: int = 500
    retry_after: float | None = None
    cut_after: int | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Failure:
        status, count = int(body.get("status", 500)), int(body.get("count", 1))
        after, cut = body.get("retry_after"), body.get("cut_after")
        if not 400 <= status <= 599 or count < 0 or (cut is not None and int(cut) < 0):
            raise BadRequest("status must be 4xx or 5xx, count and cut_after >= 0")
        return cls(status=status, retry_after=None if after is None else float(after),
                   cut_after=None if cut is None else int(cut))


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _checked(body: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    if (not isinstance(messages, list) or not messages
            or not all(isinstance(m, dict) and "role" in m for m in messages)):
        raise BadRequest("messages must be a non-empty array of messages with a role")
    return model, messages


def _tool_call(body: dict[str, Any], messages: list[dict[str, Any]], last_user: int,
               topic: str) -> dict[str, Any] | None:
    """The next tool the last user message names and no turn since has called."""
    user = _text(messages[last_user].get("content"))
    offered = {t["function"]["name"]: t["function"] for t in body.get("tools") or []
               if isinstance(t, dict) and isinstance(t.get("function"), dict)
               and isinstance(t["function"].get("name"), str)}
    named = sorted((user.find(name), name) for name in offered if name in user)
    called = [c.get("function", {}).get("name") for m in messages[last_user + 1:]
              for c in m.get("tool_calls") or [] if isinstance(c, dict)]
    results = [_text(m.get("content")) for m in messages[last_user + 1:]
               if m.get("role") == "tool"]
    urls = _URL.findall(results[-1]) if results else []
    for _, name in named:
        if name in called:
            continue
        props = (offered[name].get("parameters") or {}).get("properties") or {}
        args = {key: (urls[0] if "url" in key and urls else topic)
                for key, spec in props.items()
                if isinstance(spec, dict) and spec.get("type") == "string"}
        return {"name": name, "arguments": json.dumps(args)}
    return None


def answer(body: Any) -> Reply:
    """The deterministic reply to a chat request (see the module's docstring)."""
    _, messages = _checked(body)
    prompt = sum(len(_text(m.get("content")).split()) + 3 for m in messages)
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    last_user = users[-1] if users else len(messages) - 1
    user = _text(messages[last_user].get("content"))
    topic = user.rsplit(":", 1)[-1].strip() or user
    call = _tool_call(body, messages, last_user, topic) if body.get("tools") else None
    if call is not None:
        return Reply(tool_call=call, finish_reason="tool_calls", prompt_tokens=prompt,
                     completion_tokens=len(call["arguments"].split()) + 1)
    results = [_text(m.get("content")) for m in messages[last_user + 1:]
               if m.get("role") == "tool"]
    if results:
        firsts = [r.split(". ")[0].strip().rstrip(".") + "." for r in results]
        text = f"Based on {len(results)} tool results: " + " ".join(firsts)
    else:
        text = f"Reply to: {user}"
    words = text.split()
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    finish = "stop"
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    return Reply(words=words, finish_reason=finish, prompt_tokens=prompt,
                 completion_tokens=len(words))


def fingerprint(raw: bytes) -> str:
    """A request's fingerprint: a hash of its JSON body (keys sorted)."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = raw.decode(errors="replace")
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class LocalLLM:
    """The server's state: counts, log, pending failures, streaming delay."""

    def __init__(self, *, token_delay: float = 0.0) -> None:
        self.token_delay = token_delay
        # What the usage reports as read from a prompt cache and spent reasoning (at
        # most the prompt's and the completion's tokens): 0 unless configured.
        self.cached_tokens = self.reasoning_tokens = 0
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.failures: deque[Failure] = deque()

    def next_failure(self) -> Failure | None:
        with self.lock:
            return self.failures.popleft() if self.failures else None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.counts[entry["fingerprint"]] += 1
            self.log.append(entry)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": len(self.log), "by_fingerprint": dict(self.counts),
                    "log": list(self.log)}

    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if path == "/fail":
                self.failures.extend([Failure.of(body)] * int(body.get("count", 1)))
            elif path == "/config":
                self.token_delay = float(body.get("token_delay", self.token_delay))
                self.cached_tokens = int(body.get("cached_tokens", self.cached_tokens))
                self.reasoning_tokens = int(body.get("reasoning_tokens",
                                                     self.reasoning_tokens))
            elif path == "/reset":
                self.counts.clear()
                self.log.clear()
                self.failures.clear()
            else:
                raise LookupError(path)
        return {"ok": True}


def _chunk(rid: str, model: str, delta: dict[str, Any] | None,
           finish: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]
    out: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk",
                           "created": int(time.time()), "model": model, "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


def _usage(reply: Reply, llm: LocalLLM) -> dict[str, Any]:
    return {"prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": min(llm.cached_tokens, reply.prompt_tokens)},
            "completion_tokens_details": {
                "reasoning_tokens": min(llm.reasoning_tokens, reply.completion_tokens)}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalLLMServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stdout
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str,
               headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": None}},
                   headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._send(200, self.server.llm.stats())
        elif self.path in ("/healthz", "/v1/models"):
            self._send(200, {"object": "list", "data": [{"id": "local", "object": "model"}]})
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:
        raw = self._body()
        if self.path == "/v1/chat/completions":
            self._chat(raw)
            return
        try:
            self._send(200, self.server.llm.control(self.path, json.loads(raw or b"{}")))
        except LookupError:
            self._error(404, f"no route {self.path}", "not_found")
        except (BadRequest, ValueError, TypeError, AttributeError) as exc:
            self._error(400, str(exc), "invalid_request_error")

    def _chat(self, raw: bytes) -> None:
        llm = self.server.llm
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry = {"fingerprint": fingerprint(raw),
                 "stream": bool(isinstance(body, dict) and body.get("stream")),
                 "model": body.get("model") if isinstance(body, dict) else None,
                 "idempotency_key": self.headers.get("Idempotency-Key"),
                 "at": time.time()}
        failure = llm.next_failure()
        if failure is not None and failure.cut_after is None:
            status, after = failure.status, failure.retry_after
            llm.record({**entry, "status": status})
            headers = {} if after is None else {"Retry-After": f"{after:g}"}
            kind = {429: "rate_limit_exceeded"}.get(
                status, "server_error" if status >= 500 else "invalid_request_error")
            self._error(status, f"injected failure ({status})", kind, headers)
            return
        try:
            reply = answer(body)
        except BadRequest as exc:
            llm.record({**entry, "status": 400})
            self._error(400, str(exc), "invalid_request_error")
            return
        cut = None if failure is None else failure.cut_after
        llm.record({**entry, "status": 200 if cut is None else "cut"})
        rid = f"chatcmpl-{entry['fingerprint']}"  # deterministic, as the reply is
        if entry["stream"]:
            self._stream(rid, body, reply, cut)
        elif cut is not None:
            self.close_connection = True  # hung up before answering
        else:
            self._send(200, self._completion(rid, body["model"], reply,
                                             _usage(reply, self.server.llm)))

    @staticmethod
    def _completion(rid: str, model: str, reply: Reply, usage: dict[str, Any]
                    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(reply.words)}
        if reply.tool_call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{rid}", "type": "function", "function": reply.tool_call}]}
        return {"id": rid, "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": message,
                                             "finish_reason": reply.finish_reason}],
                "usage": usage}

    def _stream(self, rid: str, body: dict[str, Any], reply: Reply,
                cut: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body["model"]
        options = body.get("stream_options") or {}
        try:
            self._event(_chunk(rid, model, {"role": "assistant", "content": ""}))
            for i, delta in enumerate(self._deltas(rid, reply)):
                if i == cut:  # an injected failure: hang up mid-stream
                    self.close_connection = True
                    return
                if self.server.llm.token_delay > 0:
                    time.sleep(self.server.llm.token_delay)
                self._event(_chunk(rid, model, delta))
            self._event(_chunk(rid, model, {}, reply.finish_reason))
            if isinstance(options, dict) and options.get("include_usage"):
                self._event(_chunk(rid, model, None, usage=_usage(reply, self.server.llm)))
            self._write(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a killed worker)

    @staticmethod
    def _deltas(rid: str, reply: Reply) -> list[dict[str, Any]]:
        if reply.tool_call is not None:
            args = reply.tool_call["arguments"]
            half = len(args) // 2
            head = {"index": 0, "id": f"call_{rid}", "type": "function",
                    "function": {"name": reply.tool_call["name"], "arguments": args[:half]}}
            return [{"tool_calls": [head]},
                    {"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]}]
        return [{"content": word if i == 0 else " " + word}
                for i, word in enumerate(reply.words)]

    def _event(self, payload: dict[str, Any]) -> None:
        self._write(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class LocalLLMServer(ThreadingHTTPServer):
    """The HTTP server; ``llm`` is its state, ``url`` its OpenAI base URL."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 token_delay: float = 0.0) -> None:
        super().__init__((host, port), _Handler)
        self.llm = LocalLLM(token_delay=token_delay)

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (``.../v1``)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> LocalLLMServer:
        """Serve in a daemon thread; returns self."""
        threading.Thread(target=self.serve_forever, daemon=True,
                         name="local-llm").start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()


def serve(port: int = 0, *, host: str = "127.0.0.1",
          token_delay: float = 0.0) -> LocalLLMServer:
    """Start a local model server in a thread (``port=0``: a free one)."""
    return LocalLLMServer(host, port, token_delay=token_delay).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8808, help="0: a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token-delay", type=float, default=0.0,
                        help="seconds between two streamed tokens")
    args = parser.parse_args(argv)
    server = LocalLLMServer(args.host, args.port, token_delay=args.token_delay)
    print(f"local_llm ready: {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
