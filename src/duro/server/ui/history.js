// What a run's history says, derived in the browser from /v1/runs/{id}/history (the
// kinds are those of src/duro/_history.py): what the run waits for now, and the bars
// of its timeline. Pure functions over the events and the run: no DOM here.

const TERMINAL = new Set(["completed", "failed", "cancelled", "terminated", "timed_out",
                          "continued_as_new"]);
const STEP_END = new Set(["step_completed", "step_failed", "step_retrying"]);
const APPROVAL_END = new Set(["approval_decided", "approval_timed_out"]);
const CHILD_END = new Set(["child_completed", "child_failed"]);
const UPDATE_END = new Set(["update_completed", "update_failed"]);

export const isTerminal = (status) => TERMINAL.has(status);

function byOp(events) {
  const ops = new Map();
  for (const event of events) {
    if (event.op === null || event.op === undefined) continue;
    if (!ops.has(event.op)) ops.set(event.op, []);
    ops.get(event.op).push(event);
  }
  return ops;
}

// What the run waits for now: a list of {what, name, since, until, detail, link}.
// `waits` (GET /v1/runs/{id}/waiting, or null) adds what the history cannot say: the
// signals the code awaits, its exact timers, its steps queued for another worker.
export function waitingFor(run, events, now = new Date(), waits = null) {
  if (isTerminal(run.status)) return [];
  const out = [];
  if (run.status === "pending") {
    const at = run.wake_at ? new Date(run.wake_at) : null;
    out.push(at && at > now
      ? { what: "start", detail: "starts at its start time", until: at }
      : { what: "worker", detail: "not yet claimed by a worker (none serves its queue, or all are busy)",
          since: new Date(run.created_at) });
    return out;
  }
  if (run.status === "parked") {
    out.push({ what: "operator", detail: "parked: repair what parked it, then resume it" });
    return out;
  }
  for (const list of byOp(events).values()) {
    const last = list[list.length - 1];
    if (last.kind === "approval_requested") {
      out.push({ what: "approval", name: last.name, since: new Date(last.time),
                 until: last.meta && last.meta.deadline_at ? new Date(last.meta.deadline_at * 1000) : null,
                 detail: "a human decision (see the approval inbox)",
                 approvalId: last.meta && last.meta.approval_id });
    } else if (last.kind === "child_started") {
      out.push({ what: "child", name: (last.data && last.data.workflow_id) || last.name,
                 since: new Date(last.time), detail: "a child workflow to end",
                 link: last.data && last.data.workflow_id });
    } else if (last.kind === "step_retrying") {
      const at = last.meta && last.meta.retry_at ? new Date(last.meta.retry_at * 1000) : null;
      out.push({ what: "retry", name: last.name, until: at, since: new Date(last.time),
                 detail: `step attempt ${last.meta ? last.meta.attempt : "?"} failed` +
                         (last.data && last.data.message ? `: ${last.data.message}` : "") +
                         "; it runs again" });
    } else if (last.kind === "step_started") {
      out.push({ what: "step", name: last.name, since: new Date(last.time),
                 detail: `attempt ${last.meta ? last.meta.attempt : "?"} running` });
    }
  }
  for (const task of (waits && waits.tasks) || []) {
    out.push({ what: "step", name: task.step, since: new Date(task.since),
               detail: `attempt ${task.attempt} on queue ${task.queue}, ` +
                       (task.claimed_by ? `claimed by worker ${task.claimed_by}` : "not yet claimed") });
  }
  for (const event of events) {  // updates have no op: match them by id
    if (event.kind !== "update_accepted") continue;
    const id = event.meta && event.meta.update_id;
    const ended = events.some((e) => UPDATE_END.has(e.kind) && e.meta && e.meta.update_id === id);
    if (!ended) out.push({ what: "update", name: event.name, since: new Date(event.time),
                           detail: "an update handler to finish" });
  }
  const recorded = waits && waits.recorded;
  for (const signal of recorded ? waits.signals : []) {
    out.push({ what: "signal", name: signal.name, since: new Date(signal.since),
               detail: "a signal (duro.wait_for_signal)" });
  }
  if (recorded && waits.conditions) {
    out.push({ what: "condition", detail: `${waits.conditions} condition(s) (duro.wait_condition)` +
      (waits.signal_handlers.length ? `; signal handlers: ${waits.signal_handlers.join(", ")}` : "") });
  }
  if (recorded && waits.timers.length) {
    for (const timer of waits.timers) {  // exact: when it was set and when it fires
      out.push({ what: "timer", since: new Date(timer.set_at), until: new Date(timer.fire_at),
                 detail: "a timer (duro.sleep, a wait's timeout or a deadline)" });
    }
  } else if (run.wake_at && !out.some((w) => w.what === "retry")) {
    const at = new Date(run.wake_at);
    out.push({ what: "timer", until: at, detail: "a timer (duro.sleep, a wait's timeout or a deadline)" });
  }
  if (!out.length && recorded && waits.signal_handlers.length) {
    out.push({ what: "signal", name: waits.signal_handlers.join(", "), since: new Date(run.updated_at),
               detail: "a signal its handlers take (duro.on_signal), or an update" });
  }
  if (!out.length && run.status === "suspended") {
    out.push({ what: "signal", since: new Date(lastTime(events) || run.updated_at),
               detail: "a signal or an update (the history does not name which until it comes)" });
  }
  if (!out.length && run.status === "running") {
    out.push({ what: "worker", detail: `held by worker ${run.owner || "?"}: a step or the workflow code is running`,
               since: new Date(lastTime(events) || run.updated_at) });
  }
  return out;
}

function lastTime(events) {
  return events.length ? events[events.length - 1].time : null;
}

const seconds = (date) => date.getTime() / 1000;

// The timeline's rows: {label, kind, start, end, open, note} (Dates), one row per step
// attempt and backoff, timer, child, approval, update, signal; `start`..`end` of the run.
export function timeline(run, events, now = new Date(), waits = null) {
  const rows = [];
  const start = new Date(run.created_at);
  const end = run.closed_at ? new Date(run.closed_at) : now;
  let previous = start;
  const open = new Map();  // op or update id -> its open row
  for (const event of events) {
    const at = new Date(event.time);
    const meta = event.meta || {};
    if (STEP_END.has(event.kind)) {
      const began = open.get(event.op);
      const from = began && began.kind === "running" ? began.start
        : new Date(at.getTime() - (meta.duration || 0) * 1000);
      if (began) { open.delete(event.op); rows.splice(rows.indexOf(began), 1); }
      const kind = event.kind === "step_completed" ? "step" : event.kind === "step_failed" ? "failed" : "retry";
      // The recorded duration (microseconds), not the bar's (Dates hold milliseconds).
      rows.push({ label: `${event.name} #${meta.attempt || 1}`, kind, start: from, end: at, seq: event.seq,
                  seconds: meta.duration,
                  note: meta.cache_hit ? "cache hit" : kind === "step" ? "completed" :
                        (event.data && event.data.message) || kind });
      if (event.kind === "step_retrying" && meta.retry_at) {
        rows.push({ label: `${event.name} backoff`, kind: "backoff", start: at,
                    end: new Date(meta.retry_at * 1000), seq: event.seq, note: "waiting to retry" });
      }
    } else if (event.kind === "step_started") {
      const row = { label: `${event.name} #${meta.attempt || 1}`, kind: "running", start: at, end,
                    open: true, seq: event.seq, note: "running" };
      open.set(event.op, row);
      rows.push(row);
    } else if (event.kind === "timer_fired") {
      // Exact when the event says when it was set (TimerMeta); older histories do not:
      // then from the event before it.
      const set = typeof meta.set_at === "number" ? new Date(meta.set_at * 1000) : previous;
      const late = typeof meta.due_at === "number" ? span(new Date(meta.due_at * 1000), at) : null;
      rows.push({ label: "timer", kind: "timer", start: set, end: at, seq: event.seq,
                  note: late !== null && late >= 1 ? `fired ${fmtLate(late)} late` : "fired" });
    } else if (["child_started", "approval_requested", "update_accepted"].includes(event.kind)) {
      const kind = event.kind.split("_")[0];
      const label = kind === "child" ? `child ${(event.data && event.data.workflow_id) || event.name}`
        : `${kind} ${event.name}`;
      const row = { label, kind, start: at, end, open: true, seq: event.seq, note: "waiting" };
      open.set(kind === "update" ? `u:${meta.update_id}` : event.op, row);
      rows.push(row);
    } else if (CHILD_END.has(event.kind) || APPROVAL_END.has(event.kind) || UPDATE_END.has(event.kind)) {
      const key = UPDATE_END.has(event.kind) ? `u:${meta.update_id}` : event.op;
      const row = open.get(key);
      if (row) {
        row.end = at; row.open = false; open.delete(key);
        row.note = event.kind === "approval_decided"
          ? `${meta.approved ? "approved" : "rejected"} by ${meta.by || "?"}`
          : event.kind.split("_")[1];
        if (event.kind.endsWith("failed") || event.kind.endsWith("timed_out")) row.kind = "failed";
      }
    } else if (event.kind === "signal_received") {
      rows.push({ label: `signal ${event.name}`, kind: "signal", start: at, end: at, seq: event.seq,
                  note: "received" });
    }
    previous = at;
  }
  const recorded = !isTerminal(run.status) && waits && waits.recorded;
  for (const signal of recorded ? waits.signals : []) {
    rows.push({ label: `signal ${signal.name}`, kind: "signal", start: new Date(signal.since), end: now,
                open: true, note: "waiting" });
  }
  for (const task of isTerminal(run.status) || !waits ? [] : waits.tasks) {
    rows.push({ label: `${task.step} #${task.attempt}`, kind: task.claimed_by ? "running" : "queued",
                start: new Date(task.since), end: now, open: true,
                note: task.claimed_by ? `on ${task.queue}, claimed` : `queued on ${task.queue}` });
  }
  if (run.status === "suspended" && !run.wake_at && !rows.some((r) => r.open)) {
    rows.push({ label: "waiting", kind: "signal", start: previous, end: now, open: true,
                note: "for a signal or an update" });
  }
  if (recorded && waits.timers.length) {
    for (const timer of waits.timers) {  // exact: set at, fires at (recorded as it suspended)
      rows.push({ label: "timer (pending)", kind: "timer", start: new Date(timer.set_at),
                  end: new Date(timer.fire_at), open: true, note: "fires" });
    }
  } else if (!isTerminal(run.status) && run.wake_at) {
    const wake = new Date(run.wake_at);
    rows.push({ label: "timer (pending)", kind: "timer", start: previous, end: wake, open: true,
                note: "fires" });
  }
  const last = rows.reduce((m, r) => (r.end > m ? r.end : m), end);
  return { start, end: last, runEnd: end, rows };
}

export const span = (a, b) => seconds(b) - seconds(a);

const fmtLate = (s) => (s < 60 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`);
