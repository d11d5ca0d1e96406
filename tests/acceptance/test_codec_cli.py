"""Encrypted payloads end to end with real processes: `duro worker --codec` is killed
with SIGKILL mid-run and restarted, the run completes (replaying its encrypted history),
the database never holds the secret, and `duro history --codec` shows it in clear."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duro
from duro.serde import generate_key
from tests.acceptance.apps.codec_app import guarded, make_chain
from tests.conftest import run
from tests.peek import count_events, database_bytes

APPS = Path(__file__).parent / "apps"
SECRET = "pw-7c1e-aubergine"


def test_an_encrypted_run_survives_kill_9_and_reads_back_with_the_codec(
        any_db_url: str) -> None:
    url = any_db_url
    env = {k: v for k, v in os.environ.items() if k != "DURO_DB"}
    env.update(DURO_KEYS=f"k1:{generate_key()}", DURO_KEY_ID="k1", PYTHONUTF8="1",
               NO_COLOR="1", PYTHONPATH=os.pathsep.join([str(APPS), str(Path(
                   duro.__file__).resolve().parents[1])]))
    os.environ.update(DURO_KEYS=env["DURO_KEYS"], DURO_KEY_ID="k1")
    try:
        async def start() -> None:
            async with duro.Engine(url, worker=False, codec=make_chain()) as client:
                await client.start(guarded, SECRET, 30, id="guarded")

        run(start())
        cli = [sys.executable, "-m", "duro", "--db", url, "--codec", "codec_app:make_chain"]

        def worker() -> subprocess.Popen[bytes]:
            return subprocess.Popen([*cli, "worker", "codec_app"], env=env, cwd=APPS,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        proc = worker()
        deadline = time.monotonic() + 30
        while count_events(url, "step_completed") < 5:  # some steps done, not all
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = worker()
        try:
            async def finish() -> list[str]:
                async with duro.Engine(url, worker=False, codec=make_chain()) as client:
                    result: list[str] = await client.get_handle("guarded").result(timeout=60)
                    return result

            assert run(finish(), timeout=90) == [f"{SECRET}#{i}" for i in range(30)]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        stored = database_bytes(url)
        assert SECRET.encode() not in stored
        assert base64.b64encode(SECRET.encode()) not in stored

        shown = subprocess.run([*cli, "history", "guarded", "--json"], env=env, cwd=APPS,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        events = json.loads(shown.stdout)
        assert events[0]["data"] == {"args": [SECRET, 30], "kwargs": {}}
        blind = subprocess.run([sys.executable, "-m", "duro", "--db", url, "history",
                                "guarded"], env=env, cwd=APPS, capture_output=True,
                               text=True, timeout=60)
        assert blind.returncode != 0 and "--codec" in blind.stderr, blind.stderr
    finally:
        os.environ.pop("DURO_KEYS", None)
        os.environ.pop("DURO_KEY_ID", None)

