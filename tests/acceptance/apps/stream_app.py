"""Subprocess app for the streaming tests (tests/acceptance/test_stream_kill.py,
test_stream_http.py).

``python stream_app.py --url URL --id ID --chunks N --start`` starts run ID of
``stream_app.talk``, whose step streams N chunks ``c0``, ``c1``... one every 20 ms (a
model's tokens), and serves as its worker until the test kills the process. Run again
without ``--start``, it serves as a worker until run ID ends and prints its result as
JSON. ``duro serve stream_app --worker`` serves the same workflow over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import duro


@duro.step(name="stream_app.generate")
async def generate(chunks: int, pause: float) -> str:
    for i in range(chunks):
        duro.stream(f"c{i}")
        await asyncio.sleep(pause)
    return f"{chunks} chunks"


@duro.workflow(name="stream_app.talk")
async def talk(chunks: int, pause: float = 0.02) -> str:
    return await generate(chunks, pause)


@duro.workflow(name="stream_app.publish")
async def publish(n: int) -> int:
    """Values from the workflow itself, then the stream closed while the run waits."""
    for i in range(n):
        duro.stream({"progress": i})
        await asyncio.sleep(0.01)  # a durable timer: each value its own commit
    duro.close_stream()
    await duro.wait_for_signal("finish")
    return n


async def amain(args: argparse.Namespace) -> int:
    async with duro.Engine(args.url, lease=1.0, poll_interval=0.05) as engine:
        if args.start:
            await engine.start(talk, args.chunks, id=args.id)
            await asyncio.Event().wait()  # until SIGKILL
        result = await engine.get_handle(args.id).result(timeout=60)
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--start", action="store_true")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
