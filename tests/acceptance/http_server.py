"""A real ``duro serve`` process on a free loopback port, for the HTTP tests."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import duro

APPS = Path(__file__).parent / "apps"
DURO_SRC = Path(duro.__file__).resolve().parents[1]
READY = re.compile(r"duro serve ready: http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def serve(db_url: str, *modules: str, worker: bool = True
          ) -> Iterator[tuple[httpx.Client, subprocess.Popen[str]]]:
    """``duro serve MODULES [--worker]`` on ``db_url``, and an HTTP client to it; the
    process is killed afterwards if it is still running."""
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", db_url, "serve", *modules,
         *(["--worker"] if worker else []), "--port", "0"],
        env=env, cwd=APPS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the ready line (or why it did not start)
    match = READY.search(line)
    if match is None:
        proc.kill()
        pytest.fail(f"duro serve did not start: {line}{proc.stdout.read()}")
    with httpx.Client(base_url=f"http://127.0.0.1:{match.group(1)}", timeout=30) as http:
        try:
            yield http, proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def problem(response: httpx.Response, status: int, code: str) -> str:
    """The detail of a problem response, once its status and code are checked."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    return str(body["detail"])
