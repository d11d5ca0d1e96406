"""Exit codes, the CLI's own error, and output helpers shared by every command."""

from __future__ import annotations

import os
import sys
from typing import TextIO

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STOPPED",
    "EXIT_STORE",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "Style",
    "stderr",
    "stdout",
]

EXIT_OK = 0
EXIT_FAILED = 1
"""The workflow failed, or an id is unknown / not live, or any other error."""
EXIT_USAGE = 2
"""Bad command line, bad MODULE:WORKFLOW, module not importable, bad arguments."""
EXIT_STOPPED = 3
"""The run was cancelled or terminated."""
EXIT_STORE = 4
"""The database cannot be opened or used."""
EXIT_TIMEOUT = 124
"""``duro run --timeout`` expired first (the run goes on, durably); as GNU ``timeout``."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (or SIGTERM) stopped the command; the run itself is durable."""
EXIT_BROKEN_PIPE = 141
"""Whoever read our output went away (``duro history | head``); as a shell's SIGPIPE."""


class CliError(Exception):
    """An error reported as one line on stderr, with an exit code (no traceback)."""

    def __init__(self, message: str, code: int = EXIT_FAILED, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        """Extra text (a traceback) shown with --verbose."""


_CODES = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "dim": "2", "bold": "1"}
_ASCII = {"✓": "ok", "✗": "x", "↻": "~", "⏲": "t", "⊘": "-", "•": "*", "▶": ">"}


class Style:
    """Colours and symbols for one stream: colour only on a TTY (and not with NO_COLOR),
    symbols only when the stream's encoding can carry them."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.color = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
        encoding = (getattr(stream, "encoding", None) or "ascii").lower()
        try:
            "✓✗↻⏲⊘•▶".encode(encoding)
            self.unicode = True
        except (UnicodeEncodeError, LookupError):
            self.unicode = False

    def paint(self, text: str, color: str) -> str:
        """``text`` in ``color`` when the stream shows colours."""
        if not self.color or not text:
            return text
        return f"\033[{_CODES[color]}m{text}\033[0m"

    def sym(self, symbol: str, color: str | None = None) -> str:
        """A status symbol (ASCII on streams that cannot encode it), maybe coloured."""
        text = symbol if self.unicode else _ASCII.get(symbol, symbol)
        return self.paint(text, color) if color else text

    def line(self, text: str = "") -> None:
        """Write one line and flush (progress must show up at once, even in a pipe)."""
        print(text, file=self.stream, flush=True)


def stdout() -> Style:
    """A style for the current stdout."""
    return Style(sys.stdout)


def stderr() -> Style:
    """A style for the current stderr."""
    return Style(sys.stderr)
