"""A tiny real MCP server for tests/integration/test_pydantic_ai_mcp.py, run over stdio.

``python mcp_ledger_server.py LEDGER``: two tools, ``search`` and ``publish``, each
appending a line to the ledger file before it answers, so the test counts the calls the
server really received (and ``start`` lines, the times the server process was started).
"""

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

LEDGER = Path(sys.argv[1])
server = MCPServer("ledger")


def _note(line: str) -> None:
    with LEDGER.open("a") as ledger:
        ledger.write(line + "\n")


@server.tool()
def search(text: str) -> str:
    """Search for ``text``."""
    _note(f"search:{text}")
    return f"found {text}"


@server.tool()
def publish(text: str) -> str:
    """Publish ``text``."""
    _note(f"publish:{text}")
    return f"published {text}"


if __name__ == "__main__":
    _note("start")
    server.run("stdio")
