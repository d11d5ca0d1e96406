// The list pages: runs (filters, counts per status, cursor pages, auto-refresh), the
// approval inbox, schedules, queues and workers.

import {
  ApiError, api, confirmDialog, errorBox, fmtDuration, fmtTime, h, jsonView, readJson, relative,
  replace, runLink, statusBadge, table,
} from "./lib.js";

const STATUSES = ["pending", "running", "suspended", "parked", "completed", "failed",
                  "cancelled", "terminated", "timed_out", "continued_as_new"];
const COUNTED = ["completed", "failed", "timed_out", "cancelled", "terminated", "continued_as_new"];
const REFRESH_MS = 5000;
// The counts aggregate every run of the namespace (GET /v1/stats): refreshed less often
// than the page of runs, so an open tab does not keep the store busy.
const COUNTS_EVERY = 6;

// A time typed in a datetime-local field, as ISO 8601 with the browser's offset.
function isoOf(local) {
  if (!local) return "";
  const date = new Date(local);
  return isNaN(date) ? "" : date.toISOString();
}

export function runsPage(root, params, signal) {
  const filters = Object.fromEntries(params);
  const cursors = [];  // the cursors of the pages before this one ("previous")
  let cursor = filters.cursor || "";
  const counts = h("div", { class: "counts", role: "group", "aria-label": "counts per status" });
  const list = h("div", { "aria-live": "polite" });
  const input = (name, label, attrs = {}) => h("div", { class: "field" }, h("label", { for: `f-${name}` }, label),
    h("input", { id: `f-${name}`, name, value: filters[name] || "", ...attrs }));
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const [k, v] of data) if (v && k !== "auto") next.set(k, v);
    location.hash = `#/runs?${next}`;
  } },
    h("div", { class: "field" }, h("label", { for: "f-status" }, "status"),
      h("select", { id: "f-status", name: "status" }, h("option", { value: "" }, "any"),
        STATUSES.map((s) => h("option", { value: s, selected: filters.status === s }, s)))),
    input("workflow", "workflow"), input("id_prefix", "id prefix"),
    input("created_after", "created after", { type: "datetime-local", step: "1" }),
    input("created_before", "created before", { type: "datetime-local", step: "1" }),
    input("search", "search attribute", { placeholder: "key=value" }),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "auto", id: "f-auto", checked: true }), " auto-refresh"));
  replace(root, h("h1", {}, "Runs"), form, counts, list);

  function query() {
    const out = { status: filters.status, workflow: filters.workflow, id_prefix: filters.id_prefix,
                  created_after: isoOf(filters.created_after), created_before: isoOf(filters.created_before),
                  limit: 50, cursor };
    if (filters.search && filters.search.includes("=")) {
      const [key, ...rest] = filters.search.split("=");
      const text = rest.join("=");
      // A number or boolean as JSON; anything else as a JSON string (docs/http.md).
      out[`search.${key.trim()}`] = /^(-?\d+(\.\d+)?|true|false)$/.test(text) ? text : JSON.stringify(text);
    }
    return out;
  }

  async function loadCounts() {
    const stats = await api("GET", "/v1/stats", { params: {
      workflow: filters.workflow, since: isoOf(filters.created_after) }, signal });
    const sum = (key) => stats.workflows.reduce((n, w) => n + (w[key] || 0), 0);
    const chip = (label, status, n) => h("a", {
      class: `chip s-${status || "live"}${filters.status === status ? " on" : ""}`,
      href: `#/runs?${new URLSearchParams({ ...strip(filters), ...(status ? { status } : {}) })}`,
      "data-status": status || "live" }, `${label} `, h("strong", {}, String(n)));
    replace(counts, chip("started", "", sum("started")), chip("live", "", sum("live")),
      COUNTED.map((s) => chip(s.replace(/_/g, " "), s, sum(s))));
  }

  let loads = 0;
  async function load() {
    try {
      const page = await api("GET", "/v1/runs", { params: query(), signal });
      replace(list, table(["workflow id", "status", "workflow", "created", "duration", "events", "search attributes"],
        page.runs.map((r) => [runLink(r.workflow_id, r.run_id), statusBadge(r.status), r.workflow_name,
          fmtTime(r.created_at), r.duration !== null ? fmtDuration(r.duration) : "…",
          String(r.history_length), Object.entries(r.search_attributes || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")]),
        { empty: "no runs match" }),
      h("nav", { class: "pager", "aria-label": "run pages" },
        h("button", { type: "button", disabled: !cursors.length, onclick: () => { cursor = cursors.pop(); load(); } }, "‹ newer"),
        h("button", { type: "button", disabled: !page.next_cursor, onclick: () => { cursors.push(cursor); cursor = page.next_cursor; load(); } }, "older ›")));
      if (loads++ % COUNTS_EVERY === 0) await loadCounts();
    } catch (exc) {
      if (!signal.aborted) replace(list, errorBox(exc));
    }
  }
  load();
  const timer = setInterval(() => {
    // Refresh only the first page while nobody types in the filters.
    if (form.querySelector("#f-auto").checked && !cursors.length && !form.contains(document.activeElement)) load();
  }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

function strip(filters) {
  const out = { ...filters };
  delete out.status; delete out.cursor;
  return out;
}

const MAX_APPROVALS = 1000;  // cards on the inbox page at most

export function approvalsPage(root, params, signal) {
  const status = params.get("status") || "pending";
  const body = h("div", {});
  replace(root, h("h1", {}, "Approvals"),
    h("nav", { class: "tabs", "aria-label": "approval status" }, ["pending", "approved", "rejected", "timed_out", "all"].map((s) =>
      h("a", { href: `#/approvals?status=${s}`, class: s === status ? "on" : "", "aria-current": s === status ? "page" : false }, s.replace("_", " ")))),
    body);
  async function load() {
    try {
      // Every page (the list is oldest first: the newest would be cut off), up to a bound.
      const approvals = [];
      let cursor;
      do {
        const page = await api("GET", "/v1/approvals", { params: { status, limit: 100, cursor }, signal });
        approvals.push(...page.approvals);
        cursor = page.next_cursor;
      } while (cursor && approvals.length < MAX_APPROVALS);
      replace(body, approvals.length ? approvals.map(card) : h("p", { class: "muted" }, "nothing waits for a decision"),
        cursor ? h("p", { class: "muted" }, `the first ${approvals.length} shown; decide some to see the rest`) : null);
    } catch (exc) {
      if (!signal.aborted) replace(body, errorBox(exc));
    }
  }
  function card(a) {
    const comment = h("textarea", { id: `c-${a.approval_id}`, rows: 2, name: "comment" });
    const result = h("div", { role: "status", "aria-live": "polite" });
    const decide = (verdict) => async () => {
      try {
        const done = await api("POST", `/v1/approvals/${encodeURIComponent(a.approval_id)}/${verdict}`,
          { body: comment.value.trim() ? { comment: comment.value.trim() } : {} });
        replace(result, h("strong", {}, done.status), ` by ${done.decided_by}`);
        setTimeout(load, 800);
      } catch (exc) {
        replace(result, errorBox(exc));
      }
    };
    return h("article", { class: "card approval", "data-approval": a.approval_id, "aria-label": `approval ${a.name}` },
      h("h2", {}, h("code", {}, a.name), " ", statusBadge(a.status), " · ", runLink(a.workflow_id, a.run_id), " ",
        h("span", { class: "muted" }, a.workflow_name)),
      h("p", { class: "muted" }, `requested ${fmtTime(a.requested_at)}`,
        a.deadline ? ` · deadline ${fmtTime(a.deadline)} (${relative(new Date(a.deadline))})` : "",
        a.decided_by ? ` · decided by ${a.decided_by} at ${fmtTime(a.decided_at)}` : ""),
      h("div", {}, h("strong", {}, "context "), jsonView(a.context, { open: true })),
      a.comment ? h("p", {}, "comment: ", a.comment) : null,
      a.status === "pending" ? h("div", { class: "decide" },
        h("label", { for: `c-${a.approval_id}` }, "comment"), comment,
        h("div", { class: "row-actions" },
          h("button", { type: "button", class: "primary", onclick: decide("approve") }, "Approve"),
          h("button", { type: "button", class: "danger", onclick: decide("reject") }, "Reject"))) : null,
      result);
  }
  load();
  // Not while a comment is being written (focused, or typed and not yet sent).
  const writing = () => [...root.querySelectorAll("textarea")].some((t) => t.value.trim()) ||
    (root.contains(document.activeElement) && document.activeElement !== document.body);
  const timer = setInterval(() => { if (!writing()) load(); }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

export function schedulesPage(root, params, signal) {
  const body = h("div", {});
  const result = h("div", { role: "status", "aria-live": "polite" });
  replace(root, h("h1", {}, "Schedules"), createForm(() => load()), result, body);
  const act = (title, path, confirmText) => async () => {
    try {
      if (!(await confirmDialog(title, confirmText))) return;
      const done = await api("POST", path, { body: {} });
      replace(result, h("strong", {}, title), " ", done && done.run_id ? ["started ", runLink(done.workflow_id, done.run_id)] : "done");
      load();
    } catch (exc) {
      replace(result, errorBox(exc));
    }
  };
  // Backfill: the runs of the ticks between two times that have none (a small form).
  function backfill(s) {
    const start = h("input", { id: "bf-start", type: "datetime-local", step: "1", required: true });
    const end = h("input", { id: "bf-end", type: "datetime-local", step: "1", required: true });
    const out = h("div", { role: "status", "aria-live": "polite" });
    const go = async (event) => {
      event.preventDefault();
      const label = `Start the runs of ${s.schedule_id}'s ticks from ${start.value} to ${end.value} that have none?`;
      if (!(await confirmDialog("backfill", label))) return;
      try {
        const done = await api("POST", `/v1/schedules/${encodeURIComponent(s.schedule_id)}/backfill`,
          { body: { start: isoOf(start.value), end: isoOf(end.value) } });
        replace(out, h("strong", {}, "backfill"), ` started ${done.started.length} run(s) `,
          done.started.slice(0, 20).map((r) => [runLink(r.workflow_id, r.run_id), " "]));
        load();
      } catch (exc) {
        replace(out, errorBox(exc));
      }
    };
    replace(result, h("form", { class: "card backfill", "aria-label": `backfill ${s.schedule_id}`, onsubmit: go },
      h("h2", {}, "Backfill ", h("code", {}, s.schedule_id)),
      h("div", { class: "filters" },
        h("div", { class: "field" }, h("label", { for: "bf-start" }, "from (your time zone)"), start),
        h("div", { class: "field" }, h("label", { for: "bf-end" }, "to"), end),
        h("button", { type: "submit", class: "primary" }, "Backfill")), out));
    start.focus();
  }
  // The next ticks, in the schedule's own time zone (GET /v1/schedules/{id}/ticks).
  async function ticks(s) {
    try {
      const next = await api("GET", `/v1/schedules/${encodeURIComponent(s.schedule_id)}/ticks`,
        { params: { count: 5 }, signal });
      replace(result, h("section", { class: "card", "aria-label": `next ticks of ${s.schedule_id}` },
        h("h2", {}, "Next ticks of ", h("code", {}, s.schedule_id), ` (${next.timezone})`),
        next.ticks.length ? h("ol", { class: "ticks" }, next.ticks.map((t) => h("li", {}, zoned(t, next.timezone),
          h("span", { class: "muted" }, ` · ${relative(new Date(t))}`))))
          : h("p", { class: "muted" }, "none"),
        next.paused ? h("p", { class: "muted" }, "paused: resuming recomputes them") : null));
    } catch (exc) {
      replace(result, errorBox(exc));
    }
  }
  async function load() {
    try {
      const { schedules } = await api("GET", "/v1/schedules", { signal });
      replace(body, table(["id", "workflow", "spec", "time zone", "next tick", "last", "fired / missed", ""],
        schedules.map((s) => {
          const id = encodeURIComponent(s.schedule_id);
          return [h("code", {}, s.schedule_id), s.workflow_name,
            s.cron ? `cron ${s.cron}` : `every ${fmtDuration(s.every)}`, s.timezone,
            s.paused ? h("span", {}, statusBadge("paused"), s.note ? ` ${s.note}` : "")
              : s.next_fire_at ? [zoned(s.next_fire_at, s.timezone), h("div", { class: "muted" }, relative(new Date(s.next_fire_at)))] : "-",
            s.last_workflow_id ? runLink(s.last_workflow_id, null) : "-", `${s.fired} / ${s.missed}`,
            h("span", { class: "row-actions" },
              s.paused ? h("button", { type: "button", onclick: act("resume", `/v1/schedules/${id}/resume`, `Resume ${s.schedule_id}?`) }, "Resume")
                : h("button", { type: "button", onclick: act("pause", `/v1/schedules/${id}/pause`, `Pause ${s.schedule_id}?`) }, "Pause"),
              h("button", { type: "button", onclick: act("trigger", `/v1/schedules/${id}/trigger`, `Start a run of ${s.schedule_id} now?`) }, "Trigger"),
              h("button", { type: "button", onclick: () => backfill(s) }, "Backfill…"),
              h("button", { type: "button", onclick: () => ticks(s) }, "Next ticks"))];
        }), { empty: "no schedules" }));
    } catch (exc) {
      if (!signal.aborted) replace(body, errorBox(exc));
    }
  }
  load();
}

// A new schedule (POST /v1/schedules): id, workflow, cron or interval, time zone, the
// arguments as a JSON array. What the page can tell is refused before anything is sent;
// the rest (an unknown zone, a cron expression that never fires) is the server's problem.
function createForm(created) {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const field = (name, label, input) => h("div", { class: "field" }, h("label", { for: `s-${name}` }, label), input);
  const input = (name, attrs = {}) => h("input", { id: `s-${name}`, name, ...attrs });
  const out = h("div", { role: "status", "aria-live": "polite" });
  const kind = h("select", { id: "s-kind", name: "kind" },
    h("option", { value: "cron" }, "cron"), h("option", { value: "every" }, "every (seconds)"));
  // novalidate: the page's own checks say what is wrong in the form's status line.
  const form = h("form", { class: "card new-schedule", "aria-label": "new schedule", novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    const value = (name) => form.querySelector(`[name=${name}]`).value.trim();
    try {
      for (const [name, what] of [["id", "the schedule id"], ["workflow", "the workflow"]]) {
        if (!value(name)) throw new ApiError(0, "invalid_argument", `${what} is required`);
      }
      const timing = value("timing");
      if (!timing) throw new ApiError(0, "invalid_argument", `the ${kind.value === "cron" ? "cron expression" : "interval"} is required`);
      const every = Number(timing);
      if (kind.value === "every" && !(every > 0)) throw new ApiError(0, "invalid_argument", "the interval must be a number of seconds above 0");
      const args = readJson(value("args"), "the arguments") ?? [];
      if (!Array.isArray(args)) throw new ApiError(0, "invalid_argument", "the arguments must be a JSON array");
      const body = { id: value("id"), workflow: value("workflow"), args,
                     ...(kind.value === "cron" ? { cron: timing } : { every }),
                     ...(value("timezone") ? { timezone: value("timezone") } : {}) };
      if (!(await confirmDialog("create schedule", `Create schedule ${body.id} of ${body.workflow}?`))) return;
      const made = await api("POST", "/v1/schedules", { body });
      replace(out, h("strong", {}, "created"), " ", h("code", {}, made.schedule_id), made.next_fire_at
        ? ` · next tick ${zoned(made.next_fire_at, made.timezone)}` : "");
      created();
    } catch (exc) {
      replace(out, errorBox(exc));
    }
  } },
    h("h2", {}, "New schedule"),
    h("div", { class: "filters" },
      field("id", "schedule id", input("id", { required: true, autocomplete: "off" })),
      field("workflow", "workflow", input("workflow", { required: true, placeholder: "module.workflow" })),
      field("kind", "timing", kind),
      field("timing", "cron expression or seconds", input("timing", { required: true, placeholder: "0 3 * * *" })),
      field("timezone", "time zone", input("timezone", { list: "s-zones", placeholder: "UTC", autocomplete: "off" })),
      field("args", "arguments (JSON array)", input("args", { placeholder: "[]" })),
      h("button", { type: "submit", class: "primary" }, "Create")),
    h("datalist", { id: "s-zones" }, zones.map((z) => h("option", { value: z }))),
    out);
  return h("details", { class: "create" }, h("summary", {}, "New schedule…"), form);
}

// A time in the schedule's own zone (the browser knows the IANA zones).
function zoned(value, zone) {
  try {
    return new Date(value).toLocaleString("sv-SE", {
      timeZone: zone, timeZoneName: "short", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  } catch {
    return fmtTime(value);
  }
}

export function queuesPage(root, params, signal) {
  const body = h("div", {});
  replace(root, h("h1", {}, "Queues"), body);
  api("GET", "/v1/queues", { signal }).then(({ queues }) => replace(body, table(
    ["queue", "pending", "running", "suspended", "started last period", "concurrency", "per worker", "rate limit"],
    queues.map((q) => [h("code", {}, q.queue), String(q.pending), String(q.running), String(q.suspended),
      String(q.started_last_period), lim(q.limits.concurrency), lim(q.limits.per_worker),
      q.limits.rate_limit ? `${q.limits.rate_limit} / ${fmtDuration(q.limits.rate_period)}` : "-"]),
    { empty: "no queues" })), (exc) => replace(body, errorBox(exc)));
}

const lim = (v) => (v === null || v === undefined ? "-" : String(v));

export function workersPage(root, params, signal) {
  const body = h("div", {});
  replace(root, h("h1", {}, "Workers"), body);
  api("GET", "/v1/workers", { signal }).then(({ workers }) => replace(body, table(
    ["worker", "host", "pid", "alive", "lease until", "running", "queues", "started"],
    workers.map((w) => [h("code", {}, w.worker_id), w.host, String(w.pid), w.live ? statusBadge("live") : statusBadge("gone"),
      `${fmtTime(w.lease_until)} (${relative(new Date(w.lease_until))})`, String(w.running),
      // null: it serves every queue (started without --queue)
      w.queues ? h("span", { class: "queues" }, w.queues.map((q, i) => [i ? ", " : "", h("code", {}, q)]))
        : h("span", { class: "queues muted" }, "every queue"),
      fmtTime(w.started_at)]),
    { empty: "no workers registered" })), (exc) => replace(body, errorBox(exc)));
}
