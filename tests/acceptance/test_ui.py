"""The web UI (issue 19) in a real browser: Debian's Chromium driven by Playwright (the
system binary: no browser download) against a real ``duro serve --worker --auth`` on a
free loopback port, with the test app ``apps/ui_app.py``.

Shown here: signing in with an API token (a bad one is refused); the runs list lists
and filters; a run's page shows its history and what it waits for; a signal sent from
the page's form resumes the run and the page follows it live (SSE) until it completes;
an approval decided in the inbox lets the run go on, and its history records who
decided; an action's error is shown; a failed run shows its error, traceback and
retries; a run is cancelled from its page, another reset to a chosen event; a run of
10,000 events is usable within a second; a token of another namespace sees none of
these runs.

Without Chromium or Playwright the module is skipped, unless ``DURO_REQUIRE_BROWSER``
is set (CI sets it): then it fails. ``DURO_UI_SCREENSHOTS=DIR`` saves the pages shown
(docs/ui.md's pictures come from there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import duro
from tests.acceptance.serving import APPS, DURO_SRC, serve
from tests.conftest import run

CHROMIUM = Path(os.environ.get("DURO_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REFRESH_WAIT_MS = 6500  # the inbox refreshes every 5 s
WAIT_MS = 10_000
"""The longest any one thing may take to show in the page (bounded waits, no sleeps)."""
BIG = 10_000


def _browser_or_skip() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.exists():
        why = f"the browser tests need playwright and {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("DURO_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    return sync_playwright


class Site:
    """The served UI, its tokens, and an HTTP client to its API."""

    def __init__(self, url: str, tokens: dict[str, str], http: httpx.Client,
                 db: str) -> None:
        self.url = url
        self.db = db
        self.tokens = tokens
        self.http = http

    def start(self, workflow: str, workflow_id: str, *args: Any) -> None:
        response = self.http.post("/v1/runs", json={
            "workflow": workflow, "id": workflow_id, "args": list(args),
            "search_attributes": {"customer": "acme"}})
        assert response.status_code == 202, response.text

    def wait_status(self, workflow_id: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:  # long-polls of the API itself: no fixed sleeps
            response = self.http.get(f"/v1/runs/{workflow_id}/result", params={"wait": "1"})
            body: dict[str, Any] = response.json()
            if body["status"] in statuses or time.monotonic() > deadline:
                assert body["status"] in statuses, body
                return body


async def _tokens(db: str) -> dict[str, str]:
    async with duro.Client(db) as client:
        ops, _ = await client.tokens.create("ops", scope="admin")
        viewer, _ = await client.tokens.create("viewer", scope="read", namespace="acme")
    return {"ops": ops, "viewer": viewer}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _browser_or_skip()
    db = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'duro.db'}"
    with _served(db, _prepared(db)) as site:
        site.start("ui_app.order", "ui-order", "apple")
        site.start("ui_app.broken", "ui-broken", "pear")
        site.start("ui_app.nap", "ui-nap", 3600)
        site.wait_status("ui-broken", "failed")
        yield site


def _prepared(db: str) -> dict[str, str]:
    """Migrate a new database and make the tests' tokens, in a thread of its own: the
    browser fixture's Playwright may run an event loop in this one."""
    async def migrated() -> dict[str, str]:
        async with duro.Client(db):
            pass  # opening a client migrates the new database
        return await _tokens(db)

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: run(migrated())).result()


@contextlib.contextmanager
def _served(db: str, tokens: dict[str, str]) -> Iterator[Site]:
    """``duro serve ui_app --worker --auth`` on ``db``, and its API as the ops token."""
    with serve(db, "ui_app", "--worker", "--auth") as served, httpx.Client(
            base_url=served.url, timeout=30,
            headers={"Authorization": f"Bearer {tokens['ops']}"}) as http:
        yield Site(served.url, tokens, http, db)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    profile = tempfile.mkdtemp(prefix="duro-ui-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900},
            timezone_id="UTC")  # the times typed in the forms (backfill) are UTC
        context.set_default_timeout(WAIT_MS)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, errors  # no script error on any page a test opened


def _sign_in(page: Any, site: Site, token: str = "ops", path: str = "") -> None:
    page.goto(f"{site.url}/{path}")
    page.fill("#token", site.tokens[token])
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#who button")


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("DURO_UI_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


def _button(page: Any, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def _confirm(page: Any) -> None:
    page.click("dialog.confirm button.primary")


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def test_sign_in_then_the_runs_list_lists_and_filters(site: Site, page: Any) -> None:
    expect = _expect()
    page.goto(site.url)
    page.fill("#token", "duro_0000000000000000_forged")
    page.click("form.signin button[type=submit]")
    expect(page.locator("form.signin [role=alert]")).to_contain_text("refused")
    _sign_in(page, site)
    rows = page.locator("main table tbody tr")
    expect(rows.filter(has_text="ui-order")).to_have_count(1)
    expect(rows.filter(has_text="ui-broken")).to_have_count(1)
    expect(page.locator(".chip[data-status=failed] strong")).to_have_text("1")
    _shot(page, "runs")
    page.select_option("#f-status", "failed")
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui-broken")
    page.select_option("#f-status", "")
    page.fill("#f-id_prefix", "ui-o")
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ui-order")
    page.fill("#f-id_prefix", "")
    page.fill("#f-search", "customer=nobody")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main")).to_contain_text("no runs match")


def test_a_signal_from_the_form_resumes_the_run_followed_live(site: Site, page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, path="#/runs/ui-order")
    waiting = page.locator("section.waiting")
    # The signal the code awaits, by name, since when (recorded as the run suspended).
    expect(waiting.locator("li[data-what=signal]")).to_contain_text("paid")
    expect(waiting.locator("li[data-what=signal]")).to_contain_text("since")
    expect(page.locator(".tl-row[data-kind=signal]")).to_contain_text("signal paid")
    history = page.locator("table.history tbody")
    expect(history.locator("tr[data-kind=step_completed]")).to_contain_text("ui_app.prepare")
    expect(page.locator("section[aria-label='published state']")).to_contain_text(
        "waiting for payment")
    expect(page.locator(".live")).to_contain_text("live")
    step = history.locator("tr[data-kind=step_completed]")
    step.locator("summary").first.click()  # the step's result, decoded, opened
    expect(step.locator("pre").first).to_contain_text('"plan": "ship apple"')
    page.evaluate("window.scrollTo(0, 0)")  # the picture shows the header and the waits
    _shot(page, "run-waiting")
    page.fill("#a-signal", "paid")
    page.fill("#a-signal_payload", '"ann"')
    _button(page, "Send signal")
    expect(page.locator("dialog.confirm")).to_contain_text('Send signal "paid"')
    _confirm(page)
    # The page follows the run over the events stream: no reload, no click.
    expect(history.locator("tr[data-kind=signal_received]")).to_have_count(1)
    expect(history.locator("tr[data-kind=run_completed]")).to_have_count(1)
    expect(page.locator("section[aria-label=run] .badge").first).to_have_text("completed")
    expect(page.locator("section[aria-label=result]")).to_contain_text("ann")
    expect(waiting).to_be_hidden()
    assert site.wait_status("ui-order", "completed")["result"]["paid_by"] == "ann"
    # Reset to a chosen event: keep those before the signal; the new run waits again.
    history.locator("tr[data-kind=signal_received] button", has_text="reset here").click()
    expect(page.locator("#a-to")).to_have_value("3")
    _button(page, "Reset")
    _confirm(page)
    page.locator(".actions .result a", has_text="ui-order").click()
    expect(page.locator("section[aria-label=run] .badge").first).to_have_text("suspended")
    expect(page.locator("section.waiting")).to_contain_text("signal")
    expect(history.locator("tr")).to_have_count(3)
    expect(page.locator("section[aria-label='earlier runs']")).to_contain_text("completed")


def test_approve_in_the_inbox_and_the_history_says_who(site: Site, page: Any) -> None:
    expect = _expect()
    site.start("ui_app.release", "ui-release", "2.0")
    _sign_in(page, site, path="#/approvals")
    card = page.locator("article.approval", has_text="ui-release")
    expect(card).to_contain_text('"version":"2.0"')
    _shot(page, "approvals")
    card.locator("textarea").fill("ship it")
    card.locator("button", has_text="Approve").click()
    expect(card.locator("[role=status]")).to_contain_text("approved by ops")
    assert site.wait_status("ui-release", "completed")["result"] == "approved by ops"
    page.goto(f"{site.url}/#/runs/ui-release")
    decided = page.locator("table.history tr[data-kind=approval_decided]")
    expect(decided).to_contain_text("ops")
    expect(page.locator(".timeline")).to_contain_text("approved by ops")


def test_an_action_shows_its_result_or_its_error(site: Site, page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, path="#/runs/ui-broken")
    expect(page.locator("section[aria-label=error]")).to_contain_text("no stock for pear")
    expect(page.locator("section[aria-label=error] summary").first).to_have_text("traceback")
    expect(page.locator(".tl-row[data-kind=retry]")).to_have_count(1)
    expect(page.locator(".tl-row[data-kind=backoff]")).to_have_count(1)
    _shot(page, "run-failed")
    result = page.locator(".actions .result")
    _button(page, "Cancel run")  # the run has ended: the server's problem is shown
    _confirm(page)
    expect(result.locator(".error")).to_contain_text("run_not_found")
    page.fill("#a-update", "add")
    page.fill("#a-update_args", "[oops")
    _button(page, "Send update")
    _confirm(page)
    expect(result.locator(".error")).to_contain_text("invalid_json")
    _button(page, "Retry")
    _confirm(page)
    new_run = result.locator("a")
    expect(new_run).to_contain_text("ui-broken")
    site.wait_status("ui-broken", "failed")


def test_cancel_from_the_page_and_see_the_run_end(site: Site, page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, path="#/runs/ui-nap")
    timer = page.locator("section.waiting li[data-what=timer]")
    expect(timer).to_contain_text(re.compile(r"since .* fires in \d+ min"))  # set and due

    _button(page, "Cancel run")
    _confirm(page)
    expect(page.locator("section[aria-label=run] .badge").first).to_have_text("cancelled")
    expect(page.locator("table.history tr[data-kind=cancel_requested]")).to_have_count(1)
    site.wait_status("ui-nap", "cancelled")


def test_a_fired_timer_is_drawn_from_when_it_was_set(site: Site, page: Any) -> None:
    expect = _expect()
    site.start("ui_app.nap_and_work", "ui-nap-work", 0.8, 0.4)
    site.wait_status("ui-nap-work", "completed")
    _sign_in(page, site, path="#/runs/ui-nap-work")
    bar = page.locator(".tl-row[data-kind=timer]")
    expect(bar).to_contain_text("fired")
    # From when it was set (the run's start): the whole 0.8 s, not the 0.4 s from the
    # step's outcome, the event before it (all the history could say without its meta).
    title = bar.get_attribute("title") or ""
    assert re.search(r"timer: (8\d\d|9\d\d) ms", title), title


def test_a_step_queued_for_another_worker_is_not_yet_claimed(site: Site, page: Any) -> None:
    expect = _expect()
    site.start("ui_app.index", "ui-index", "hello")
    _sign_in(page, site, path="#/runs/ui-index")
    step = page.locator("section.waiting li[data-what=step]")
    expect(step).to_contain_text("ui_app.embed")
    expect(step).to_contain_text("on queue gpu, not yet claimed")
    expect(page.locator(".tl-row[data-kind=queued]")).to_contain_text("queued on gpu")
    waits = site.http.get("/v1/runs/ui-index/waiting").json()
    assert [(t["step"], t["queue"], t["claimed_by"]) for t in waits["tasks"]] == [
        ("ui_app.embed", "gpu", None)]


def test_a_truncated_payload_links_to_the_whole_one(site: Site, page: Any) -> None:
    expect = _expect()
    site.start("ui_app.bulky", "ui-bulky", 3000)  # a step result of ~45,000 characters
    site.wait_status("ui-bulky", "completed")
    _sign_in(page, site, path="#/runs/ui-bulky")
    step = page.locator("table.history tbody tr[data-kind=step_completed]")
    step.locator("summary").first.click()
    expect(step.locator("pre").first).not_to_contain_text("row 02999")  # truncated
    link = step.get_by_role("link", name="download the whole payload")
    with page.expect_download() as saving:
        link.click()
    download = saving.value
    assert re.fullmatch(r"ui-bulky-[0-9a-f]{8}-\d+\.json", download.suggested_filename)
    saved = json.loads(Path(download.path()).read_text())
    assert saved["last"] == "row 02999" and len(saved["rows"]) == 3000


def test_the_continue_as_new_chain_links_each_next_run_and_back(site: Site,
                                                                page: Any) -> None:
    expect = _expect()
    site.start("ui_app.laps", "ui-laps", 0, 3)  # four runs of the id, one after another
    assert site.wait_status("ui-laps", "completed")["result"] == 3
    listed = site.http.get("/v1/runs", params={"id_prefix": "ui-laps"}).json()["runs"]
    after = {r["origin_run_id"]: r["run_id"] for r in listed}
    chain = [after[None]]
    while chain[-1] in after:
        chain.append(after[chain[-1]])
    assert len(chain) == 4
    _sign_in(page, site, path=f"#/runs/ui-laps?run_id={chain[0]}")
    later = page.locator("section[aria-label='later runs'] tbody tr")
    expect(later).to_have_count(3)
    for row, run_id in enumerate(chain[1:]):
        expect(later.nth(row)).to_contain_text(run_id[-8:])
    expect(later.last).to_contain_text("completed")
    # The header's link goes to the next run, not to the latest of the id.
    page.locator("p.continued").get_by_role("link", name=chain[1]).click()
    expect(page.locator("section[aria-label=run] .run-id")).to_have_text(chain[1])
    expect(page.locator("section[aria-label='earlier runs'] tbody tr")).to_have_count(1)
    expect(page.locator("section[aria-label='earlier runs']")).to_contain_text(chain[0][-8:])
    expect(later).to_have_count(2)
    page.locator("section[aria-label='later runs']").get_by_role(
        "link", name=chain[3][-8:]).click()
    expect(page.locator("section[aria-label=run] .run-id")).to_have_text(chain[3])
    expect(page.locator("section[aria-label='earlier runs'] tbody tr")).to_have_count(3)
    expect(later).to_have_count(0)


def test_actions_are_refused_on_an_earlier_run_of_the_id(site: Site, page: Any) -> None:
    """The routes act on an id's latest run: the page of an earlier one (continued as
    new) says so and links the latest instead of acting on it."""
    expect = _expect()
    site.start("ui_app.laps", "ui-laps-2", 0, 1)
    assert site.wait_status("ui-laps-2", "completed")["result"] == 1
    runs = site.http.get("/v1/runs", params={"id_prefix": "ui-laps-2"}).json()["runs"]
    first = next(r["run_id"] for r in runs if r["origin_run_id"] is None)
    latest = next(r["run_id"] for r in runs if r["origin_run_id"] is not None)
    _sign_in(page, site, path=f"#/runs/ui-laps-2?run_id={first}")
    expect(page.locator("section[aria-label='later runs'] tbody tr")).to_have_count(1)
    page.locator("#a-signal").fill("poke")
    _button(page, "Send signal")
    result = page.locator("form.actions [role=status]")
    expect(result).to_contain_text("a later run continues this one")
    expect(result.get_by_role("link", name=latest[-8:])).to_be_visible()


def test_ids_spelt_like_path_segments_say_why_they_have_no_page(site: Site,
                                                                page: Any) -> None:
    """A browser drops "." and ".." path segments, even spelt %2E, from the URLs it
    fetches: their pages say so instead of showing (and acting on) another route."""
    expect = _expect()
    _sign_in(page, site, path="#/runs")
    for wid in (".", ".."):
        page.goto(f"{site.url}/#/runs/{wid}")
        expect(page.locator("h1 code")).to_have_text(wid)
        expect(page.locator("main p.error, p.error").first).to_contain_text(
            "a browser cannot ask the API")
        expect(page.locator("form.actions")).to_have_count(0)


def test_the_inbox_shows_every_approval_and_keeps_a_comment_being_written(
        site: Site, page: Any) -> None:
    expect = _expect()
    for i in range(105):
        site.start("ui_app.release", f"ui-many-{i:03d}", f"1.{i}")
    _sign_in(page, site, path="#/approvals")
    expect(page.locator("article.approval", has_text="ui-many-104")).to_be_visible()
    assert page.locator("article.approval", has_text="ui-many-").count() == 105
    card = page.locator("article.approval", has_text="ui-many-000")
    card.locator("textarea").fill("looks good")
    page.locator("h1").click()  # the focus leaves the card: the page refreshes now
    page.wait_for_timeout(REFRESH_WAIT_MS)  # past one refresh (5 s), which must spare it
    expect(card.locator("textarea")).to_have_value("looks good")


def test_a_run_of_ten_thousand_events_is_usable_within_a_second(site: Site,
                                                                page: Any) -> None:
    expect = _expect()
    site.start("ui_app.chatty", "ui-chatty", BIG)
    site.wait_status("ui-chatty", "suspended")
    _sign_in(page, site)
    page.goto(f"{site.url}/#/runs/ui-chatty")
    page.reload()  # measured from a fresh navigation to this run's page
    page.wait_for_selector("table.history tbody tr[data-seq='0']")
    shown_ms = page.evaluate("performance.now()")
    expect(page.locator("nav.pager")).to_contain_text(f"of {BIG // 100 + 1}")
    start = page.evaluate("performance.now()")
    page.select_option("#kind-filter", "run_started")
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    filter_ms = page.evaluate("performance.now()") - start
    page.select_option("#kind-filter", "")
    _button(page, "last »")
    expect(page.locator(f"table.history tr[data-seq='{BIG}']")).to_have_count(1)
    print(f"10,001 events: first page shown {shown_ms:.0f} ms after navigation; "
          f"kind filter {filter_ms:.0f} ms")
    # The figure is the (within 1 s: 330-570 ms measured on a quiet machine, in
    # docs/ui.md); the bound here is 5 s, as the suite runs beside other tests on two
    # cores: what it guards is that the page is paged (the whole history would take far
    # longer), not the machine's speed.
    assert shown_ms < 5000 and filter_ms < 5000


def test_schedules_queues_and_workers(site: Site, page: Any) -> None:
    expect = _expect()
    made = site.http.post("/v1/schedules", json={
        "id": "ui-nightly", "workflow": "ui_app.nap", "args": [0], "cron": "0 3 * * *",
        "timezone": "Asia/Tokyo"})
    assert made.status_code == 201, made.text
    _sign_in(page, site, path="#/schedules")
    row = page.locator("main tbody tr", has_text="ui-nightly")
    expect(row).to_contain_text("03:00:00")  # the next tick, in the schedule's own zone
    expect(row).to_contain_text("Asia/Tokyo")
    row.get_by_role("button", name="Pause").click()
    _confirm(page)
    expect(row.locator(".badge")).to_have_text("paused")
    row.get_by_role("button", name="Trigger").click()
    _confirm(page)
    expect(page.locator("main [role=status] a")).to_contain_text("ui-nightly")
    row.get_by_role("button", name="Backfill…").click()
    page.fill("#bf-start", "2024-05-02T00:00:00")
    page.fill("#bf-end", "2024-05-01T00:00:00")  # its end before its start: refused
    _button(page, "Backfill")
    _confirm(page)
    backfilled = page.locator("form.backfill [role=status]")
    expect(backfilled.locator(".error")).to_contain_text("before its start")
    page.fill("#bf-start", "2024-05-01T00:00:00")
    page.fill("#bf-end", "2024-05-03T00:00:00")
    _button(page, "Backfill")
    _confirm(page)
    expect(backfilled).to_contain_text("started 2 run(s)")
    page.goto(f"{site.url}/#/queues")
    expect(page.locator("main tbody tr", has_text="default")).to_have_count(1)
    page.goto(f"{site.url}/#/workers")
    expect(page.locator("main tbody tr .badge", has_text="live")).to_have_count(1)


def test_the_workers_page_says_which_queues_each_worker_serves(site: Site,
                                                               page: Any) -> None:
    expect = _expect()
    environ = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    environ["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    worker = subprocess.Popen(  # a second worker, of two queues only
        [sys.executable, "-m", "duro", "--db", site.db, "worker", "ui_app",
         "--queue", "ui-reports", "--queue", "ui-mail"],
        env=environ, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT_MS / 1000
        while True:  # until it has registered (each read a round trip: no fixed sleep)
            workers = site.http.get("/v1/workers").json()["workers"]
            mine = [w for w in workers if w["pid"] == worker.pid]
            if mine or time.monotonic() > deadline or worker.poll() is not None:
                break
            time.sleep(0.05)  # a poll interval: the loop ends on the deadline
        assert [w["queues"] for w in mine] == [["ui-reports", "ui-mail"]], workers
        assert [w["queues"] for w in workers if w["pid"] != worker.pid] == [None]
        _sign_in(page, site, path="#/workers")
        rows = page.locator("main tbody tr")
        expect(rows.filter(has_text=mine[0]["worker_id"]).locator(".queues")).to_have_text(
            "ui-reports, ui-mail")
        expect(rows.filter(has_not_text=mine[0]["worker_id"]).locator(".queues")).to_have_text(
            "every queue")
        _audit(page, "workers with their queues")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_create_a_schedule_from_the_form_and_see_its_next_ticks(site: Site, page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, path="#/schedules")
    page.click("details.create summary")
    status = page.locator("form.new-schedule [role=status]")
    _button(page, "Create")  # nothing filled in: refused in the page, nothing sent
    expect(status.locator(".error")).to_contain_text("the schedule id is required")
    page.fill("#s-id", "ui-form")
    page.fill("#s-workflow", "ui_app.nap")
    page.fill("#s-timing", "0 3 * * *")
    page.fill("#s-timezone", "Asia/Tokyo")
    page.fill("#s-args", "[0")
    _button(page, "Create")
    expect(status.locator(".error")).to_contain_text("invalid_json")
    page.fill("#s-args", "[0]")
    page.fill("#s-timing", "61 * * * *")  # the server refuses it: its problem is shown
    _button(page, "Create")
    _confirm(page)
    expect(status.locator(".error")).to_contain_text("invalid_argument")
    page.fill("#s-timing", "0 3 * * *")
    _button(page, "Create")
    _confirm(page)
    expect(status).to_contain_text("created ui-form")
    row = page.locator("main tbody tr", has_text="ui-form")
    expect(row).to_contain_text("Asia/Tokyo")
    row.get_by_role("button", name="Next ticks").click()
    ticks = page.locator("section[aria-label='next ticks of ui-form'] li")
    expect(ticks).to_have_count(5)
    for i in range(5):  # 03:00 in Tokyo each day, shown in Tokyo (the browser is in UTC)
        expect(ticks.nth(i)).to_contain_text("03:00:00")
    _shot(page, "schedules")


AUDIT = (Path(__file__).parent / "a11y_audit.js").read_text()
"""The accessibility audit (labels, names, alt texts, headings, landmarks, ids, tab
order, language, title, table headers): a function evaluated in the page."""


def _audit(page: Any, what: str) -> None:
    problems = page.evaluate(AUDIT)
    assert not problems, f"{what}: {problems}"


def test_the_audit_finds_what_it_checks(browser: Any) -> None:
    page = browser.new_page()
    try:
        page.set_content("""<html><body><div>loose text</div><main><h1>a</h1><h3>skipped</h3>
            <input id="x"><input id="x" aria-label="named"><button></button><a href="#"></a>
            <img src="data:,"><nav></nav><span tabindex="2">t</span><table></table></main>
            <main></main></body></html>""")
        found = "\n".join(page.evaluate(AUDIT))
    finally:
        page.close()
    for problem in ["control without a label: <input#x", "button without a name",
                    "link without a name", "image without alt text",
                    "heading level skipped: h1 then <h3", "not exactly one main landmark",
                    "no banner landmark", "navigation without a name",
                    "content outside the landmarks: <div", "id used 2 times: x",
                    "positive tabindex", "the page has no lang", "the page has no title",
                    "table without headers"]:
        assert problem in found, (problem, found)


def test_every_page_passes_the_accessibility_audit(site: Site, page: Any) -> None:
    expect = _expect()
    page.goto(site.url)
    expect(page.locator("#token")).to_be_focused()
    _audit(page, "sign-in")
    _sign_in(page, site)
    expect(page.locator("main table tbody tr").first).to_be_visible()
    _audit(page, "runs")
    for path, ready in [("#/runs/ui-order", "table.history tbody tr"),
                        ("#/runs/ui-broken", "section[aria-label=error]"),
                        ("#/approvals?status=all", "main article, main p.muted"),
                        ("#/schedules", "main tbody tr, main p.muted"),
                        ("#/queues", "main tbody tr"), ("#/workers", "main tbody tr")]:
        page.goto(f"{site.url}/{path}")
        expect(page.locator(ready).first).to_be_visible()
        if path == "#/schedules":
            page.click("details.create summary")
        _audit(page, path)
    page.goto(f"{site.url}/#/runs/ui-broken")
    _button(page, "Cancel run")
    expect(page.locator("dialog.confirm")).to_be_visible()
    _audit(page, "the confirmation dialog")
    page.keyboard.press("Escape")  # the dialog closes; nothing is sent
    expect(page.locator("dialog.confirm")).to_have_count(0)


def test_the_keyboard_alone_reaches_and_activates_the_controls(site: Site, page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, path="#/runs/ui-broken")
    page.reload()  # a fresh page (the token stays in the tab): nothing has the focus
    expect(page.locator("section[aria-label=error]")).to_be_visible()
    page.keyboard.press("Tab")  # the first stop: the link that skips the header
    skip = page.locator("#skip")
    expect(skip).to_be_focused()
    outline = "getComputedStyle(document.activeElement).outlineStyle"
    assert page.evaluate(outline) != "none"  # the focus is visible
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    order = []
    for _ in range(4):  # the tab order is the document's: the history's controls first
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || "
                                   "document.activeElement.textContent.trim()"))
        assert page.evaluate(outline) != "none", order
    assert "traceback" in order, order  # the error's details, in the document's order
    page.focus("#a-query")
    page.keyboard.type("nothing")
    page.keyboard.press("Enter")  # Enter asks the query (its fieldset's button)
    expect(page.locator(".actions .result .error")).to_be_visible()
    page.focus("#a-signal")
    page.keyboard.type("paid")
    page.keyboard.press("Enter")  # the signal asks for confirmation first
    expect(page.locator("dialog.confirm")).to_contain_text('Send signal "paid"')
    expect(page.locator("dialog.confirm button", has_text="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("dialog.confirm button.primary")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # "Cancel": nothing is sent
    expect(page.locator("dialog.confirm")).to_have_count(0)


OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")].filter((el) => {
    const box = el.getBoundingClientRect();
    // What sticks out of the window and is not inside a box that scrolls on its own.
    return box.width && box.right > width + 1 && !el.closest(".scroll, pre, dialog");
  }).map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
  const scrolled = [...document.querySelectorAll(".scroll")]
    .filter((el) => el.scrollWidth > el.clientWidth + 1).length;
  return { page: document.documentElement.scrollWidth, width, wide: wide.slice(0, 8), scrolled };
}"""


def test_a_narrow_window_has_no_horizontal_scroll(site: Site, page: Any) -> None:
    expect = _expect()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    _sign_in(page, site)
    expect(page.locator("main table tbody tr").first).to_be_visible()
    seen = page.evaluate(OVERFLOW)
    # Not even the list scrolls sideways in its box: its rows stack as cards.
    assert seen["page"] <= seen["width"] and not seen["wide"] and not seen["scrolled"], seen
    _shot(page, "narrow-runs")
    page.goto(f"{site.url}/#/runs/ui-broken")
    expect(page.locator("section[aria-label=error]")).to_be_visible()
    expect(page.locator(".tl-row").first).to_be_visible()
    seen = page.evaluate(OVERFLOW)
    assert seen["page"] <= seen["width"] and not seen["wide"], seen
    _shot(page, "narrow-run")


def test_a_token_of_another_namespace_sees_none_of_these_runs(site: Site,
                                                              page: Any) -> None:
    expect = _expect()
    _sign_in(page, site, token="viewer")
    expect(page.locator("main")).to_contain_text("no runs match")
    page.goto(f"{site.url}/#/runs/ui-order")
    expect(page.locator("section[aria-label=run] .error")).to_contain_text("run_not_found")
    page.goto(f"{site.url}/#/approvals?status=all")
    expect(page.locator("main")).to_contain_text("nothing waits")


@pytest.mark.postgres
def test_on_postgresql_a_run_waits_for_its_signal_and_its_queued_step(
        pg_url: str, browser: Any) -> None:
    """The same pages over a PostgreSQL store (the tests above use SQLite): the waits
    recorded as the run suspends, the unclaimed step task, a signal from the form."""
    expect = _expect()
    _browser_or_skip()
    with _served(pg_url, _prepared(pg_url)) as pg:
        pg.start("ui_app.order", "pg-order", "plum")
        pg.start("ui_app.index", "pg-index", "hello")
        page = browser.new_page()
        try:
            _sign_in(page, pg, path="#/runs/pg-index")
            expect(page.locator("section.waiting li[data-what=step]")).to_contain_text(
                "on queue gpu, not yet claimed")
            page.goto(f"{pg.url}/#/runs/pg-order")
            expect(page.locator("section.waiting li[data-what=signal]")).to_contain_text("paid")
            page.fill("#a-signal", "paid")
            page.fill("#a-signal_payload", '"bo"')
            _button(page, "Send signal")
            _confirm(page)
            expect(page.locator("section[aria-label=run] .badge").first).to_have_text("completed")
            expect(page.locator("section[aria-label=result]")).to_contain_text("bo")
        finally:
            page.close()
