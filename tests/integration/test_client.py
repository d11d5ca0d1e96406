"""`duro.Client`: the client API through the store alone, next to a worker it does not
know (another Engine here, another process in tests/acceptance/test_client_only.py)."""

from __future__ import annotations

import pytest

import duro
from tests.conftest import run


@duro.step(name="client.double")
async def double(n: int) -> int:
    return 2 * n


@duro.workflow(name="client.doubler")
async def doubler(n: int) -> int:
    go = await duro.wait_for_signal("go", type=bool)
    return await double(n) if go else -1


def test_a_client_starts_and_a_separate_worker_runs(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02, lookahead=0), \
                duro.Client(any_db_url) as client:
            assert not hasattr(client, "worker")
            handle = await client.start(doubler, 21, id="d-1")
            await client.signal("d-1", "go", True)
            assert await handle.result(timeout=20) == 42
            by_name = await client.start("client.doubler", 5, id="d-2")
            await by_name.signal("go", True)
            assert await by_name.result(timeout=20) == 10
            assert {r.workflow_id for r in await client.list(name="client.doubler")} == \
                {"d-1", "d-2"}

    run(main())


def test_a_client_with_the_code_checks_arguments_and_one_without_stores_them(
        db_url: str) -> None:
    async def main() -> None:
        async with duro.Client(db_url) as client:
            with pytest.raises(duro.WorkflowArgumentsError):
                await client.start(doubler, "not an int")
            with pytest.raises(duro.WorkflowArgumentsError):
                await client.start("client.doubler", "not an int")  # registered here
            assert await client.list() == []
            handle = await client.start("elsewhere.workflow", 1, x=2, id="e-1")
            info = await handle.describe()
            assert info.workflow_name == "elsewhere.workflow"
            assert info.status.value == "pending"
            events = await handle.history()
            assert events[0].data == {"args": [1], "kwargs": {"x": 2}}
            with pytest.raises(duro.InvalidArgumentError):
                await client.start("", id="e-2")
        async with duro.Engine(db_url, worker=False) as engine:
            with pytest.raises(duro.WorkflowNotFoundError):  # an engine has the code
                await engine.start("elsewhere.other")

    run(main())


def test_a_closed_client_says_so() -> None:
    client = duro.Client("sqlite:///:memory:")
    with pytest.raises(duro.DuroError, match=r"the client is not open: use `async with "
                                             r"Client\(...\)`"):
        client.get_handle("x")
