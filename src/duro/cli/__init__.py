"""The ``duro`` command line: run workflows, serve them, inspect and control runs."""

from __future__ import annotations

from duro.cli._main import main

__all__ = ["main"]
