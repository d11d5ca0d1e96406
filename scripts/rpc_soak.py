"""The long checks of durable RPC (issue 20), run by hand; the default suite runs shorter
variants of the same code (tests/acceptance/test_rpc.py).

Two real deployments (tests/acceptance/rpc_pair.py): payments on PostgreSQL
(``DURO_TEST_POSTGRES_URL``, or a throwaway cluster), orders on SQLite, each a ``duro
serve --worker`` process.

- ``--outage SECONDS`` (default 30): the caller's callback route refuses (HTTP 503) for
  that long; every result must arrive by polling, and the callbacks that get through
  afterwards must change nothing.
- ``--calls N`` (default 200): N calls from orders' workflows to payments' operation,
  orders' process SIGKILLed and restarted during the calls, then payments': every call
  completes exactly once at payments (its history and an external ledger agree), every
  caller gets its result once, no run is left running.

Prints one JSON object of figures (docs/rpc.md records them)::

    python scripts/rpc_soak.py [--outage 30] [--calls 200] [--skip-outage] [--skip-soak]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.acceptance.rpc_pair import callback_outage, pair_on, soak
from tests.conftest import drop_schema
from tests.pg import Cluster, unavailable_reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--skip-outage", action="store_true")
    parser.add_argument("--skip-soak", action="store_true")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"PostgreSQL unavailable: {reason}")
    cluster = Cluster().start()
    pg_url = cluster.fresh_url()
    figures = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, pair_on(pg_url, Path(tmp)) as pair:
            if not args.skip_outage:
                figures["callback_outage"] = callback_outage(
                    pair, args.outage, orders=5, poll_interval=2.0, after=120.0)
                print(json.dumps(figures["callback_outage"]), flush=True)
            if not args.skip_soak:
                figures["soak"] = soak(pair, args.calls)
    finally:
        drop_schema(cluster, pg_url)
        cluster.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
