"""The store written once: every operation of :class:`~duro.store.Store` over a
dialect's transaction of named queries (``_tx.py``), applying the rules of
:mod:`duro.store._rules`. A dialect (``sqlite/``, ``postgres/``) subclasses
:class:`SqlStore` and implements only what truly differs: connections, its writer, its
reads, and the SQL of its ``.sql`` files."""

from __future__ import annotations

from duro.store._base._approvals import Approvals
from duro.store._base._budgets import Budgets
from duro.store._base._cache import Cache
from duro.store._base._claims import Claims
from duro.store._base._dialect import Dialect, Moved
from duro.store._base._langgraph import GraphCheckpoints
from duro.store._base._lineage import Lineage
from duro.store._base._messages import Messages
from duro.store._base._queries import Queries
from duro.store._base._runs import Runs
from duro.store._base._schedules import Schedules
from duro.store._base._stats import StatsReads
from duro.store._base._streams import Streams
from duro.store._base._tokens import Tokens
from duro.store._base._tx import Ambiguous, Fence, Later, Op, Params, Then, Tx
from duro.store._base._workers import Workers

__all__ = ["Ambiguous", "Dialect", "Fence", "Later", "Moved", "Op", "Params", "SqlStore",
           "Then", "Tx", "run_op"]


class SqlStore(Runs, Messages, Queries, Lineage, Claims, Workers, Schedules, Tokens,
               StatsReads, Cache, Approvals, Streams, Budgets, GraphCheckpoints):
    """Every store operation, once; a dialect subclass adds its :class:`Dialect` hooks
    (``_write``, ``_fetch``), its lifecycle (``open``, ``close``, ``subscribe``) and its
    history reads (``load_history``, ``load_runs``)."""


async def run_op(op: Op, tx: Tx) -> object:
    """Run an operation to its result inside one transaction, ``finish`` included (for a
    writer that reads results at once, as SQLite's does)."""
    result = await op(tx)
    return await result.finish() if isinstance(result, Then) else result
