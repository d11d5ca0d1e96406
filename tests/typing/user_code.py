"""User code that must type-check under ``mypy --strict`` (checked by tests/unit)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import duro


@dataclass
class Page:
    url: str
    text: str


@duro.step(retry=duro.RetryPolicy(max_attempts=5, initial_interval=timedelta(seconds=1)),
           timeout=timedelta(seconds=30))
async def fetch(url: str) -> Page:
    return Page(url=url, text="...")


@duro.step
def summarize(text: str) -> str:  # a sync step, awaited from the workflow
    return text[:100]


@duro.workflow
async def research(topic: str, limit: int = 3) -> str:
    pages = await asyncio.gather(*(fetch(f"https://x/{topic}/{i}") for i in range(limit)))
    summary: str = await summarize("\n".join(p.text for p in pages))
    await duro.sleep(timedelta(hours=1))
    if duro.patched("v2"):
        summary = summary.upper()
    return summary


async def main() -> None:
    async with duro.Engine("sqlite:///duro.db") as engine:
        handle = await engine.start(research, "durable execution", id="research-42")
        result: str = await handle.result()
        status: duro.RunStatus = await handle.status()
        print(result, status)


async def remote() -> None:
    # The same code through a server: duro.Client with its URL (and a token).
    async with duro.Client("http://127.0.0.1:8233", token="duro_...") as client:
        handle = await client.start(research, "durable execution", id="research-43")
        result: str = await handle.result(timeout=60)
        async for event in handle.events():
            print(event.seq, event.kind)
        page: duro.RunPage = await client.list_page(status="completed")
        print(result, page.next_cursor)
