"""``python -m duro``: the ``duro`` command line."""

from __future__ import annotations

from duro.cli import main

if __name__ == "__main__":
    main()
