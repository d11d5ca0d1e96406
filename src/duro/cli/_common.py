"""Exit codes, the CLI's own error, and output helpers shared by every command."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import secrets
import sys
from typing import TextIO

from duro._checks import DEFAULT_NAMESPACE
from duro.serde import CodecChain

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
    "SafeFormatter",
    "Style",
    "codec",
    "escape_controls",
    "namespace",
    "non_negative_number",
    "port_number",
    "positive_number",
    "set_codec",
    "set_namespace",
    "set_token",
    "stderr",
    "stdout",
    "token",
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

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What a terminal may act on instead of showing: C0 controls but newline and tab (ESC
starts the sequences that clear the screen, move the cursor, set the title...), DEL,
C1 controls (U+009B is a one-character CSI), and the bidirectional overrides that make
text read other than it is."""

_MARK = "\ue000" + secrets.token_hex(8)
"""Stands for ESC in the colours :meth:`Style.paint` adds, until :meth:`Style.line` has
escaped everything else: a random token per process, so data cannot forge it."""


def escape_controls(text: str) -> str:
    """``text`` with the characters a terminal would act on written as escapes: C0
    controls as ``\\x1b``, DEL, C1 and bidi controls as ``\\u009b`` (escapes JSON
    reads back the same, so ``--json`` output stays valid JSON)."""
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x7F else f"\\u{code:04x}"


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
        """``text`` in ``color`` when the stream shows colours (the escape codes are
        written by :meth:`line`)."""
        if not self.color or not text:
            return text
        return f"{_MARK}{_CODES[color]}m{text}{_MARK}0m"

    def sym(self, symbol: str, color: str | None = None) -> str:
        """A status symbol (ASCII on streams that cannot encode it), maybe coloured."""
        text = symbol if self.unicode else _ASCII.get(symbol, symbol)
        return self.paint(text, color) if color else text

    def line(self, text: str = "") -> None:
        """Write one line and flush (progress must show up at once, even in a pipe).

        Every line the CLI prints goes through here, and much of it comes from the
        database (ids, names, payloads, errors, tracebacks): control characters are
        escaped, so a workflow id holding ``\\x1b[2J`` cannot clear the operator's screen.
        """
        print(escape_controls(text).replace(_MARK, "\033["), file=self.stream, flush=True)


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (an argparse type)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


class SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped: they carry ids and errors read from
    the database too."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


def positive_number(text: str) -> float:
    """An argparse type: a finite number above zero (``--timeout 1.5``)."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def non_negative_number(text: str) -> float:
    """An argparse type: a finite number of zero or more (``--grace 0``)."""
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def stdout() -> Style:
    """A style for the current stdout."""
    return Style(sys.stdout)


def stderr() -> Style:
    """A style for the current stderr."""
    return Style(sys.stderr)


_CODEC: list[CodecChain | None] = [None]


def set_codec(chain: CodecChain | None) -> None:
    """The codec chain this command's engine uses (``--codec`` / ``$DURO_CODEC``)."""
    _CODEC[0] = chain


def codec() -> CodecChain | None:
    """The codec chain set for this command, if any."""
    return _CODEC[0]


_NAMESPACE: list[str | None] = [DEFAULT_NAMESPACE]


def set_namespace(name: str | None) -> None:
    """The namespace this command works in (``--namespace`` / ``$DURO_NAMESPACE``; None:
    every namespace, ``ls --all-namespaces``)."""
    _NAMESPACE[0] = name


def namespace() -> str | None:
    """The namespace set for this command (``"default"`` unless told)."""
    return _NAMESPACE[0]


_TOKEN: list[str | None] = [None]


def set_token(given: str | None) -> None:
    """The API token given with ``--token`` (else the remote client reads
    ``$DURO_TOKEN`` itself)."""
    _TOKEN[0] = given


def token() -> str | None:
    """The API token given for this command, if any."""
    return _TOKEN[0]
