"""A compiled LangGraph graph run as a duro workflow (:func:`durable_graph`).

The graph's own loop (its Pregel supersteps) runs **inside the workflow**, on duro's
deterministic loop, with an in-memory checkpointer: nothing of it is I/O, and a replay
after a crash runs it again to the same point. What makes it durable is what the nodes
are:

* **Step nodes** (the default): the node's function runs as a duro step
  (``<name>.<node>``), in the worker, with the step's retries, timeout and usage. Its
  result (the node's state update) is recorded in the history, so after a crash the
  replay reads it back and the node is not run again.
* **Workflow nodes** (``workflow_nodes=``): the node's function runs in the workflow
  itself. It may call ``interrupt()``, and its side effects are duro steps wrapped by
  :func:`step_task` (a LangGraph ``task``): when LangGraph runs the node again on resume,
  as it always does, the task's result comes from the graph's checkpoint and the step
  is not called again; the steps are recorded in the history, so a crash does not
  repeat them either.

``interrupt()`` ends the graph's invocation with its ``__interrupt__``: the workflow then
waits durably, for a signal (``resume``) or a duro approval, and invokes the graph again
with ``Command(resume=...)``.

Stream modes: a step node's chunks (``updates``, ``custom``, ``messages``) are written by
its step, so a retried attempt's are superseded and a completed node's are not written
again on replay. ``values`` chunks come from the graph's loop, in workflow code: the
workflow-level ``duro.stream`` records each once in the history, and a replay records
nothing.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
from typing import Any, Literal

from langchain_core.runnables.config import var_child_runnable_config
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphInterrupt
from langgraph.func import task
from langgraph.graph.state import CompiledStateGraph, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from duro._checks import check_choice
from duro.errors import InvalidArgumentError, NonRetryableError
from duro.step import RetryPolicy, Step, stream
from duro.workflow import Workflow, approval, wait_for_signal, workflow

__all__ = ["RESUME_SIGNAL", "durable_graph", "step_task"]

RESUME_SIGNAL = "resume"
"""The signal that answers an ``interrupt()`` (its payload is the resume value)."""

_STREAM_MODES = frozenset({"updates", "custom", "values", "messages"})


def durable_graph(graph: CompiledStateGraph[Any, Any, Any, Any], *, name: str,
                  workflow_nodes: Collection[str] = (),
                  retry: RetryPolicy | None = None, timeout: float | timedelta | None = None,
                  interrupts: Literal["signal", "approval"] = "signal",
                  stream_mode: Collection[str] = ("updates", "custom"),
                  ) -> Workflow[..., Any]:
    """Make a duro workflow that runs a compiled ``StateGraph``, each node a step.

    The workflow takes the graph's input (a JSON value) and returns its final state.
    Start it like any workflow (``await engine.start(wf, {"question": "..."})``).

    Args:
        graph: ``builder.compile()`` of a ``StateGraph`` (its checkpointer, if any, is
            not used: the run's history is the durable record).
        name: The workflow's name; each step node's step is named ``name.node``.
        workflow_nodes: Nodes run in the workflow rather than as steps: those that call
            ``interrupt()``. Their side effects go in :func:`step_task` calls.
        retry: The step nodes' retry policy (default: duro's).
        timeout: Limit of one attempt of a step node.
        interrupts: How an ``interrupt()`` is answered: ``"signal"`` (the
            :data:`RESUME_SIGNAL` signal's payload is the resume value) or
            ``"approval"`` (a ``duro.approval`` named ``<node>`` with the interrupt's
            value as context; the resume value is the decision, as a dict
            ``{"approved", "by", "comment", "timed_out"}``).
        stream_mode: The graph's stream modes sent to the run's stream (a mode or a
            collection of them), each chunk ``{"mode", "node", "data"}``: ``"updates"``
            (a step node's update), ``"custom"`` (what a step node writes with
            ``get_stream_writer()``), ``"messages"`` (a step node's chat model tokens
            and messages: ``data`` is ``{"message": <the message chunk's JSON>,
            "metadata": {...}}``) and ``"values"`` (the state after each superstep,
            written by the workflow; ``node`` is ``""``). ``"debug"``,
            ``"checkpoints"`` and ``"tasks"`` are refused (docs/integrations/langgraph.md).

    Raises:
        InvalidArgumentError: ``graph`` is not a compiled ``StateGraph``, a workflow
            node it does not have, an unknown ``interrupts`` or stream mode.
    """
    builder = getattr(graph, "builder", None)
    if not isinstance(graph, CompiledStateGraph) or not isinstance(builder, StateGraph):
        raise InvalidArgumentError("durable_graph needs a compiled StateGraph "
                                   "(builder.compile())")
    unknown = set(workflow_nodes) - set(builder.nodes)
    if unknown:
        raise InvalidArgumentError(f"workflow_nodes names nodes the graph does not have: "
                                   f"{sorted(unknown)}")
    check_choice(interrupts, "interrupts", ("signal", "approval"))
    modes = frozenset((stream_mode,) if isinstance(stream_mode, str) else stream_mode)
    if not modes <= _STREAM_MODES:
        raise InvalidArgumentError(f"stream_mode may hold {sorted(_STREAM_MODES)}, "
                                   f"not {sorted(modes - _STREAM_MODES)}")
    durable = copy.copy(builder)
    durable.nodes = {
        node: spec if node in workflow_nodes else dataclasses.replace(
            spec, runnable=_step_node(node, spec.runnable, name, retry, timeout, modes))
        for node, spec in builder.nodes.items()}
    answer = _approval_answer if interrupts == "approval" else _signal_answer

    async def run(input: Any, thread_id: str = "duro") -> Any:
        compiled = durable.compile(checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": thread_id}}
        out = await _invoke(compiled, input, config, modes)
        while isinstance(out, dict) and out.get("__interrupt__"):
            resume = {}
            for pending in out["__interrupt__"]:
                resume[pending.id] = await answer(pending.value, _node_of(compiled, config))
            out = await _invoke(compiled, Command(resume=resume), config, modes)
        return out

    run.__name__ = run.__qualname__ = name.rsplit(".", 1)[-1]
    return workflow(name=name)(run)


async def _invoke(compiled: Any, input: Any, config: Any, modes: frozenset[str]) -> Any:
    """``compiled.ainvoke(input, config)``, sending its ``values`` chunks to the stream.

    ``ainvoke`` returns the last ``values`` chunk; this streams them all and returns the
    last. They are made here, in workflow code, so ``duro.stream`` records each in the
    history once: a replay runs the graph again and records nothing.
    """
    out: Any = None
    async for out in compiled.astream(input, config, stream_mode="values"):
        if "values" in modes:
            stream({"mode": "values", "node": "", "data": _values_json(out)})
    return out


def _values_json(values: Any) -> Any:
    """A ``values`` chunk as JSON: its ``__interrupt__`` as ``[{"id", "value"}]``."""
    if not isinstance(values, Mapping) or "__interrupt__" not in values:
        return values
    return {**values, "__interrupt__": [{"id": i.id, "value": i.value}
                                        for i in values["__interrupt__"]]}


def step_task(step: Step[..., Any]) -> Any:
    """A LangGraph ``task`` that calls a duro step, for a workflow node's side effects.

    In a workflow node, ``await step_task(send_email)(to)`` runs ``send_email`` as a
    step once: LangGraph keeps a task's result with the checkpoint, so when it runs the
    node again after an ``interrupt()`` the step is not called again.

    Raises:
        InvalidArgumentError: ``step`` is not a ``duro.step``.
    """
    if not isinstance(step, Step):
        raise InvalidArgumentError(f"step_task needs a duro.step, not {step!r}")

    async def call(*args: Any, **kwargs: Any) -> Any:
        return await step(*args, **kwargs)

    call.__name__ = call.__qualname__ = step.name
    return task(name=step.name)(call)


def _step_node(node: str, runnable: Any, graph_name: str, retry: RetryPolicy | None,
               timeout: float | timedelta | None, modes: frozenset[str]) -> Any:
    """The node's function as a step, and the node the graph calls in its place."""

    async def attempt(state: Any) -> Any:
        def write(data: Any) -> None:
            if "custom" in modes:
                stream({"mode": "custom", "node": node, "data": data})

        config: Any = {"configurable": {"__pregel_runtime": Runtime(stream_writer=write)}}
        if "messages" in modes:
            config.update(_messages_config(node))
        # The node's get_config()/get_stream_writer() read this context variable; set
        # it here, or an attempt would see the workflow's graph context (or none).
        token = var_child_runnable_config.set(config)
        try:
            update = await runnable.ainvoke(state, config)
        except GraphInterrupt:
            raise NonRetryableError(
                f"node {node!r} called interrupt() in a step: list it in durable_graph's "
                f"workflow_nodes") from None
        finally:
            var_child_runnable_config.reset(token)
        if "updates" in modes:
            stream({"mode": "updates", "node": node, "data": update})
        return update

    attempt.__name__ = attempt.__qualname__ = node
    as_step: Step[[Any], Any] = Step(attempt, name=f"{graph_name}.{node}", retry=retry,
                                     timeout=timeout)

    async def call(state: Any) -> Any:
        return await as_step(dict(state) if isinstance(state, Mapping) else state)

    return _named(call, node)


def _messages_config(node: str) -> dict[str, Any]:
    """The config that makes a step node's chat models send ``messages`` chunks.

    LangGraph's own handler for ``stream_mode="messages"`` (a callback that also makes
    chat models stream their tokens), fed the metadata Pregel gives a node's run.
    """
    from langgraph.pregel._messages import StreamMessagesHandler

    def emit(chunk: Any) -> None:
        _ns, _mode, (message, metadata) = chunk
        stream({"mode": "messages", "node": node,
                "data": {"message": message.model_dump(mode="json"),
                         "metadata": _json_metadata(metadata)}})

    return {"callbacks": [StreamMessagesHandler(emit, subgraphs=False)],
            "metadata": {"langgraph_node": node, "langgraph_checkpoint_ns": node}}


def _json_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The run metadata's plain values (model name, provider, node, tags)."""
    return {k: v for k, v in metadata.items()
            if not k.startswith("__") and (
                v is None or isinstance(v, str | int | float | bool)
                or (isinstance(v, list) and all(isinstance(t, str) for t in v)))}


def _named(fn: Callable[[Any], Awaitable[Any]], node: str) -> Any:
    from langgraph._internal._runnable import RunnableCallable

    return RunnableCallable(None, fn, name=node)


def _node_of(compiled: Any, config: Any) -> str:
    """The node waiting on the first interrupt (the approval's name)."""
    snapshot = compiled.get_state(config)
    for t in snapshot.tasks:
        if t.interrupts:
            return str(t.name)
    return "interrupt"


async def _signal_answer(value: Any, node: str) -> Any:
    return await wait_for_signal(RESUME_SIGNAL)


async def _approval_answer(value: Any, node: str) -> Any:
    decision = await approval(node, value)
    return {"approved": decision.approved, "by": decision.by, "comment": decision.comment,
            "timed_out": decision.timed_out}
