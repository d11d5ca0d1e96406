"""A third-party store backend plugs in through the ``duro.stores`` entry-point group,
editing nothing in duro (issue 15, item 1: the backend seam). The package here is real:
a ``dist-info`` with ``entry_points.txt`` on the path of a fresh interpreter, as pip
would install it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""A backend serving ``memo://NAME``: a SQLite store in a directory of its own."""
import os

from duro.store import StoreBackend
from duro.store.sqlite import SqliteStore

OPENED = []


def _open(url, **options):
    path = os.path.join(os.environ["MEMO_DIR"], url.split("://", 1)[1] + ".db")
    OPENED.append(url)
    return SqliteStore(path, **options)


async def _migrate(url):
    return "nothing to do"


async def _schema(url):
    return None


backend = StoreBackend(name="memo", schemes=("memo",), example="memo://NAME",
                       open=_open, migrate=_migrate, schema=_schema)
'''

BROKEN = '''
raise ImportError("this backend's dependency is missing")
'''

SCRIPT = '''
import asyncio, duro, memo_store
from duro.store import backend_for

@duro.step
async def add(a: int, b: int) -> int:
    return a + b

@duro.workflow
async def total(n: int) -> int:
    s = 0
    for i in range(n):
        s = await add(s, i)
    return s

async def main():
    assert backend_for("memo://x").name == "memo"
    async with duro.Engine("memo://orders") as engine:
        handle = await engine.start(total, 5)
        print("result", await handle.result(timeout=30))
    print("opened", memo_store.OPENED)
    try:
        duro.Engine("nosuch://x")
    except duro.errors.InvalidStoreURLError as exc:
        print("error", exc)

asyncio.run(main())
'''


def _dist(site: Path, name: str, module: str, source: str, entry: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[duro.stores]\n{entry}\n")


def test_a_backend_declared_as_an_entry_point_serves_its_scheme(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "memo-store", "memo_store", PLUGIN, "memo = memo_store:backend")
    # A broken plugin is logged and skipped: it must not take duro's own backends down.
    _dist(site, "broken-store", "broken_store", BROKEN, "broken = broken_store:backend")
    (tmp_path / "data").mkdir()
    env = {**os.environ, "MEMO_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "result 10" in lines
    assert "opened ['memo://orders']" in lines
    assert (tmp_path / "data" / "orders.db").exists()
    error = next(line for line in lines if line.startswith("error "))
    # The message names every scheme that exists, the plugin's among them.
    assert "nosuch" in error and "memo" in error and "sqlite" in error \
        and "postgresql" in error
    assert "store backend 'broken' could not be loaded" in proc.stderr
