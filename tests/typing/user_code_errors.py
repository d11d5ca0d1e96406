"""User code with type errors that ``mypy --strict`` must report (checked by tests/unit)."""

from __future__ import annotations

import duro


@duro.step
def summarize(text: str) -> str:
    return text


@duro.workflow
async def wf(n: int) -> int:
    s: int = await summarize("x")  # error: str is not int
    await summarize(3)  # error: int is not str
    return s


async def main(engine: duro.Engine) -> None:
    handle = await engine.start(wf, 1)
    text: str = await handle.result()  # error: int is not str
    print(text)
