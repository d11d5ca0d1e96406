"""A workflow whose step is completed from outside (``duro.complete_later``), for the
acceptance test of ``client.steps`` through ``duro serve`` and ``duro step``."""

from __future__ import annotations

import duro


@duro.step(name="complete_app.review")
async def review(doc: str) -> str:
    duro.step_info().completion_token  # noqa: B018 - what a real step hands out
    duro.complete_later()


@duro.workflow(name="complete_app.flow")
async def flow(doc: str) -> str:
    try:
        return f"{doc}: {await review(doc)}"
    except duro.StepFailedError as exc:
        return f"{doc} failed: {exc.cause}"
