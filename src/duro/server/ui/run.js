// A run's page: header, what it waits for now, error, result, published state, usage,
// children, timeline, event history (paged, filtered by kind) and the actions; live
// while the run goes on (the SSE events route).

import {
  api, confirmDialog, errorBox, fmtDuration, fmtTime, h, jsonView, readJson, relative,
  replace, runLink, shortId, sse, statusBadge, table,
} from "./lib.js";
import { isTerminal, span, timeline, waitingFor } from "./history.js";

const PAGE = 1000;          // events per request
const ROWS = 100;           // rows of the history table shown at once
const MAX_EVENTS = 200000;  // past this the page stops loading (it says so)
const MAX_BARS = 400;
const RECONNECT_MS = 1000;
const WAITS_AFTER_MS = 300;  // live events come in bursts: read the waits once after one

export function runPage(root, workflowId, params, signal) {
  if (workflowId === "." || workflowId === "..") {
    // A browser drops "." and ".." path segments (spelt %2E too) from every URL it
    // fetches: no request of this page could name the run.
    replace(root, h("h1", {}, "Run ", h("code", {}, workflowId)),
      h("p", { class: "error" }, `a browser cannot ask the API for the run "${workflowId}": its URLs drop such a path segment. ` +
        "Use duro's CLI or a client (duro.Client) for it."));
    return;
  }
  const state = { run: null, events: [], waits: null, loaded: false, kind: "", page: 0,
                  runId: params.get("run_id"), pinned: params.has("run_id") };
  const parts = {
    header: h("section", { class: "card", "aria-label": "run" }),
    waiting: h("section", { class: "card waiting", "aria-label": "waiting for" }),
    outcome: h("section", { "aria-label": "outcome" }),
    timeline: h("section", { class: "card", "aria-label": "timeline" }),
    history: h("section", { class: "card", "aria-label": "history" }),
    side: h("div", { class: "side-cards" }),
    live: h("span", { class: "live muted", "aria-live": "polite" }),
  };
  const actions = actionsPanel(workflowId, state);
  replace(root,
    h("h1", {}, "Run ", h("code", {}, workflowId), " ", parts.live),
    h("div", { class: "run-grid" },
      h("div", { class: "main" }, parts.header, parts.waiting, parts.outcome, parts.timeline,
        parts.history),
      h("div", { class: "side" }, actions.node, parts.side)));

  let pending = null;
  const render = () => {  // coalesced: a burst of live events renders once
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = null; draw(); });
  };
  function draw() {
    if (!state.run) return;
    drawHeader(parts.header, state.run, state.events, state.later);
    drawWaiting(parts.waiting, state.run, state.events, state.waits);
    drawOutcome(parts.outcome, state.run, state.events);
    drawTimeline(parts.timeline, state.run, state.events, state.waits);
    drawHistory(parts.history, state, render, actions);
  }

  async function loadHistory() {
    let after = state.events.length ? state.events[state.events.length - 1].seq : undefined;
    for (;;) {
      const page = await api("GET", `/v1/runs/${encodeURIComponent(workflowId)}/history`,
        { params: { run_id: state.runId, after, limit: PAGE }, signal });
      state.events.push(...page.events);
      render();
      if (page.next_after === null || page.next_after === undefined) break;
      if (state.events.length >= MAX_EVENTS) { state.capped = true; break; }
      after = page.next_after;
    }
    state.loaded = true;
    render();
  }

  async function follow() {
    // Live: the events after the last one loaded, until the run ends.
    while (!signal.aborted && !isTerminal(state.run.status)) {
      replace(parts.live, h("span", { class: "dot" }), "live");
      const last = state.events.length ? state.events[state.events.length - 1].seq : undefined;
      try {
        await sse(`/v1/runs/${encodeURIComponent(workflowId)}/events`,
          { run_id: state.runId, after: last }, (message) => {
            const data = JSON.parse(message.data || "null");
            if (message.event === "end") { state.run = data; }
            else if (data && (!state.events.length || data.seq > state.events[state.events.length - 1].seq)) {
              state.events.push(data);
              if (state.events.length % 50 === 1) refreshRun();
              laterWaits();
            }
            render();
          }, signal);
      } catch (exc) {
        if (signal.aborted) return;
        replace(parts.live, "live updates stopped: ", exc.message);
        return;
      }
      if (!isTerminal(state.run.status)) {
        // The server ended the stream (it restarts, or a proxy cut it): again in a second.
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
        await refreshRun();
      }
    }
    replace(parts.live, "");
    loadSide();
  }

  async function refreshRun() {
    try {
      state.run = await api("GET", `/v1/runs/${encodeURIComponent(workflowId)}`,
        { params: { run_id: state.runId }, signal });
      render();
      loadWaits();
    } catch { /* the stream goes on; the next one may succeed */ }
  }

  // What the history cannot say (the signals awaited, exact timers, queued steps).
  async function loadWaits() {
    if (!state.run || isTerminal(state.run.status)) { state.waits = null; render(); return; }
    try {
      state.waits = await api("GET", `/v1/runs/${encodeURIComponent(workflowId)}/waiting`,
        { params: { run_id: state.runId }, signal });
      render();
    } catch { /* the page shows what the history says */ }
  }
  let waitsTimer = null;
  function laterWaits() {
    // A suspension writes no event: read again once the burst is over, and once more
    // a moment later (the worker suspends the run after its last event).
    clearTimeout(waitsTimer);
    waitsTimer = setTimeout(async () => { await refreshRun(); waitsTimer = setTimeout(refreshRun, 3 * WAITS_AFTER_MS); },
                            WAITS_AFTER_MS);
  }
  signal.addEventListener("abort", () => clearTimeout(waitsTimer));

  async function loadSide() {
    const side = [];
    const id = encodeURIComponent(workflowId);
    const [children, usage] = await Promise.allSettled([
      api("GET", `/v1/runs/${id}/children`, { params: { run_id: state.runId }, signal }),
      api("GET", `/v1/runs/${id}/usage`, { params: { run_id: state.runId }, signal }),
    ]);
    if (children.status === "fulfilled" && children.value.runs.length) {
      side.push(h("section", { class: "card", "aria-label": "children" }, h("h2", {}, "Children"),
        table(["workflow id", "status", "workflow"], children.value.runs.map((r) =>
          [runLink(r.workflow_id, r.run_id), statusBadge(r.status), r.workflow_name]))));
    }
    if (usage.status === "fulfilled") side.push(usageCard(usage.value.usage));
    const [chain, later] = await Promise.all([earlierRuns(state.run, signal), laterRuns(state.run, signal)]);
    state.later = later;
    render();  // the header links to the next run
    if (later.length) {
      side.push(h("section", { class: "card", "aria-label": "later runs" }, h("h2", {}, "Later runs of this id"),
        h("p", { class: "muted" }, "the runs that continue this one (continue-as-new, retry, reset), oldest first"),
        table(["run", "status", "from"], later.map((r) =>
          [runLink(r.workflow_id, r.run_id, shortId(r.run_id)), statusBadge(r.status),
           h("code", {}, shortId(r.origin_run_id))]))));
    }
    if (chain.length) {
      side.push(h("section", { class: "card", "aria-label": "earlier runs" }, h("h2", {}, "Earlier runs of this id"),
        h("p", { class: "muted" }, "continue-as-new, retry and reset make a new run of the same id"),
        table(["run", "status", "closed"], chain.map((r) =>
          [runLink(r.workflow_id, r.run_id, shortId(r.run_id)), statusBadge(r.status), fmtTime(r.closed_at)]))));
    }
    replace(parts.side, side);
  }

  async function start() {
    try {
      state.run = await api("GET", `/v1/runs/${encodeURIComponent(workflowId)}`,
        { params: { run_id: state.runId }, signal });
      state.runId = state.runId || state.run.run_id;
      render();
      loadWaits();
      await loadHistory();
      loadSide();
      if (!state.capped) follow();
    } catch (exc) {
      if (!signal.aborted) replace(parts.header, errorBox(exc));
    }
  }
  start();
}

const CHAIN = 10;  // earlier runs read at most (one request each)

const LIST_PAGES = 5;  // pages of 200 runs read at most to find the later runs

// The runs that came from this one (their origin_run_id), and those after them, oldest
// first, as far as CHAIN on: from the runs list (every run of the id, not only its
// latest), filtered to this exact workflow id.
async function laterRuns(run, signal) {
  const next = new Map();  // run id -> the runs whose origin it is
  let cursor;
  try {
    for (let pages = 0; pages < LIST_PAGES; pages++) {
      const page = await api("GET", "/v1/runs", { signal, params: {
        id_prefix: run.workflow_id, workflow: run.workflow_name, limit: 200, cursor } });
      for (const r of page.runs) {
        if (r.workflow_id !== run.workflow_id || !r.origin_run_id) continue;
        if (!next.has(r.origin_run_id)) next.set(r.origin_run_id, []);
        next.get(r.origin_run_id).push(r);
      }
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  } catch {
    return [];  // the page shows the rest; the header still links to the latest run
  }
  const out = [];
  const seen = new Set([run.run_id]);
  for (const queue = [run.run_id]; queue.length && out.length < CHAIN;) {
    const after = (next.get(queue.shift()) || [])
      .sort((a, b) => new Date(a.created_at) - new Date(b.created_at));
    for (const r of after) {
      if (seen.has(r.run_id) || out.length >= CHAIN) continue;
      seen.add(r.run_id);
      out.push(r);
      queue.push(r.run_id);
    }
  }
  return out;
}

// The runs this one came from (origin_run_id, newest first), as far as CHAIN back.
async function earlierRuns(run, signal) {
  const out = [];
  for (let at = run; at && at.origin_run_id && out.length < CHAIN;) {
    try {
      at = await api("GET", `/v1/runs/${encodeURIComponent(run.workflow_id)}`,
        { params: { run_id: at.origin_run_id }, signal });
      out.push(at);
    } catch {
      break;  // a run of another id (a fork's source) or one deleted: the chain ends here
    }
  }
  return out;
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function drawHeader(node, run, events, later) {
  const started = events.find((e) => e.kind === "run_started");
  const parent = started && started.meta && started.meta.parent_run_id;
  const searches = Object.entries(run.search_attributes || {});
  const headers = Object.entries(run.headers || {});
  const next = (later || []).find((r) => r.origin_run_id === run.run_id);
  replace(node,
    h("div", { class: "title" }, statusBadge(run.status), " ", h("strong", {}, run.workflow_name)),
    kv([
      ["workflow id", h("code", {}, run.workflow_id)],
      ["run id", h("code", { class: "run-id" }, run.run_id)],
      ["namespace", run.namespace],
      ["created", fmtTime(run.created_at)],
      ["closed", run.closed_at ? fmtTime(run.closed_at) : null],
      ["duration", run.duration !== null ? fmtDuration(run.duration)
        : `${fmtDuration(span(new Date(run.created_at), new Date()))} so far`],
      ["updated", fmtTime(run.updated_at)],
      ["worker", run.owner],
      ["events", String(run.history_length)],
      ["input", started ? jsonView(started.data) : null],
      ["parent run", parent ? h("code", {}, parent) : null],
      ["previous run", run.origin_run_id ? runLink(run.workflow_id, run.origin_run_id, run.origin_run_id) : null],
      ["search attributes", searches.length ? kv(searches.map(([k, v]) => [k, JSON.stringify(v)])) : null],
      ["headers", headers.length ? kv(headers) : null],
      ["damage", run.damage],
    ]),
    run.status === "continued_as_new" ? h("p", { class: "continued" }, "Continued as new: ",
      next ? ["the next run ", runLink(next.workflow_id, next.run_id, next.run_id), "; "] : null,
      runLink(run.workflow_id, null, "the latest run of this id")) : null);
}

function drawWaiting(node, run, events, stored) {
  const now = new Date();
  const waits = waitingFor(run, events, now, stored);
  node.hidden = !waits.length;
  replace(node, h("h2", {}, "Waiting for"), h("ul", { class: "waits" }, waits.map((w) =>
    h("li", { "data-what": w.what },
      h("strong", {}, w.what), w.name ? [" ", h("code", {}, w.name)] : null,
      w.since ? ` since ${fmtTime(w.since)}` : null,
      w.until ? ` · ${w.what === "retry" ? "retries" : "fires"} ${relative(w.until, now)} (${fmtTime(w.until)})` : null,
      h("div", { class: "muted" }, w.detail,
        w.approvalId ? [" ", h("a", { href: "#/approvals" }, "open the inbox")] : null,
        w.link ? [" ", runLink(w.link, null, "open the child")] : null)))));
}

function errorChain(error) {
  const parts = [];
  for (let e = error, depth = 0; e && depth < 10; e = e.cause, depth++) {
    parts.push(h("div", { class: "err" }, h("strong", {}, e.type), ": ", e.message,
      e.traceback ? h("details", {}, h("summary", {}, "traceback"), h("pre", { class: "tb" }, e.traceback)) : null));
  }
  return parts;
}

function drawOutcome(node, run, events) {
  const cards = [];
  if (run.error) cards.push(h("section", { class: "card failed", "aria-label": "error" }, h("h2", {}, "Error"), errorChain(run.error)));
  if (run.status === "completed") cards.push(h("section", { class: "card", "aria-label": "result" }, h("h2", {}, "Result"), jsonView(run.result, { open: true })));
  const states = new Map();
  for (const e of events) if (e.kind === "state_set") states.set(e.name, e);
  if (states.size) {
    cards.push(h("section", { class: "card", "aria-label": "published state" }, h("h2", {}, "Published state"),
      table(["key", "value", "set"], [...states.values()].map((e) => [h("code", {}, e.name), jsonView(e.data), fmtTime(e.time)]))));
  }
  replace(node, cards);
}

function drawTimeline(node, run, events, waits) {
  const { start, end, rows } = timeline(run, events, new Date(), waits);
  const total = Math.max(span(start, end), 0.001);
  const shown = rows.slice(0, MAX_BARS);
  const pct = (d) => `${Math.min(100, Math.max(0, (span(start, d) / total) * 100)).toFixed(3)}%`;
  replace(node, h("h2", {}, "Timeline ", h("span", { class: "muted" }, fmtDuration(total))),
    rows.length ? h("div", { class: "timeline", role: "list" }, shown.map((row) => {
      const width = Math.max(0, (span(row.start, row.end) / total) * 100);
      const took = fmtDuration(row.seconds ?? span(row.start, row.end));
      const text = `${row.label}: ${took}${row.open ? " so far" : ""} · ${row.note}`;
      return h("div", { class: "tl-row", role: "listitem", title: text, "data-kind": row.kind },
        h("span", { class: "tl-label" }, row.label),
        h("span", { class: "tl-track" },
          h("span", { class: `tl-bar k-${row.kind}${row.open ? " open" : ""}`,
                      style: `left:${pct(row.start)};width:max(3px,${width.toFixed(3)}%)` }),
          h("span", { class: "tl-text" }, `${took} · ${row.note}`)));
    })) : h("p", { class: "muted" }, "nothing yet"),
    rows.length > MAX_BARS ? h("p", { class: "muted" }, `the first ${MAX_BARS} of ${rows.length} bars`) : null);
}

function drawHistory(node, state, render, actions) {
  const kinds = [...new Set(state.events.map((e) => e.kind))].sort();
  const shown = state.kind ? state.events.filter((e) => e.kind === state.kind) : state.events;
  const pages = Math.max(1, Math.ceil(shown.length / ROWS));
  state.page = Math.min(state.page, pages - 1);
  const slice = shown.slice(state.page * ROWS, (state.page + 1) * ROWS);
  const t0 = state.run ? new Date(state.run.created_at) : null;
  const select = h("select", { id: "kind-filter", onchange: (e) => { state.kind = e.target.value; state.page = 0; render(); } },
    h("option", { value: "" }, `every kind (${state.events.length})`),
    kinds.map((k) => h("option", { value: k, selected: k === state.kind }, k)));
  const go = (page) => () => { state.page = page; render(); };
  const pager = h("nav", { class: "pager", "aria-label": "history pages" },
    h("button", { type: "button", disabled: state.page === 0, onclick: go(0) }, "« first"),
    h("button", { type: "button", disabled: state.page === 0, onclick: go(state.page - 1) }, "‹ prev"),
    ` page ${state.page + 1} of ${pages} `,
    h("button", { type: "button", disabled: state.page >= pages - 1, onclick: go(state.page + 1) }, "next ›"),
    h("button", { type: "button", disabled: state.page >= pages - 1, onclick: go(pages - 1) }, "last »"));
  replace(node, h("h2", {}, "History"),
    h("div", { class: "toolbar" }, h("label", { for: "kind-filter" }, "kind "), select,
      state.loaded ? null : h("span", { class: "muted" }, ` loading… ${state.events.length} events`),
      state.capped ? h("span", { class: "muted" }, ` the first ${state.events.length} events only (duro history --json has all)`) : null,
      pager),
    h("div", { class: "scroll" }, h("table", { class: "history" },
      h("thead", {}, h("tr", {}, ["seq", "time", "kind", "op", "name", "data", "meta", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, slice.map((e) => h("tr", { "data-seq": e.seq, "data-kind": e.kind },
        h("td", {}, String(e.seq)),
        h("td", { title: fmtTime(e.time) }, t0 ? `+${fmtDuration(span(t0, new Date(e.time)))}` : fmtTime(e.time)),
        h("td", {}, h("span", { class: `kind k-${e.kind}` }, e.kind)),
        h("td", {}, e.op === null ? "" : String(e.op)),
        h("td", {}, e.name || ""),
        h("td", {}, e.corrupt ? h("span", { class: "error" }, e.corrupt) : e.data === null ? ""
          : jsonView(e.data, { whole: wholeEvent(state, e.seq) })),
        h("td", {}, Object.keys(e.meta || {}).length ? jsonView(e.meta) : ""),
        h("td", {}, h("button", { type: "button", class: "link", title: `reset or fork keeping the events before ${e.seq}`,
                                  onclick: () => actions.pickEvent(e.seq) }, "reset here"))))))));
}

// The decoded payload of one event, read again from the history route (a page of one).
function wholeEvent(state, seq) {
  const id = state.run.workflow_id;
  return {
    name: `${id}-${shortId(state.runId)}-${seq}.json`,
    load: async () => {
      const page = await api("GET", `/v1/runs/${encodeURIComponent(id)}/history`,
        { params: { run_id: state.runId, after: seq > 0 ? seq - 1 : undefined, limit: 1 } });
      return page.events[0].data;
    },
  };
}

function usageCard(usage) {
  const total = usage.total;
  if (!total.calls) return h("section", { class: "card", "aria-label": "usage" }, h("h2", {}, "Usage"), h("p", { class: "muted" }, "no model calls recorded"));
  const rows = (by) => Object.entries(by).map(([k, u]) => [k, String(u.calls), String(u.input_tokens), String(u.output_tokens), u.cost.toFixed(4)]);
  return h("section", { class: "card", "aria-label": "usage" }, h("h2", {}, "Usage"),
    kv([["calls", String(total.calls)], ["tokens", `${total.input_tokens} in, ${total.output_tokens} out`],
        ["cost", total.cost.toFixed(4)], ["unpriced calls", total.unpriced_calls ? String(total.unpriced_calls) : null]]),
    h("h3", {}, "by model"), table(["model", "calls", "in", "out", "cost"], rows(usage.by_model)),
    h("h3", {}, "by step"), table(["step", "calls", "in", "out", "cost"], rows(usage.by_step)));
}

// The actions: each a small form; those that change something ask for confirmation; each
// shows its result (a link to a new run) or the problem document's detail.
// What an action changes in this run reaches the page through its events stream.
function actionsPanel(workflowId, state) {
  const id = encodeURIComponent(workflowId);
  const result = h("div", { class: "result", role: "status", "aria-live": "polite" });
  const show = (title, value) => replace(result, h("strong", {}, title), " ",
    value && value.workflow_id && value.run_id && value.run_id !== state.runId
      ? ["new run ", runLink(value.workflow_id, value.run_id, `${value.workflow_id} (${shortId(value.run_id)})`)]
      : jsonView(value, { open: true }));
  const field = (name, label, attrs = {}) => {
    const input = h(attrs.rows ? "textarea" : "input", { id: `a-${name}`, name, ...attrs });
    return [h("label", { for: `a-${name}` }, label), input];
  };
  async function act(title, confirmText, call) {
    // The routes act on the id's latest run: not from the page of an earlier one.
    if (state.pinned && state.later === undefined) {
      replace(result, "the run's later runs are still being read: try again in a moment");
      return;
    }
    if (state.later && state.later.length) {
      const latest = state.later[state.later.length - 1];
      replace(result, h("p", { class: "error" }, "a later run continues this one, and actions act on the id's latest run: open ",
        runLink(latest.workflow_id, latest.run_id, shortId(latest.run_id)), " to act on it"));
      return;
    }
    try {
      if (confirmText && !(await confirmDialog(title, confirmText))) return;
      replace(result, `${title}…`);
      show(title, await call());
    } catch (exc) {
      replace(result, errorBox(exc));
    }
  }
  const value = (name) => form.querySelector(`[name=${name}]`).value.trim();
  const post = (path, body) => api("POST", `/v1/runs/${id}/${path}`, { body });
  // Enter in a field acts with the next button of its fieldset (each action is a form
  // in all but markup: no submit button, so no implicit submission).
  const enter = (e) => {
    if (e.key !== "Enter" || e.target.tagName !== "INPUT" || !e.target.closest("fieldset")) return;
    const button = [...e.target.closest("fieldset").querySelectorAll("button")].find((b) =>
      e.target.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
    if (button) { e.preventDefault(); button.click(); }
  };
  const form = h("form", { class: "actions", "aria-label": "actions", onsubmit: (e) => e.preventDefault(), onkeydown: enter },
    h("h2", {}, "Actions"),
    h("fieldset", {}, h("legend", {}, "Signal"),
      field("signal", "name", { required: true }), field("signal_payload", "payload (JSON)", { rows: 2, placeholder: '"ann"' }),
      h("button", { type: "button", onclick: () => act("signal", `Send signal "${value("signal")}" to ${workflowId}?`,
        () => post(`signals/${encodeURIComponent(value("signal"))}`, { payload: readJson(value("signal_payload"), "the payload") ?? null })) }, "Send signal")),
    h("fieldset", {}, h("legend", {}, "Update"),
      field("update", "name"), field("update_args", "arguments (JSON array)", { rows: 2, placeholder: "[]" }),
      h("button", { type: "button", onclick: () => act("update", `Send update "${value("update")}" to ${workflowId}?`,
        () => post(`updates/${encodeURIComponent(value("update"))}`, { args: readJson(value("update_args"), "the arguments") ?? [], timeout: 30 })) }, "Send update")),
    h("fieldset", {}, h("legend", {}, "Query"),
      field("query", "name"), field("query_args", "arguments (JSON array)", { rows: 1, placeholder: "[]" }),
      h("button", { type: "button", onclick: () => act("query", null,
        () => post(`queries/${encodeURIComponent(value("query"))}`, { args: readJson(value("query_args"), "the arguments") ?? [], run_id: state.runId, timeout: 10 })) }, "Ask")),
    h("fieldset", {}, h("legend", {}, "Stop"),
      h("button", { type: "button", onclick: () => act("cancel", `Ask ${workflowId} to cancel?`, () => post("cancel")) }, "Cancel run"),
      field("reason", "reason"),
      h("button", { type: "button", class: "danger", onclick: () => act("terminate", `Terminate ${workflowId} now? Its code runs no further.`,
        () => post("terminate", value("reason") ? { reason: value("reason") } : {})) }, "Terminate")),
    h("fieldset", {}, h("legend", {}, "Again"),
      h("button", { type: "button", onclick: () => act("retry", `Retry ${workflowId} from where it failed?`, () => post("retry")) }, "Retry"),
      h("button", { type: "button", onclick: () => act("resume", `Resume the parked run ${workflowId}?`, () => post("resume")) }, "Resume parked"),
      field("to", "keep the first N events", { type: "number", min: "1" }),
      h("button", { type: "button", onclick: () => act("reset", `Reset ${workflowId} keeping its first ${value("to")} events? A live run is terminated first.`,
        () => post("reset", { to: Number(value("to")) })) }, "Reset"),
      field("fork_id", "fork as workflow id (optional)"),
      h("button", { type: "button", onclick: () => act("fork", `Fork ${workflowId} into a new run?`,
        () => post("fork", { ...(value("to") ? { to: Number(value("to")) } : {}), ...(value("fork_id") ? { id: value("fork_id") } : {}) })) }, "Fork")),
    result);
  return {
    node: form,
    pickEvent(seq) {
      const input = form.querySelector("[name=to]");
      input.value = String(seq);
      input.focus();
      input.scrollIntoView({ block: "center" });
    },
  };
}
