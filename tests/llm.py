"""The local OpenAI-compatible server (``examples/local_llm.py``) as a real process on a
free loopback port, for the tests of ``duro.openai``: the one stand-in allowed, for a
provider the tests cannot run."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "local_llm.py"
READY = re.compile(r"local_llm ready: (http://127\.0\.0\.1:\d+/v1)")

__all__ = ["LocalModel", "local_model"]


class LocalModel:
    """A running local model server: its OpenAI base URL and its control API."""

    def __init__(self, url: str, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.proc = proc
        self.control = httpx.Client(base_url=url.removesuffix("/v1"), timeout=10)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.control.get("/stats").raise_for_status().json()
        return stats

    def fail(self, count: int, status: int = 500, *, retry_after: float | None = None,
             cut_after: int | None = None) -> None:
        """Fail the next ``count`` requests with ``status``, or cut their connection
        after ``cut_after`` streamed tokens."""
        self.control.post("/fail", json={"count": count, "status": status,
                                         "retry_after": retry_after,
                                         "cut_after": cut_after}).raise_for_status()

    def configure(self, *, token_delay: float = 0.0, cached_tokens: int = 0,
                  reasoning_tokens: int = 0) -> None:
        self.control.post("/config", json={
            "token_delay": token_delay, "cached_tokens": cached_tokens,
            "reasoning_tokens": reasoning_tokens}).raise_for_status()

    def reset(self) -> None:
        self.control.post("/reset").raise_for_status()
        self.configure()


@contextlib.contextmanager
def local_model(*args: str) -> Iterator[LocalModel]:
    """Start ``python examples/local_llm.py --port 0 ARGS`` and wait for its ready line."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the ready line (or the process ends)
    match = READY.search(line)
    if match is None:
        proc.kill()
        pytest.fail(f"local_llm did not start: {line}{proc.stdout.read()}")
    model = LocalModel(match.group(1), proc)
    try:
        yield model
    finally:
        model.control.close()
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
