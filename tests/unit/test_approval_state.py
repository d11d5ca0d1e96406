"""The workflow side of approvals (workflow/_approval_state.py): a history event for an
approval the code has not requested there is refused with the whole story."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from duro._history import EventKind
from duro.errors import NondeterminismError
from duro.workflow._approval_state import Approvals


class _Run:
    """What Approvals reads of its run when it refuses an event."""

    def __init__(self) -> None:
        self.workflow = SimpleNamespace(name="deploy")
        self.run_id = "r-1"


@pytest.mark.parametrize(("name", "said"), [
    ("ship", "approval_decided 'ship'"), (None, "approval_decided at")])
def test_an_approval_event_the_code_did_not_ask_for_is_refused(name: str | None,
                                                               said: str) -> None:
    run: Any = _Run()
    with pytest.raises(NondeterminismError) as caught:
        Approvals(run).apply(EventKind.APPROVAL_DECIDED, 3, name, None)
    message = str(caught.value)
    assert message.startswith("nondeterminism in workflow 'deploy' (run r-1): ")
    assert said in message
    assert message.endswith("at seq 3 but the code has not requested that approval there")
