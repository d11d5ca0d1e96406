"""The operation backend: each pydantic-ai durable operation runs as one duro step.

pydantic-ai's ``CallableOperationBackend`` hands us, per call, the operation's persisted
name and an async ``body`` that runs it and returns its JSON form (the capability
declares ``JSON_CODEC``). We run ``body`` as a duro step of that name: the first time,
the step calls it and the history records the JSON; on replay the same ``await``
returns the recorded JSON, and pydantic-ai rebuilds its typed result from it. The step
runs in the workflow's own worker, so ``body`` (a closure over the run's objects) is
passed in memory, never encoded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_ai.durable_exec import (
    CallableOperationBackend,
    DurableOperationId,
    JournalOperationNamer,
    ModelRequestId,
    RoleBasedOperationConfig,
)

import duro
from duro.pydantic_ai._config import StepConfig
from duro.pydantic_ai._usage import record_response_usage
from duro.step import Step

__all__ = ["DuroOperationBackend"]


async def _run_body(body: Callable[[], Awaitable[object]]) -> Any:
    return await body()


async def _run_model_body(body: Callable[[], Awaitable[object]]) -> Any:
    payload = await body()
    record_response_usage(payload)  # with this attempt's outcome, in the same write
    return payload


class DuroOperationBackend(CallableOperationBackend[StepConfig]):
    """Runs each bound operation as a duro step named by pydantic-ai's journal namer."""

    def __init__(self, *, agent_name: str, config: RoleBasedOperationConfig[StepConfig]) -> None:
        super().__init__(namer=JournalOperationNamer(agent_name), config=config)
        # One Step per (name, options): a Step registers its name, and building one per
        # call would cost a signature inspection on every model request.
        self._steps: dict[tuple[str, StepConfig, bool], Step[..., Any]] = {}

    def execution_attempt(self) -> int:
        """The attempt number of the step running now (1 outside a step)."""
        try:
            return duro.step_info().attempt
        except RuntimeError:
            return 1

    async def execute(self, *, operation_id: DurableOperationId, name: str,
                      body: Callable[[], Awaitable[object]], cache_key: tuple[object, ...],
                      config: StepConfig) -> object:
        """Run ``body`` as the duro step ``name`` (recorded once, replayed after)."""
        model = isinstance(operation_id, ModelRequestId)
        return await self._step(name, config, model)(body)

    def _step(self, name: str, config: StepConfig, model: bool) -> Step[..., Any]:
        key = (name, config, model)
        found = self._steps.get(key)
        if found is None:
            found = self._steps[key] = Step(
                _run_model_body if model else _run_body, name=name, retry=config.retry,
                timeout=config.timeout, at_most_once=config.at_most_once,
                budgeted=config.budgeted)
        return found
