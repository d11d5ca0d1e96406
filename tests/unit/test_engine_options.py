"""Engine and Worker options are explicit keyword parameters (issue 14, item 5): the
Engine takes every option of its worker, with the same default, and a misspelled option
is an error where it is written, for mypy --strict as at run time."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import duro
from duro.worker import Worker
from duro.worker._options import WORKER_OPTIONS

TYPING = Path(__file__).parent.parent / "typing"


def test_the_engine_takes_every_worker_option_with_the_same_default() -> None:
    engine = inspect.signature(duro.Engine).parameters
    worker = inspect.signature(Worker).parameters
    # interceptors: the Engine takes client and worker interceptors in one list, and
    # gives the worker its own (test_worker_interceptors.py).
    configured = [n for n in worker
                  if n not in ("self", "store", "workflows", "clock", "interceptors")]
    assert "interceptors" in engine
    assert sorted(configured) == sorted(WORKER_OPTIONS)
    for name in WORKER_OPTIONS:
        assert engine[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        if name == "declare":  # None: the queues declared with duro.Queue
            assert engine[name].default is None and worker[name].default == ()
            continue
        assert engine[name].default == worker[name].default, name
        assert engine[name].annotation == worker[name].annotation, name
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in engine.values())


def test_options_reach_the_worker(tmp_path: Path) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/x.db", max_active=3, lease=7.0,
                               max_child_depth=None, lookahead=0) as engine:
            assert engine.worker is not None
            assert (engine.worker.max_active, engine.worker.lease) == (3, 7.0)
            assert engine.worker.max_child_depth is None
            assert engine.worker.lookahead == 0

    import asyncio

    asyncio.run(main())


def test_a_misspelled_option_is_refused_at_run_time(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="max_actve"):
        duro.Engine(f"sqlite:///{tmp_path}/x.db", max_actve=5)  # type: ignore[call-arg]
    assert list(tmp_path.iterdir()) == []


def test_a_misspelled_or_mistyped_option_is_a_mypy_error() -> None:
    api = pytest.importorskip("mypy.api")
    out, err, code = api.run(["--strict", "--no-incremental", "--follow-imports=silent",
                              str(TYPING / "user_code_options.py")])
    assert code == 1, out + err
    errors = re.findall(r"user_code_options\.py:(\d+): error: (.*)", out)
    assert [int(line) for line, _ in errors] == [14, 15, 16], out
    assert '"max_actve"' in errors[0][1] and '"lookahed"' in errors[2][1], out
