"""The client sees a failure in full (issue 14, item 4): a run that failed because a step
(or a child workflow) failed carries, as the chained ``cause`` of its error, the step's
own error type, message and traceback, as does ``duro show``. Each test runs on SQLite
and on PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import duro
from duro.errors import ErrorInfo
from tests.conftest import run


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


class PaymentDeclined(Exception):
    pass


@duro.step(retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01))
def charge(amount: int) -> int:
    if amount > 100:
        raise PaymentDeclined(f"card declined for {amount}")
    return amount


@duro.step(retry=duro.RetryPolicy(max_attempts=1))
def parse_order(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise RuntimeError(f"order {text!r} is unreadable") from exc


@duro.workflow(name="detail.checkout")
async def checkout(amount: int) -> int:
    return await charge(amount)


@duro.workflow(name="detail.order")
async def order(text: str) -> int:
    return await parse_order(text)


@duro.workflow(name="detail.shop")
async def shop(amount: int) -> int:
    return await duro.execute_child(checkout, amount, id=f"checkout-{amount}")


class CheckoutError(Exception):
    pass


@duro.workflow(name="detail.rewrapped")
async def rewrapped(amount: int) -> int:
    try:
        return await charge(amount)
    except duro.StepFailedError as exc:
        raise CheckoutError(f"checkout of {amount} failed") from exc


@duro.workflow(name="detail.plain_failure")
async def plain_failure() -> None:
    raise KeyError("no such thing")


@duro.workflow(name="detail.nests")
async def nests(depth: int) -> int:
    if depth == 0:
        return await charge(1000)
    return await duro.execute_child(nests, depth - 1, id=f"nests-{depth - 1}")


def _step_error(cause: ErrorInfo | None) -> ErrorInfo:
    assert cause is not None
    assert cause.type == f"{__name__}.PaymentDeclined", cause
    assert cause.message == "card declined for 500"
    assert cause.traceback.startswith("Traceback (most recent call last)")
    assert 'raise PaymentDeclined(f"card declined for {amount}")' in cause.traceback
    assert "in charge" in cause.traceback
    assert cause.cause is None
    return cause


async def _failure(handle: duro.WorkflowHandle[object]) -> ErrorInfo:
    with pytest.raises(duro.WorkflowFailedError) as info:
        await handle.result(timeout=20)
    described = (await handle.describe()).error
    assert described == info.value.cause  # the same chain from describe() as from result()
    return info.value.cause


def test_a_run_failed_by_a_step_carries_the_steps_own_error(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(checkout, 500, id="c"))
            assert cause.type == "duro.errors.StepFailedError"
            assert "failed after 2 attempt(s)" in cause.message
            assert "return await charge(amount)" in cause.traceback  # the workflow's frame
            _step_error(cause.cause)
            # The step's own traceback is not repeated in the workflow's.
            assert "raise PaymentDeclined" not in cause.traceback

    run(main())


def test_a_run_failed_by_a_child_carries_the_childs_error_and_its_steps(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(shop, 500, id="shop"))
            assert cause.type == "duro.errors.ChildWorkflowError"
            assert cause.message == (
                f"child workflow 'checkout-500' (detail.checkout) ended failed: "
                f"{__name__}.PaymentDeclined: card declined for 500")
            assert "execute_child" in cause.traceback
            child = cause.cause
            assert child is not None and child.type == "duro.errors.StepFailedError"
            assert "return await charge(amount)" in child.traceback
            _step_error(child.cause)

    run(main())


def test_a_rewrapped_step_failure_keeps_the_chain(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(rewrapped, 500, id="r"))
            assert cause.type == f"{__name__}.CheckoutError"
            assert cause.message == "checkout of 500 failed"
            assert cause.cause is not None
            assert cause.cause.type == "duro.errors.StepFailedError"
            assert "raise CheckoutError" in cause.traceback
            assert "direct cause" not in cause.traceback  # the chain is in the links
            _step_error(cause.cause.cause)

    run(main())


def test_a_steps_own_chained_exception_is_a_cause_too(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(order, "twelve", id="o"))
            step = cause.cause
            assert step is not None and step.type == "RuntimeError"
            assert step.message == "order 'twelve' is unreadable"
            assert step.cause is not None and step.cause.type == "ValueError"
            assert "invalid literal for int()" in step.cause.message
            assert "return int(text)" in step.cause.traceback
            assert "return int(text)" not in step.traceback  # each link: its own frames
            assert "raise RuntimeError" in step.traceback
            assert step.cause.cause is None

    run(main())


def test_a_failure_without_a_cause_has_none(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(plain_failure, id="p"))
            assert cause.type == "KeyError" and cause.cause is None

    run(main())


def test_a_deep_chain_keeps_its_first_links_and_its_root_cause(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            cause = await _failure(await engine.start(nests, 12, id="deep"))
            chain = []
            link: ErrorInfo | None = cause
            while link is not None:
                chain.append(link)
                link = link.cause
            assert len(chain) == duro.errors.MAX_CAUSE_DEPTH
            assert all(c.type == "duro.errors.ChildWorkflowError" for c in chain[:-2])
            assert chain[-2].type == "duro.errors.ChildWorkflowError"
            assert chain[-2].message.endswith("[further causes left out]")
            assert len(chain[0].message) < 300  # each child names the root cause only
            assert chain[-1].type == f"{__name__}.PaymentDeclined"  # the root cause

    run(main())


# -- the payload -------------------------------------------------------------------------


def test_the_error_payload_is_json_with_the_cause_nested() -> None:
    info = ErrorInfo(type="A", message="a", traceback="tb a",
                     cause=ErrorInfo(type="B", message="b", non_retryable=True))
    raw = info.to_dict()
    assert raw == {"type": "A", "message": "a", "traceback": "tb a", "non_retryable": False,
                   "cause": {"type": "B", "message": "b", "traceback": "",
                             "non_retryable": True}}
    assert ErrorInfo.from_dict(orjson.loads(orjson.dumps(raw))) == info
    # Payloads written before causes existed (no "cause" key), and damaged causes.
    assert ErrorInfo.from_dict({"type": "A", "message": "a"}) == ErrorInfo(type="A",
                                                                           message="a")
    assert ErrorInfo.from_dict({"type": "A", "cause": "junk"}).cause is None


# -- the CLI -----------------------------------------------------------------------------

APP = '''
import duro

@duro.step(retry=duro.RetryPolicy(max_attempts=1))
def explode(message: str) -> None:
    raise ValueError(message)

@duro.workflow(name="detail.fails")
async def fails(message: str) -> None:
    await explode(message)
'''


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "duro", "--db",
                           f"sqlite:///{tmp_path}/cli.db", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "PYTHONUTF8": "1"})


def test_duro_show_names_the_steps_error_and_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "detail_app.py").write_text(APP)
    assert _cli(tmp_path, "run", "detail_app:fails", "kaboom", "--id", "f", "-q"
                ).returncode == 1
    text = _cli(tmp_path, "show", "f").stdout
    assert "error        duro.errors.StepFailedError: " in text, text
    assert "caused by    ValueError: kaboom" in text, text
    assert "Traceback" not in text
    verbose = _cli(tmp_path, "show", "f", "--verbose").stdout
    assert "raise ValueError(message)" in verbose, verbose  # the step's own traceback
    assert "await explode(message)" in verbose  # the workflow's
    shown = orjson.loads(_cli(tmp_path, "show", "f", "--json").stdout)
    assert shown["error"]["type"] == "duro.errors.StepFailedError"
    assert shown["error"]["cause"]["type"] == "ValueError"
    assert "raise ValueError(message)" in shown["error"]["cause"]["traceback"]
