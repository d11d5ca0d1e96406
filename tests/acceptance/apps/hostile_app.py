"""Workflows whose data carries terminal escape sequences, for tests/acceptance/
test_cli_hostile.py (the CLI must print them escaped, never raw)."""

from __future__ import annotations

import duro

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\u009b31m\x7f\u202e"
"""Clear the screen, set the window title, a C1 CSI, DEL, a bidi override."""

# Explicit names: the tests import this module next to others that have an `echo`.


@duro.step
def explode(text: str) -> str:
    raise duro.NonRetryableError(f"boom {text}")


@duro.workflow(name="hostile_noisy")
async def noisy(text: str) -> str:
    duro.set_state("banner", text)
    return await explode(text)


@duro.workflow(name="hostile_echo")
async def echo(text: str) -> str:
    return text


@duro.workflow(name="hostile_typed")
async def typed(d: dict[int, str]) -> int:
    return len(d)


@duro.workflow(name="hostile_waits")
async def waits() -> None:
    await duro.wait_condition(lambda: False)
