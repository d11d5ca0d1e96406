"""Regenerate the golden histories: ``python -m tests.histories.generate``.

Only for *new* reference workflows: an existing file must not change, or the golden
test no longer proves that old runs keep replaying.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import duro
from duro.testing import ManualClock
from tests.histories.workflows import (
    Order,
    golden_at_most_once,
    golden_fanout,
    golden_order,
    golden_values,
)

HERE = Path(__file__).parent

CASES: list[tuple[str, duro.Workflow[..., object], tuple[object, ...]]] = [
    ("order", golden_order, (Order(id="o-1", amount=4200),)),
    ("fanout", golden_fanout, (["a", "b", "c"],)),
    ("values", golden_values, ()),
    ("at_most_once", golden_at_most_once, ()),
]


async def generate(names: set[str]) -> None:
    clock = ManualClock(start=1_750_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        async with duro.Engine(f"sqlite:///{tmp}/golden.db", clock=clock) as engine:
            for name, wf, args in CASES:
                if names and name not in names:
                    continue
                handle = await engine.start(wf, *args, id=f"golden-{name}")
                while (await handle.status()) != duro.RunStatus.COMPLETED:
                    clock.advance(1)
                    await asyncio.sleep(0.05)
                info = await handle.describe()
                events = [e.to_json() for e in await handle.history()]
                out = {"workflow": wf.name, "workflow_id": info.workflow_id,
                       "run_id": info.run_id, "result": info.result_json, "events": events}
                path = HERE / f"{name}.json"
                path.write_text(json.dumps(out, indent=1) + "\n", "utf-8")
                print(f"wrote {path} ({len(events)} events)")


if __name__ == "__main__":
    asyncio.run(generate(set(sys.argv[1:])))
