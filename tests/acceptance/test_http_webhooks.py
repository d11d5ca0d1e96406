"""Webhooks through a real ``duro serve``: a provider's own JSON, signed with HMAC
(GitHub's X-Hub-Signature-256 form, its delivery id in X-GitHub-Delivery), pointed at
``/v1/signal-with-start`` directly; unsigned or badly signed requests are 401
``invalid_signature`` and store nothing; a redelivery records no second signal. Both
stores."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import orjson

import duro
from duro._history import EventKind, SignalMeta
from tests.acceptance.serving import APPS, DURO_SRC, serve
from tests.conftest import run

SECRET = "whsec-for-the-test-only"
QUERY = {"payload": "body", "workflow": "hooks_app.collect", "id": "repo-1",
         "signal": "event", "args": None}


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def _store_view(url: str, workflow_id: str) -> tuple[int, Counter[str | None]]:
    """Runs of the workflow id, and the delivery ids of the signals they recorded."""
    ids: Counter[str | None] = Counter()
    async with duro.Client(url) as client:
        runs = [r for r in await client.store.list_runs(id_prefix=workflow_id)
                if r.workflow_id == workflow_id]
        for record in runs:
            for event in await client.store.load_history(record.run_id):
                if event.kind == EventKind.SIGNAL_RECEIVED:
                    ids[SignalMeta.decode(event.meta).id] += 1
    return len(runs), ids


def test_a_signed_provider_delivery_pointed_at_signal_with_start(any_db_url: str) -> None:
    with serve(any_db_url, "hooks_app", "--worker",
               "--webhook-secret", "signal-with-start=HOOK_SECRET",
               "--webhook-header", "X-Hub-Signature-256",
               "--webhook-id-header", "X-GitHub-Delivery",
               env={"HOOK_SECRET": SECRET}) as served, \
            httpx.Client(base_url=served.url, timeout=30) as http:
        assert "signed webhooks: signal-with-start" in served.ready_line
        assert SECRET not in served.ready_line
        url = "/v1/signal-with-start?" + "&".join(
            f"{k}={v}" for k, v in QUERY.items() if v is not None) + "&args=[2]"
        body = orjson.dumps({"action": "opened", "number": 1})

        def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
            return http.post(url, content=content, headers=headers)

        # Refused before anything is read or stored: no signature, a wrong one, the
        # right one for another body, a signature with another secret.
        for headers in [{}, {"X-Hub-Signature-256": "sha256=00"},
                        _signed(b"{}"), _signed(body, "guess")]:
            refused = post(body, {**headers, "X-GitHub-Delivery": "d-1"})
            assert refused.status_code == 401, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "invalid_signature"
            assert SECRET not in refused.text
        assert run(_store_view(any_db_url, "repo-1")) == (0, Counter())

        # A query string's args are the fields' (a list, as JSON in the body would be):
        # the string "[2]" is refused like any mistyped field.
        assert post(body, {**_signed(body), "X-GitHub-Delivery": "d-1"}).status_code == 400
        url = url.replace("&args=[2]", "")

        # Signed: the provider's JSON is the signal's payload; the delivery, sent three
        # times (a provider retrying), is one signal.
        for _ in range(3):
            ok = post(body, {**_signed(body), "X-GitHub-Delivery": "d-1"})
            assert ok.status_code == 202, ok.text
            assert ok.json()["workflow_id"] == "repo-1"
        second = orjson.dumps({"action": "closed", "number": 1})
        assert post(second, {**_signed(second), "X-GitHub-Delivery": "d-2"}).status_code == 202
        # The routes no secret guards are as before (the Duro-Signal-Id header there).
        assert http.post("/v1/runs/repo-1/signals/event", json={"payload": "manual"},
                         headers={"Duro-Signal-Id": "m-1"}).status_code == 202
        done = http.get("/v1/runs/repo-1/result", params={"wait": "20"})
        assert done.status_code == 200, done.text
        assert done.json()["result"] == [orjson.loads(body), orjson.loads(second), "manual"]
        count, ids = run(_store_view(any_db_url, "repo-1"))
        assert count == 1 and ids == {"d-1": 1, "d-2": 1, "m-1": 1}


def test_delivery_ids_in_the_duro_envelope(any_db_url: str) -> None:
    """With duro's own body (no signature asked), the delivery id is its signal_id field;
    after the run ended a redelivery is still a 202, a new delivery a 404."""
    with serve(any_db_url, "hooks_app", "--worker") as served, \
            httpx.Client(base_url=served.url, timeout=30) as http:
        for _ in range(2):
            sent = http.post("/v1/signal-with-start", json={
                "workflow": "hooks_app.collect", "id": "env-1", "args": [2],
                "signal": "event", "payload": {"n": 1}, "signal_id": "e-1"})
            assert sent.status_code == 202, sent.text
        assert http.post("/v1/runs/env-1/signals/event", json={"payload": {"n": 2},
                                                              "signal_id": "e-2"}
                         ).status_code == 202
        done = http.get("/v1/runs/env-1/result", params={"wait": "20"})
        assert done.status_code == 200 and done.json()["result"] == [{"n": 1}, {"n": 2}]
        # The run ended: a redelivery is still a success; a new delivery is a 404.
        again = http.post("/v1/runs/env-1/signals/event", json={"signal_id": "e-2"})
        assert again.status_code == 202, again.text
        assert http.post("/v1/runs/env-1/signals/event",
                         json={"signal_id": "e-3"}).status_code == 404
        bad = http.post("/v1/runs/env-1/signals/event", json={"signal_id": "a\nb"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
        assert http.post("/v1/runs/env-1/signals/event?payload=raw",
                         json={}).json()["code"] == "invalid_argument"


def test_serve_reads_webhook_secrets_from_the_environment_only(tmp_path: Any) -> None:
    env = {"PYTHONPATH": str(DURO_SRC), "PATH": "/usr/bin:/bin"}
    cases = [
        (["--webhook-secret", "signal=NOT_SET"], "NOT_SET is not set"),
        (["--webhook-secret", "nowhere=HOOK"], "ROUTE one of start, signal-with-start"),
        (["--webhook-secret", "signal"], "expected ROUTE=ENVVAR"),
        (["--webhook-secret", "signal=HOOK", "--webhook-header", "X Sig"],
         "not an HTTP header name"),
    ]
    for extra, said in cases:
        done = subprocess.run([sys.executable, "-m", "duro", "--db", f"{tmp_path}/x.db",
                               "serve", *extra, "--port", "0"], env={**env, "HOOK": "s3"},
                              cwd=APPS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (extra, done.stderr)
        assert said in done.stderr, (extra, done.stderr)
        assert "s3" not in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was opened
