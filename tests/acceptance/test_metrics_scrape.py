"""``/metrics`` of a real ``duro serve --metrics --worker`` and of ``duro worker
--metrics-port`` (issue 18, item 2): scraped over HTTP, parsed with prometheus_client's
parser, the counters matching what the test did; off without the flag; refused input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import duro
from tests.acceptance.serving import APPS, DURO_SRC, problem, serve_http
from tests.conftest import run

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import metrics_app

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def _scrape_until(get: object, name: str, want: float, **labels: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        response = get()  # type: ignore[operator]
        assert response.status_code == 200, response.text
        text = str(response.text)
        if _value(text, name, **labels) >= want or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_serve_metrics(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/duro.db"
    with serve_http(db, "metrics_app", args=["--metrics"]) as (http, _):
        for i in range(2):
            assert http.post("/v1/runs", json={"workflow": "metrics_app.kid", "args": [i],
                                               "id": f"kid-{i}"}).status_code == 202
        for i in range(2):
            assert http.get(f"/v1/runs/kid-{i}/result", params={"wait": 20}).json()[
                "status"] == "completed"
        text = _scrape_until(lambda: http.get("/metrics"), "duro_runs_closed_total", 2,
                             workflow="metrics_app.kid", status="completed")
        assert http.get("/metrics").headers["content-type"].startswith("text/plain")
    assert _value(text, "duro_runs_started_total", workflow="metrics_app.kid") == 2
    assert _value(text, "duro_client_calls_total", call="start") == 2
    assert _value(text, "duro_step_attempts_total", workflow="metrics_app.kid",
                  step="metrics_app.quick", outcome="completed") == 2
    assert _value(text, "duro_queue_depth", queue="default") == 0
    assert _value(text, "duro_store_commits") > 0

    with serve_http(db, "metrics_app", worker=False) as (http, _):
        problem(http.get("/metrics"), 404, "not_enabled")


def test_worker_metrics_port(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/duro.db"
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", db, "worker", "metrics_app",
         "--metrics-port", "0"], env=env, cwd=APPS, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
        assert found, line + proc.stdout.read()
        async def start() -> None:
            async with duro.Client(db) as client:
                await client.start(metrics_app.kid, 3, id="w-kid")

        run(start())
        with httpx.Client(timeout=10) as http:
            text = _scrape_until(lambda: http.get(found.group(1)),
                                 "duro_runs_closed_total", 1, workflow="metrics_app.kid",
                                 status="completed")
        assert _value(text, "duro_step_attempts_total", workflow="metrics_app.kid",
                      step="metrics_app.quick", outcome="completed") == 1
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    bad = subprocess.run([sys.executable, "-m", "duro", "--db", db, "worker", "metrics_app",
                          "--metrics-port", "99999"], env=env, cwd=APPS,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "a port is 0 to 65535" in bad.stderr
