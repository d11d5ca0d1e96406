"""Tool calls that need a human's approval, answered by duro approvals.

pydantic-ai asks its capabilities to resolve deferred tool calls in the run
(``handle_deferred_tool_calls``). In workflow code we ask one ``duro.approval`` per call
that needs approval, in the order of the calls: the run waits durably (days, restarts),
the approval is listed, decided from anywhere (``duro approve``, the HTTP API), and its
decision is recorded, so a replay resolves the calls the same way without asking again.
An approved call runs its tool (a step); a rejected or timed out one returns a denial
to the model, with the approver's comment.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolDenied

import duro
from duro.workflow._approvals import ask_approval, tool_approval_name

__all__ = ["ask_approvals"]


async def ask_approvals(agent: str, requests: DeferredToolRequests, *,
                        timeout: float | timedelta | None) -> DeferredToolResults:
    """One ``duro.approval`` per call needing approval; the results pydantic-ai resumes with."""
    results = DeferredToolResults()
    for call in requests.approvals:
        args = requests.validated_args.get(call.tool_call_id)
        context = {"agent": agent, "tool": call.tool_name, "tool_call_id": call.tool_call_id,
                   "args": args if args is not None else call.args_as_dict()}
        decision = await ask_approval(tool_approval_name(agent, call.tool_name), context,
                                      timeout=timeout)
        if decision.approved:
            results.approvals[call.tool_call_id] = True
        else:
            results.approvals[call.tool_call_id] = ToolDenied(_denial(decision))
        if decision.by is not None:
            results.answered_by[call.tool_call_id] = decision.by
    return results


def _denial(decision: duro.Decision) -> str:
    if decision.timed_out:
        return "The tool call was not approved in time."
    why = f": {decision.comment}" if decision.comment else "."
    return f"The tool call was denied by {decision.by}{why}"
