"""Client interceptors see every start, signal, update, query, cancel and terminate (from
the client and from handles), in chain order; they can change a call or refuse it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import duro
from duro.interceptors import (
    CancelInput,
    ClientInterceptor,
    QueryInput,
    SignalInput,
    StartInput,
    TerminateInput,
    UpdateInput,
)
from tests.conftest import run


@duro.workflow(name="icpt.counter")
async def counter(start: int) -> int:
    value = start

    def add(n: int) -> int:
        nonlocal value
        value += n
        return value

    duro.on_update("add", add)
    duro.on_query("value", lambda: value)
    await duro.wait_for_signal("stop")
    return value


class Recorder(ClientInterceptor):
    def __init__(self, tag: str, seen: list[str]) -> None:
        self.tag, self.seen = tag, seen

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[duro.WorkflowHandle[Any]]],
                    ) -> duro.WorkflowHandle[Any]:
        self.seen.append(f"{self.tag} start {input.workflow} {input.workflow_id} "
                         f"signal={input.signal} update={input.update}")
        return await next(input)

    async def signal(self, input: SignalInput,
                     next: Callable[[SignalInput], Awaitable[None]]) -> None:
        self.seen.append(f"{self.tag} signal {input.workflow_id} {input.name}")
        await next(input)

    async def update(self, input: UpdateInput,
                     next: Callable[[UpdateInput], Awaitable[Any]]) -> Any:
        self.seen.append(f"{self.tag} update {input.workflow_id} {input.name} {input.args}")
        return await next(input)

    async def query(self, input: QueryInput,
                    next: Callable[[QueryInput], Awaitable[Any]]) -> Any:
        self.seen.append(f"{self.tag} query {input.workflow_id} {input.name}")
        return await next(input)

    async def cancel(self, input: CancelInput,
                     next: Callable[[CancelInput], Awaitable[None]]) -> None:
        self.seen.append(f"{self.tag} cancel {input.workflow_id}")
        await next(input)

    async def terminate(self, input: TerminateInput,
                        next: Callable[[TerminateInput], Awaitable[None]]) -> None:
        self.seen.append(f"{self.tag} terminate {input.workflow_id} {input.reason}")
        await next(input)


class Tenant(ClientInterceptor):
    """Puts every new workflow id under a tenant prefix, and refuses terminations."""

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[duro.WorkflowHandle[Any]]],
                    ) -> duro.WorkflowHandle[Any]:
        return await next(dataclasses.replace(input, workflow_id=f"acme/{input.workflow_id}"))

    async def terminate(self, input: TerminateInput,
                        next: Callable[[TerminateInput], Awaitable[None]]) -> None:
        raise PermissionError(f"tenants may not terminate {input.workflow_id}")


def test_every_client_call_goes_through_the_chain_in_order(any_db_url: str) -> None:
    seen: list[str] = []

    async def main() -> None:
        async with duro.Engine(any_db_url, interceptors=[
                Recorder("outer", seen), Tenant(), Recorder("inner", seen)]) as engine:
            handle = await engine.start(counter, 1, id="c1")
            assert handle.workflow_id == "acme/c1"
            assert await handle.update("add", 2, timeout=20) == 3
            assert await handle.query("value") == 3
            await handle.signal("stop")
            assert await handle.result(timeout=20) == 3
            other, total = await engine.update_with_start(counter, 10, id="c2", update="add",
                                                          update_args=[5], timeout=20)
            assert other.workflow_id == "acme/c2" and total == 15
            await engine.signal_with_start(counter, 0, id="c2", signal="stop")
            assert await engine.get_handle("acme/c2").result(timeout=20) == 15
            third = await engine.start(counter, 0, id="c3")
            with pytest.raises(PermissionError, match="acme/c3"):
                await third.terminate()
            await third.cancel()
            with pytest.raises(duro.WorkflowCancelledError):
                await third.result(timeout=20)

    run(main())
    assert seen == [
        "outer start icpt.counter c1 signal=None update=None",
        "inner start icpt.counter acme/c1 signal=None update=None",
        "outer update acme/c1 add (2,)", "inner update acme/c1 add (2,)",
        "outer query acme/c1 value", "inner query acme/c1 value",
        "outer signal acme/c1 stop", "inner signal acme/c1 stop",
        "outer start icpt.counter c2 signal=None update=add",
        "inner start icpt.counter acme/c2 signal=None update=add",
        "outer start icpt.counter c2 signal=stop update=None",
        "inner start icpt.counter acme/c2 signal=stop update=None",
        "outer start icpt.counter c3 signal=None update=None",
        "inner start icpt.counter acme/c3 signal=None update=None",
        "outer terminate acme/c3 terminated",  # refused by Tenant: inner never sees it
        "outer cancel acme/c3", "inner cancel acme/c3",
    ]


def test_an_interceptor_must_be_one() -> None:
    with pytest.raises(duro.InvalidArgumentError, match="ClientInterceptor"):
        duro.Client("sqlite:///:memory:", interceptors=[object()])  # type: ignore[list-item]
