"""Workflows for the HTTP route tests (served with order_app by `duro serve --worker`): an
update that waits (so that an update outlasts its wait) and a run that fails (to retry)."""

from __future__ import annotations

import duro


@duro.workflow(name="http_app.gate")
async def gate() -> str:
    state = {"open": False}

    async def wait_open() -> str:
        await duro.wait_condition(lambda: state["open"])
        return "opened"

    duro.on_update("wait_open", wait_open)
    await duro.wait_for_signal("open")
    state["open"] = True
    await duro.wait_for_signal("close")
    return "closed"


@duro.step(name="http_app.boom")
async def boom() -> None:
    raise duro.NonRetryableError("boom")


@duro.workflow(name="http_app.failing")
async def failing() -> None:
    await boom()
