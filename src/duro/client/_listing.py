"""Listing runs: filters, pages with an opaque cursor, an iterator over every page, and
the read models of runs (with their search attributes)."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta

from duro._checks import check_count, check_id, check_seconds
from duro._clock import Clock
from duro._history import SearchValue
from duro._search import RunFilter, decode_cursor, encode_cursor, epoch
from duro._stats import Stats
from duro.client._records import RunInfo, RunPage
from duro.serde import PayloadConverter
from duro.store import RunRecord, Store

__all__ = ["MAX_PAGE_SIZE", "Listings", "stats_window"]

MAX_PAGE_SIZE = 10_000
"""Most runs one page may hold."""


class Listings:
    """The listing methods of :class:`~duro.Client` (a part of it, by concern)."""

    store: Store
    payloads: PayloadConverter
    namespace: str | None
    clock: Clock

    def _require_open(self) -> None:
        raise NotImplementedError

    async def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
    ) -> builtins.list[RunInfo]:
        """Up to ``limit`` runs, newest first, that match every filter given (see
        :meth:`list_page`, which also pages).

        Raises:
            InvalidArgumentError: A negative limit, or a filter :meth:`list_page` refuses.
        """
        self._require_open()
        where = RunFilter.of(status=status, name=name, created_after=created_after,
                             created_before=created_before, id_prefix=id_prefix,
                             search_attributes=search_attributes)
        check_count(limit, "limit", minimum=0)
        return await self.run_infos(await self.store.list_runs(
            limit=limit, namespace=self.namespace, **where.store_args()))

    async def list_page(
        self, *, status: str | None = None, name: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None, page_size: int = 100,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs of the client's namespace, newest first (ties by run id), that
        match every filter given; pass its ``next_cursor`` back as ``cursor`` for the
        next one.

        The order is total and a cursor is a position in it: paging to the end returns
        every matching run once, in order, whatever runs are started meanwhile (newer
        runs come before the first page, not in later ones). Each page is one index
        range scan (see ``docs/guide.md``, "Finding runs").

        Args:
            status: Only runs with this status (``"running"``, ``"completed"``...).
            name: Only runs of this workflow name.
            created_after: Only runs created at or after this time (a timezone-aware
                datetime, or epoch seconds).
            created_before: Only runs created strictly before this time.
            id_prefix: Only runs whose workflow id starts with this.
            search_attributes: Only runs whose attributes hold each of these values
                (``12`` and ``12.0`` match each other, not ``"12"`` or ``True``).
            page_size: Runs per page, 1 to 10,000.
            cursor: Where the previous page ended (its ``next_cursor``).

        Raises:
            InvalidArgumentError: A malformed cursor, an unknown status, a naive
                datetime, a page size out of range, a search attribute refused (as at a
                start, or ``None``): nothing is read.
        """
        self._require_open()
        where = RunFilter.of(status=status, name=name, created_after=created_after,
                             created_before=created_before, id_prefix=id_prefix,
                             search_attributes=search_attributes)
        check_count(page_size, "page_size", maximum=MAX_PAGE_SIZE)
        after = None if cursor is None else decode_cursor(cursor)
        return await self._page(where, page_size, after)

    def iter_runs(
        self, *, status: str | None = None, name: str | None = None,
        created_after: datetime | float | None = None,
        created_before: datetime | float | None = None, id_prefix: str | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None, page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Every run that matches the filters, newest first, read page by page:
        ``async for run in client.iter_runs(status="failed"): ...``. The arguments are
        :meth:`list_page`'s, checked at the call.

        Raises:
            InvalidArgumentError: As :meth:`list_page` (at the call, before any read).
        """
        self._require_open()
        where = RunFilter.of(status=status, name=name, created_after=created_after,
                             created_before=created_before, id_prefix=id_prefix,
                             search_attributes=search_attributes)
        check_count(page_size, "page_size", maximum=MAX_PAGE_SIZE)
        return self._iterate(where, page_size)

    async def _iterate(self, where: RunFilter, page_size: int) -> AsyncIterator[RunInfo]:
        after: tuple[float, str] | None = None
        while True:
            page = await self._page(where, page_size, after)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            after = decode_cursor(page.next_cursor)

    async def _page(self, where: RunFilter, page_size: int,
                    after: tuple[float, str] | None) -> RunPage:
        # One more row than the page says whether another page follows, so the last
        # page has no cursor (no empty page to fetch).
        records = await self.store.list_runs(limit=page_size + 1, after=after,
                                             namespace=self.namespace, **where.store_args())
        more = len(records) > page_size
        records = records[:page_size]
        last = records[-1] if more else None
        return RunPage(runs=await self.run_infos(records),
                       next_cursor=None if last is None
                       else encode_cursor(last.created_at, last.run_id))

    async def run_infos(self, records: Sequence[RunRecord]) -> builtins.list[RunInfo]:
        """Read models of runs, their results decoded through the codecs, with their
        search attributes (one read for all of them)."""
        if not records:
            return []
        results = await self.payloads.decode_many([r.result for r in records])
        attributes = await self.store.search_attributes([r.run_id for r in records])
        return [RunInfo.from_record(r if result is r.result
                                    else dataclasses.replace(r, result=result),
                                    attributes.get(r.run_id))
                for r, result in zip(records, results, strict=True)]

    async def run_info(self, record: RunRecord) -> RunInfo:
        """The read model of one run (see :meth:`run_infos`)."""
        return (await self.run_infos([record]))[0]

    async def stats(self, *, since: float | timedelta | datetime | None = None,
                    workflow: str | None = None) -> Stats:
        """Analytics of the client's namespace: per workflow, the runs created in the
        window by how they stand now, with their durations' percentiles; per step, its
        attempts, retries and failures with their durations' percentiles; the most
        frequent error types. Aggregated in the store from the runs and their histories;
        every field is defined in ``docs/observability.md``.

        Args:
            since: The window's start: a timedelta (that long before now), a
                timezone-aware datetime, or epoch seconds. None: every run.
            workflow: Only the runs of this workflow name.

        Raises:
            InvalidArgumentError: A negative or non-finite timedelta, a naive datetime,
                a workflow name that is not a valid name: nothing is read.
        """
        self._require_open()
        start = stats_window(since, self.clock.now())
        name = None if workflow is None else check_id(workflow, "workflow name")
        return await self.store.stats(since=start, workflow=name, namespace=self.namespace)


def stats_window(since: float | timedelta | datetime | None, now: float) -> float | None:
    """The window's start of :meth:`Listings.stats` as epoch seconds (None: all time).

    Raises:
        InvalidArgumentError: As :meth:`Listings.stats` says.
    """
    if isinstance(since, timedelta):
        ago = check_seconds(since, "since", zero=True)
        assert ago is not None
        return now - ago
    return epoch(since, "since")
