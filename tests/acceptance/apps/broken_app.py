"""An app whose import fails, for the CLI's usage-error path."""

from __future__ import annotations

raise RuntimeError("this app is broken on purpose")
