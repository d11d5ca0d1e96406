"""A client process that cannot import the workflows' code: `duro.Client` starts,
signals, updates, lists and reads runs that a worker process (which has the code)
runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duro

APPS = Path(__file__).parent / "apps"
DURO_SRC = Path(duro.__file__).resolve().parents[1]

CLIENT = textwrap.dedent('''
    import asyncio, json, sys
    import duro

    try:
        import order_app  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the client must not see the workflow code")

    async def main(url):
        async with duro.Client(url) as client:
            handle = await client.start("order_app.order", "apple", 2, id="order-1")
            total = await handle.update("add", "pear", 3, timeout=60)
            # Queries: answered by the worker process (this one has no code to replay).
            asked = await handle.query("total", timeout=60)
            try:
                await handle.query("nosuch", timeout=60)
            except duro.QueryError as exc:
                no_handler = str(exc)
            await handle.signal("approve", "ann")
            result = await handle.result(timeout=60)
            asked_after = await client.query("order-1", "total", timeout=60)  # by replay
            listed = [(r.workflow_id, r.workflow_name, r.status.value)
                      for r in await client.list(name="order_app.order")]
            kinds = [e.kind for e in await handle.history()]
            missing = await client.start("order_app.nope", id="typo")
            try:
                await missing.query("total", timeout=0.5)
            except duro.QueryTimeoutError as exc:
                unanswered = str(exc)
            print(json.dumps({"total": total, "result": result, "listed": listed,
                              "kinds": kinds, "typo": (await missing.status()).value,
                              "repr": repr(client), "asked": asked,
                              "asked_after": asked_after, "no_handler": no_handler,
                              "unanswered": unanswered}))

    asyncio.run(main(sys.argv[1]))
''')


def test_a_client_without_the_code_drives_runs_a_worker_process_runs(
        any_db_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    worker_env = {**env, "PYTHONPATH": os.pathsep.join([str(APPS), str(DURO_SRC)])}
    client_env = {**env, "PYTHONPATH": str(DURO_SRC)}
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    worker = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", any_db_url, "worker", "order_app"],
        env=worker_env, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        done = subprocess.run([sys.executable, str(script), any_db_url], env=client_env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert done.returncode == 0, (done.stderr, stderr)
    out = json.loads(done.stdout)
    assert out["total"] == 5
    assert out["result"] == {"lines": {"apple": 2, "pear": 3}, "approver": "ann",
                             "charge": "charged 5"}
    assert out["listed"] == [["order-1", "order_app.order", "completed"]]
    assert out["kinds"][0] == "run_started" and out["kinds"][-1] == "run_completed"
    assert "update_completed" in out["kinds"] and "signal_received" in out["kinds"]
    # A name no worker serves is stored as given: it waits for a worker with the code.
    assert out["typo"] == "pending"
    assert out["repr"].startswith("<duro.Client ")
    # Queries went through the store to the worker process, which has the code.
    assert out["asked"] == 5 and out["asked_after"] == 5
    assert "nosuch" in out["no_handler"]
    assert "no worker answered query 'total'" in out["unanswered"]
    assert "order_app.nope" in out["unanswered"]
