"""A tenant id carried end to end by headers and interceptors.

An API layer knows who is calling; the work it starts runs elsewhere: in a workflow, its
steps, a child workflow, a step routed to a worker serving another queue. Here:

* a **client interceptor** (``Tenancy``) stamps every start with the caller's tenant,
  in the run's headers (the client code never passes it);
* the run, its steps (``duro.step_info().headers``), its child, and the step that runs
  on the ``reports`` queue's worker all see it;
* a **worker interceptor** (``TenantGuard``) checks every step attempt before it runs
  (a real one would set a database's row-level-security tenant, or a log context) and
  counts them per tenant.

Run it (no network, a SQLite file in a temporary directory)::

    python examples/tenant_headers.py
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import duro
from duro.interceptors import (
    ClientInterceptor,
    ExecuteStepInput,
    StartInput,
    WorkerInterceptor,
)

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller")
"""Who is calling: set by the (imaginary) API layer for each request."""


@duro.step
async def load_invoices(month: str) -> list[int]:
    tenant = duro.step_info().headers["tenant"]
    # A real step would query the tenant's rows only.
    return [120, 80, 45] if tenant == "acme" else [9]


@duro.step(queue="reports")
def render_pdf(month: str, total: int) -> str:
    # Runs on the worker serving "reports" (another process in production).
    return f"{duro.step_info().headers['tenant']}-{month}.pdf ({total} EUR)"


@duro.workflow
async def notify(document: str) -> str:
    return f"mailed {document} to the billing contact of {duro.info().headers['tenant']}"


@duro.workflow
async def monthly_report(month: str) -> dict[str, Any]:
    invoices = await load_invoices(month)
    document = await render_pdf(month, sum(invoices))
    mailed = await duro.execute_child(notify, document)
    return {"tenant": duro.info().headers["tenant"], "document": document,
            "mailed": mailed}


class Tenancy(ClientInterceptor):
    """Every run started by this client belongs to the caller's tenant."""

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[Any]]) -> Any:
        headers = {**(input.headers or {}), "tenant": CALLER.get()}
        return await next(dataclasses.replace(input, headers=headers))


class TenantGuard(WorkerInterceptor):
    """No step runs without a tenant; attempts are counted per tenant."""

    def __init__(self) -> None:
        self.attempts: collections.Counter[str] = collections.Counter()

    async def execute_step(self, input: ExecuteStepInput,
                           next: Callable[[ExecuteStepInput], Awaitable[Any]]) -> Any:
        tenant = input.info.headers.get("tenant")
        if not tenant:
            raise duro.NonRetryableError(f"step {input.step} has no tenant")
        self.attempts[tenant] += 1
        return await next(input)


async def main(db: Path) -> None:
    url = f"sqlite:///{db}"
    guard, reports_guard = TenantGuard(), TenantGuard()
    async with duro.Engine(url, queues=["default"], interceptors=[Tenancy(), guard]) as app, \
            duro.Engine(url, queues=["reports"], interceptors=[reports_guard]):
        for tenant in ("acme", "globex"):
            CALLER.set(tenant)  # what the API layer does per request
            handle = await app.start(monthly_report, "2026-11", id=f"report-{tenant}")
            print(await handle.result(timeout=30))
            info = await handle.describe()
            print(f"  run headers: {dict(info.headers)}")
    print(f"steps run by the app's worker, per tenant: {dict(guard.attempts)}")
    print(f"steps run by the reports worker, per tenant: {dict(reports_guard.attempts)}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "t.db"))
