"""A worker process for the approval crash test: a step, an approval, a step; serves until
its runs are complete."""

from __future__ import annotations

import asyncio
import sys

import duro


@duro.step(name="approval_app.prepare")
def prepare(version: str) -> str:
    return f"plan for {version}"


@duro.step(name="approval_app.apply")
def apply(plan: str, by: str) -> str:
    return f"{plan}, applied ({by})"


@duro.workflow(name="approval_app.ship")
async def ship(version: str) -> str:
    plan = await prepare(version)
    decision = await duro.approval("ship", {"plan": plan})
    if not decision.approved:
        return f"rejected by {decision.by}"
    return await apply(plan, decision.by or "")


async def main(url: str) -> None:
    async with duro.Engine(url, lease=1.0, poll_interval=0.05) as engine:
        while True:
            runs = await engine.list(name="approval_app.ship")
            if runs and all(r.status.is_terminal for r in runs):
                return
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
