"""Budgets the engine enforces (``docs/agents.md``, "Budgets"): :class:`Budget` given to
a run (``start(..., budget=)``) or a workflow (``@duro.workflow(budget=)``), checked
before each attempt of a ``@duro.step(budgeted=True)`` step; the shared budgets' spend
per key and window (:class:`BudgetSpend`, ``client.budgets``)."""

from duro.budget._budget import Budget
from duro.store._budgets import BudgetSpend

__all__ = ["Budget", "BudgetSpend"]
