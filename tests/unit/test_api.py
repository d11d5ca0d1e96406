"""The public surface: pinned names, decorators, URL parsing, errors."""

from __future__ import annotations

import pytest

import duro
from duro.errors import DuroError
from duro.store.sqlite import parse_sqlite_url

PUBLIC = {
    "Client", "Clock", "DatabaseLockedError", "DatabaseReadOnlyError", "DuroError", "Engine",
    "ErrorInfo", "Event", "ManualClock", "NonRetryableError", "NondeterminismError",
    "PayloadDecodeError", "RetryAfterError", "RetryPolicy", "RunInfo", "RunNotFoundError",
    "RunStatus", "SerializationError", "Step", "StepFailedError", "StepInfo", "StepSummary",
    "StepTimeoutError", "StoreError", "SystemClock", "Workflow", "WorkflowAlreadyStartedError",
    "WorkflowBlockingError", "WorkflowCancelledError", "WorkflowFailedError", "WorkflowHandle",
    "WorkflowInfo", "WorkflowNotFoundError", "WorkflowTerminatedError", "__version__",
    "heartbeat", "info", "now", "patched", "random", "sleep", "step", "step_info", "uuid4",
    "workflow", "ChildWorkflowError", "HistoryLimitError", "QueryError", "UpdateFailedError",
    "UpdateRejectedError", "ParentClosePolicy", "Saga", "continue_as_new", "execute_child",
    "on_query", "on_signal", "on_update", "set_state", "wait_condition", "wait_for_signal",
    "Queue", "OverlapPolicy", "ScheduleAlreadyExistsError", "ScheduleNotFoundError",
    "ScheduleSpec", "schedule", "ScheduleInfo",
    "CorruptRunError", "DataRejectedError", "DatabaseFileLostError",
    "InvalidArgumentError", "InvalidStoreURLError", "RecoveryLimitError",
    "HistoryCorruptError", "WorkflowArgumentsError", "WorkflowIdTakenError",
    "QueryTimeoutError", "StepOutcomeUnknownError",
    "RunPage", "upsert_search_attributes", "Stats",
    "ModelPrice", "RunUsage", "Usage", "UsageTotals", "record_usage", "set_model_prices",
    "logger",
    "Cache",
    "ApprovalInfo", "ApprovalNotFoundError", "ApprovalNotPendingError", "ApprovalPage",
    "Decision", "approval",
    "StreamChunk", "stream", "close_stream",
    "register_steps", "all_handlers_finished", "external_workflow", "ExternalWorkflowHandle",
    "complete_later",
    "Budget", "BudgetExceededError", "BudgetSpend",
    "Endpoint", "call", "OperationNotFoundError", "RemoteOperationError",
    "RunWaits", "SignalWait", "StepTaskWait", "TimerWait",
    "InvalidSignatureError",
}


def test_public_api_is_pinned() -> None:
    assert set(duro.__all__) == PUBLIC
    for name in duro.__all__:
        assert hasattr(duro, name), name


def test_every_duro_error_is_a_duro_error() -> None:
    for name in duro.__all__:
        obj = getattr(duro, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error") \
                and name not in ("NonRetryableError", "RetryAfterError"):
            assert issubclass(obj, DuroError), name


@pytest.mark.parametrize("url, path", [
    ("sqlite:///duro.db", "duro.db"),
    ("sqlite:///data/x.db", "data/x.db"),
    ("sqlite:////abs/x.db", "/abs/x.db"),
    ("/abs/y.db", "/abs/y.db"),
    ("sqlite:///:memory:", ":memory:"),
])
def test_sqlite_urls(url: str, path: str) -> None:
    assert parse_sqlite_url(url)[0] == path


def test_sqlite_url_options_and_bad_urls() -> None:
    assert parse_sqlite_url("sqlite:///a.db?synchronous=NORMAL")[1] == {"synchronous": "NORMAL"}
    with pytest.raises(duro.StoreError):
        duro.Engine("mysql://localhost/x")
    with pytest.raises(duro.StoreError, match="synchronous"):
        duro.Engine("sqlite:///a.db?synchronous=SOMETIMES")


def test_workflow_decorator_rejects_sync_functions_and_duplicate_names() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(TypeError, match="async def"):
        duro.workflow(not_async)  # type: ignore[type-var]


def test_workflow_api_outside_a_workflow_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="workflow code"):
        duro.now()
    with pytest.raises(RuntimeError, match="inside a step"):
        duro.step_info()
    duro.heartbeat("ignored outside steps")  # a no-op, not an error


def test_step_options_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout"):
        duro.step(timeout=0)(lambda: None)
