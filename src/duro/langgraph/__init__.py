"""duro for LangGraph (extra ``duro[langgraph]``; never imported by ``import duro``).

* :class:`DuroSaver`: a LangGraph checkpointer on duro's store (SQLite, PostgreSQL).
* :func:`durable_graph`: a compiled graph run as a duro workflow, each node a step,
  ``interrupt()`` a durable wait, the graph's stream modes in the run's stream
  (docs/integrations/langgraph.md).
"""

from __future__ import annotations

from duro.langgraph._graph import RESUME_SIGNAL, durable_graph, step_task
from duro.langgraph._saver import DuroSaver, SaverLoopError

__all__ = ["RESUME_SIGNAL", "DuroSaver", "SaverLoopError", "durable_graph", "step_task"]
