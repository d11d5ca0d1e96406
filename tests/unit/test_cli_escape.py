"""What the CLI and its logs print from the database has the control characters a
terminal would act on escaped; the CLI's own colours survive (issue 13, item 10)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from duro.cli._common import SafeFormatter, Style, escape_controls


def test_escape_controls_keeps_newlines_tabs_and_json_valid() -> None:
    text = "a\x1b[2Jb\u009bc\x7fd\u202ee\tf\ng\rh\x00"
    assert escape_controls(text) == "a\\x1b[2Jb\\u009bc\\u007fd\\u202ee\tf\ng\\x0dh\\x00"
    payload = json.dumps({"v": "\u009b\x7f"}, ensure_ascii=False)
    assert json.loads(escape_controls(payload)) == {"v": "\u009b\x7f"}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_survive_on_a_terminal_but_data_cannot_forge_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = _Terminal()
    style = Style(stream)
    assert style.color
    style.line(style.paint("failed", "red") + " evil\x1b[2J\x1b[31m")
    assert stream.getvalue() == "\x1b[31mfailed\x1b[0m evil\\x1b[2J\\x1b[31m\n"


def test_log_lines_are_escaped() -> None:
    record = logging.LogRecord("duro", logging.WARNING, __file__, 1,
                               "parking run %s: %s", ("r1", "boom \x1b]0;pwned\x07"), None)
    assert SafeFormatter("%(message)s").format(record) == \
        "parking run r1: boom \\x1b]0;pwned\\x07"
