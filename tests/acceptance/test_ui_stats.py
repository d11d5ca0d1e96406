"""The web UI's stats page (issues 18 and 19) in a real browser, against a real ``duro
serve --worker --auth`` (test_ui.py's site, an instance of its own): every figure the
page shows for each workflow, step and error type equals what ``GET /v1/stats`` answers,
unfiltered and filtered by workflow; a bad window is refused with the API's message."""

from __future__ import annotations

import time
from typing import Any

from tests.acceptance.test_ui import WAIT_MS, Site, _expect, _sign_in, browser, page, site

__all__ = ["browser", "page", "site"]  # test_ui.py's fixtures (this module's own instances)


def _stats(site: Site, **params: str) -> dict[str, Any]:
    response = site.http.get("/v1/stats", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _settled(site: Site) -> dict[str, Any]:
    """The stats once the site's runs stand still (ui-order waits for a signal after its
    step, ui-broken failed, ui-nap sleeps for an hour)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        stats = _stats(site)
        if any(s["step"] == "ui_app.prepare" and s["completed"] == 1 for s in stats["steps"]):
            return stats
        assert time.monotonic() < deadline, stats
        site.http.get("/v1/runs/ui-order/result", params={"wait": "0.2"})


def _check_rows(page: Any, table: str, rows: list[dict[str, Any]],
                key: Any) -> None:
    """Each API row is one row of the page's table, each figure cell equal to it."""
    expect = _expect()
    shown = page.locator(f"section[aria-label='{table}'] tbody tr")
    expect(shown).to_have_count(len(rows))
    for want in rows:
        selector = "".join(f"[data-{k}='{v}']" for k, v in key(want).items())
        row = page.locator(f"section[aria-label='{table}'] tbody tr{selector}")
        expect(row).to_have_count(1)
        for td in row.locator("td").all():
            field = td.get_attribute("data-key")
            value: Any = want
            for part in field.split("."):
                value = value[part]
            got = td.get_attribute("data-value")
            assert (None if got == "null" else float(got)) == value, (field, want)


def _check_page(page: Any, stats: dict[str, Any]) -> None:
    _check_rows(page, "per workflow", stats["workflows"],
                lambda w: {"workflow": w["workflow"]})
    _check_rows(page, "per step", stats["steps"],
                lambda s: {"workflow": s["workflow"], "step": s["step"]})
    _check_rows(page, "top errors", stats["errors"],
                lambda e: {"workflow": e["workflow"], "step": e["step"] or ""})


def test_the_stats_page_shows_the_apis_figures(site: Site, page: Any) -> None:
    expect = _expect()
    everything = _settled(site)
    _sign_in(page, site, path="#/stats")
    expect(page.locator("header nav a[data-nav=stats]")).to_have_attribute(
        "aria-current", "page")
    assert {w["workflow"] for w in everything["workflows"]} == {
        "ui_app.order", "ui_app.broken", "ui_app.nap"}
    _check_page(page, everything)
    broken = page.locator("section[aria-label='per workflow'] "
                          "tr[data-workflow='ui_app.broken']")
    expect(broken.locator("td[data-key=failed]")).to_have_text("1")
    expect(broken.locator("td[data-key=failure_rate]")).to_have_text("100.0 %")
    expect(page.locator("section[aria-label='top errors'] tbody tr").first).to_contain_text(
        "ValueError")
    # Accessible: a caption and column headers on each table, labelled filters.
    assert page.locator("main table caption").count() == 3
    expect(page.get_by_label("workflow", exact=True)).to_have_count(1)

    page.fill("#s-workflow", "ui_app.broken")
    page.fill("#s-since", "1h")
    page.click("form.filters button[type=submit]")
    expect(page.locator("section[aria-label='per workflow'] tbody tr")).to_have_count(1)
    _check_page(page, _stats(site, workflow="ui_app.broken", since="1h"))

    page.fill("#s-since", "yesterday-ish")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main [role=alert]")).to_contain_text("not a duration")
