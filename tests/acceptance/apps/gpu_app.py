"""An app with a step routed to the ``gpu`` queue, for the operator tests of ``duro run``
(it leaves the step to a worker of ``gpu``) and ``duro queues`` (the step waits)."""

from __future__ import annotations

import os

import duro


@duro.step(name="gpu.render", queue="gpu")
def render(frame: int) -> str:
    return f"frame {frame} rendered by pid {os.getpid()}"


@duro.step(name="gpu.prepare")
def prepare(frame: int) -> int:
    return frame + 1


@duro.workflow(name="gpu.movie")
async def movie(frame: int) -> str:
    return await render(await prepare(frame))
