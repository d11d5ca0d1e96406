"""Public APIs type-check in user code under ``mypy --strict`` (and catch mistakes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")
HERE = Path(__file__).parent.parent / "typing"


def _mypy(path: Path) -> tuple[str, int]:
    out, err, code = api.run(["--strict", "--no-incremental", "--follow-imports=silent",
                              str(path)])
    return out + err, code


def test_user_code_type_checks_strictly() -> None:
    out, code = _mypy(HERE / "user_code.py")
    assert code == 0, out


def test_type_errors_in_user_code_are_reported() -> None:
    out, code = _mypy(HERE / "user_code_errors.py")
    assert code == 1
    lines = {int(m.group(1)) for m in re.finditer(r"user_code_errors\.py:(\d+): error", out)}
    assert lines == {15, 16, 22}, out


def test_the_rpc_stub_type_checks_its_calls() -> None:
    out, code = _mypy(HERE / "user_code_rpc.py")
    assert code == 0, out
    out, code = _mypy(HERE / "user_code_rpc_errors.py")
    assert code == 1
    lines = {int(m.group(1)) for m in re.finditer(r"user_code_rpc_errors\.py:(\d+): error", out)}
    assert lines == {20, 21, 22}, out
