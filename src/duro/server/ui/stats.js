// The stats page (issue 18 item 4, issue 19): GET /v1/stats as tables, per workflow and
// per step (runs, rates, retries, p50/p95/p99, tokens and cost) and the top errors,
// filtered by a window (since) and a workflow name. Each figure cell carries its field
// (data-key) and the API's own value (data-value), so what is shown can be checked
// against the API; the text is the value formatted for people.

import { api, errorBox, fmtDuration, h, replace } from "./lib.js";

const pct = (rate) => (rate === null || rate === undefined ? "-" : `${(rate * 100).toFixed(1)} %`);
const num = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en"));
const usd = (cost) => (cost ? `$${Number(cost).toFixed(4)}` : "-");

// A cell of one figure: its field, the API's value, and the value formatted.
function cell(key, value, shown) {
  return { key, value, shown: shown === undefined ? num(value) : shown };
}

function durations(d) {
  return ["p50", "p95", "p99"].map((p) => cell(`durations.${p}`, d[p], fmtDuration(d[p])));
}

function usage(u) {
  return [cell("usage.total_tokens", u.total_tokens), cell("usage.cost", u.cost, usd(u.cost))];
}

// A table with a caption, column headers and rows carrying data-* attributes.
function figures(caption, columns, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", { class: "stats" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map(({ attrs, head, cells }) => h("tr", attrs,
      head.map((text) => h("th", { scope: "row" }, text)),
      cells.map((c) => h("td", { "data-key": c.key,
                                 "data-value": c.value === null ? "null" : String(c.value) },
                         c.shown)))))));
}

function workflowRows(workflows) {
  return workflows.map((w) => ({
    attrs: { "data-workflow": w.workflow },
    head: [w.workflow],
    cells: [cell("started", w.started), cell("live", w.live), cell("completed", w.completed),
            cell("failed", w.failed), cell("timed_out", w.timed_out),
            cell("cancelled", w.cancelled), cell("terminated", w.terminated),
            cell("completion_rate", w.completion_rate, pct(w.completion_rate)),
            cell("failure_rate", w.failure_rate, pct(w.failure_rate)),
            cell("timeout_rate", w.timeout_rate, pct(w.timeout_rate)),
            ...durations(w.durations), ...usage(w.usage)],
  }));
}

function stepRows(steps) {
  return steps.map((s) => ({
    attrs: { "data-workflow": s.workflow, "data-step": s.step },
    head: [s.workflow, s.step],
    cells: [cell("attempts", s.attempts), cell("completed", s.completed),
            cell("retries", s.retries), cell("failed", s.failed),
            ...durations(s.durations), ...usage(s.usage)],
  }));
}

function errorRows(errors) {
  return errors.map((e) => ({
    attrs: { "data-workflow": e.workflow, "data-step": e.step === null ? "" : e.step },
    head: [e.workflow, e.step === null ? "(the run)" : e.step, e.type || "(unknown)"],
    cells: [cell("count", e.count)],
  }));
}

export function statsPage(root, params, signal) {
  const since = params.get("since") || "";
  const workflow = params.get("workflow") || "";
  const body = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "loading…"));
  const field = (name, label, value, attrs = {}) => h("div", { class: "field" },
    h("label", { for: `s-${name}` }, label),
    h("input", { id: `s-${name}`, name, value, ...attrs }));
  const form = h("form", { class: "filters", role: "search", "aria-label": "stats filters",
                           onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v.trim()) next.set(k, v.trim());
    location.hash = `#/stats?${next}`;
  } },
    field("since", "since", since, { placeholder: "7d, 12h or an ISO time (empty: all runs)" }),
    field("workflow", "workflow", workflow, { placeholder: "every workflow" }),
    h("button", { type: "submit", class: "primary" }, "Show"));
  replace(root, h("h1", {}, "Stats"), form, body);

  (async () => {
    try {
      const stats = await api("GET", "/v1/stats", { params: { since, workflow }, signal });
      replace(body,
        h("p", { class: "muted" }, stats.since ? `Runs created since ${stats.since}.` : "Every run.",
          " Durations are percentiles within 2.5 % (docs/observability.md)."),
        h("section", { "aria-label": "per workflow" }, h("h2", {}, "Per workflow"),
          figures("Runs per workflow", ["workflow", "runs", "live", "completed", "failed",
            "timed out", "cancelled", "terminated", "completion", "failure", "timeout",
            "p50", "p95", "p99", "tokens", "cost"], workflowRows(stats.workflows),
          "no run in this window")),
        h("section", { "aria-label": "per step" }, h("h2", {}, "Per step"),
          figures("Step attempts per workflow and step", ["workflow", "step", "attempts",
            "completed", "retries", "failed", "p50", "p95", "p99", "tokens", "cost"],
          stepRows(stats.steps), "no step attempt in this window")),
        h("section", { "aria-label": "top errors" }, h("h2", {}, "Top errors"),
          figures("The most frequent error types", ["workflow", "step", "error type", "count"],
            errorRows(stats.errors), "no error in this window")));
    } catch (exc) {
      if (!signal.aborted) replace(body, errorBox(exc));
    }
  })();
}
