"""Engine and Worker options in user code: ``mypy --strict`` accepts every real option
and reports a misspelled or mistyped one (checked by tests/unit/test_engine_options.py)."""

from __future__ import annotations

import duro
from duro.store import open_store
from duro.worker import Worker

ok = duro.Engine("sqlite:///x.db", max_active=5, max_cached=0, max_threads=4, lease=10.0,
                 poll_interval=0.5, workflow_task_timeout=3.0, history_warning=100,
                 history_limit=1000, queues=["gpu"], retention=None, lookahead=0.0,
                 tune_gc=False, max_recoveries=3, max_child_depth=None)
typo = duro.Engine("sqlite:///x.db", max_actve=5)  # error: no such option
wrong = duro.Engine("sqlite:///x.db", max_active="5")  # error: str is not int
worker = Worker(open_store("sqlite:///x.db"), {}, max_active=5, lookahed=1.0)  # error
