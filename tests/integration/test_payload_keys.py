"""Data duro accepts always comes back: dictionaries with non-string keys round-trip by
the type hints, and what cannot round-trip is refused at the call instead of parking the
run on its own data (issue 13, item 9). Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

import duro
from tests.conftest import run


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


async def _nothing_stored(engine: duro.Engine) -> None:
    assert await engine.list() == []


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True, kw_only=True)
class Inventory:
    counts: dict[int, str]
    by_day: dict[dt.date, float] = field(default_factory=dict)


@duro.step
def shift(d: dict[int, str]) -> dict[int, str]:
    return {k + 1: v for k, v in d.items()}


@duro.step
def nested(items: list[dict[int, str]]) -> list[dict[int, str]]:
    return [{k * 10: v for k, v in d.items()} for d in items]


@duro.step
def restock(inv: Inventory) -> Inventory:
    return Inventory(counts={k: v * 2 for k, v in inv.counts.items()}, by_day=inv.by_day)


@duro.step
def rich_keys() -> dict[uuid.UUID, dict[Color, dict[float, bool]]]:
    return {uuid.UUID(int=7): {Color.BLUE: {1.5: True}}}


def _int_keys(value: dict[Any, Any]) -> bool:
    return all(type(k) is int for k in value)


@duro.workflow
async def int_keys(d: dict[int, str], items: list[dict[int, str]],
                   inv: Inventory) -> tuple[dict[int, str], list[dict[int, str]], Inventory]:
    assert _int_keys(d) and all(_int_keys(i) for i in items) and _int_keys(inv.counts)
    shifted = await shift(d)
    assert _int_keys(shifted), shifted
    await asyncio.sleep(0.01)  # a durable timer: the results are replayed after it, too
    many = await nested(items)
    assert all(_int_keys(i) for i in many), many
    more = await restock(inv)
    assert _int_keys(more.counts) and all(type(k) is dt.date for k in more.by_day)
    rich = await rich_keys()
    assert rich == {uuid.UUID(int=7): {Color.BLUE: {1.5: True}}}, rich
    return shifted, many, more


def test_dicts_with_int_keys_round_trip_as_arguments_results_and_nested(db_url: str) -> None:
    inv = Inventory(counts={3: "ab"}, by_day={dt.date(2024, 5, 1): 1.5})

    async def main() -> None:
        async with duro.Engine(db_url, max_cached=0) as engine:
            handle = await engine.start(int_keys, {1: "a", 2: "b"}, [{1: "x"}, {2: "y"}], inv)
            shifted, many, more = await handle.result(timeout=10)
            assert shifted == {2: "a", 3: "b"} and _int_keys(shifted)
            assert many == [{10: "x"}, {20: "y"}]
            assert more == Inventory(counts={3: "abab"}, by_day=inv.by_day)
            assert (await handle.describe()).status == duro.RunStatus.COMPLETED

    run(main())


@duro.workflow
async def untyped_keys(d: dict) -> dict:  # type: ignore[type-arg]
    return d


def test_keys_without_a_key_type_come_back_as_json_strings(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(untyped_keys, {1: "a"})
            assert await handle.result(timeout=10) == {"1": "a"}

    run(main())


@pytest.mark.parametrize("value, message", [
    ({(1, 2): "tuple key"}, "key"),
    ({1: "int", "1": "str"}, "same key"),
    ({True: "bool", "true": "str"}, "same key"),
])
def test_keys_that_cannot_round_trip_are_refused_at_the_call(
        db_url: str, value: dict[Any, str], message: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.SerializationError, match=message):
                await engine.start(untyped_keys, value)
            await _nothing_stored(engine)

    run(main())


# -- arguments that do not fit the workflow's types -----------------------------------


@duro.workflow
async def typed(d: dict[int, str], n: int) -> int:
    return len(d) + n


@pytest.mark.parametrize("args", [([1], 1), ({"a": "x"}, 1), ({1: "x"}, "one")], ids=repr)
def test_arguments_that_do_not_fit_the_hints_are_refused_instead_of_parking(
        db_url: str, args: tuple[Any, Any]) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.SerializationError, match="typed"):
                await engine.start(typed, *args)
            await _nothing_stored(engine)
            assert await (await engine.start(typed, {1: "x"}, 1)).result(timeout=10) == 2

    run(main())
