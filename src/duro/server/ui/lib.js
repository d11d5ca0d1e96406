// Shared helpers of the web UI: the API client (token, problem documents), DOM building
// (text nodes only: no data is ever parsed as markup), JSON views, times and durations.

const BASE = new URL(".", document.baseURI);
const TOKEN_KEY = "duro.token";

export class ApiError extends Error {
  // A problem document (or a transport failure) as an error the pages can show.
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  const value = token.get();
  if (value) out.Authorization = `Bearer ${value}`;
  return out;
}

export function url(path, params) {
  const target = new URL(path.replace(/^\//, ""), BASE);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(key, value);
  }
  return target;
}

async function problem(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  return new ApiError(response.status, body.code || "http_" + response.status,
                      body.detail || response.statusText || "request failed");
}

// 401 anywhere sends the user back to the sign-in form (the app listens).
export const onUnauthenticated = { handler: () => {} };

export async function api(method, path, { params, body, signal, signIn = true } = {}) {
  let response;
  try {
    response = await fetch(url(path, params), {
      method, signal,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "unreachable", `the server did not answer (${exc.message})`);
  }
  if (response.status === 401) {
    const error = await problem(response);
    if (signIn) onUnauthenticated.handler(error);
    throw error;
  }
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  return response.json();
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header).
// Calls onMessage({id, event, data}) per message; resolves when the stream ends.
export async function sse(path, params, onMessage, signal) {
  const response = await fetch(url(path, params), {
    headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw await problem(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = {};
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).replace(/\r$/, "");
      buffer = buffer.slice(cut + 1);
      if (line === "") {
        if (Object.keys(message).length) onMessage(message);
        message = {};
      } else if (!line.startsWith(":")) {
        const at = line.indexOf(":");
        const key = at < 0 ? line : line.slice(0, at);
        const val = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
        message[key] = key in message && key === "data" ? message[key] + "\n" + val : val;
      }
    }
  }
}

// h("a", {href: "#", class: "x", onclick: f}, "text", child...) -> Element.
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    // CSSOM, not the style attribute: the page's CSP allows no inline style attributes.
    else if (key === "style") node.style.cssText = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// What identifies a control across a re-render (live updates redraw parts of a page):
// its id if it has one (a select's options may change), else the same kind of element
// with the same name, link and text.
function focusKey(el) {
  if (el.id) return `${el.tagName}#${el.id}`;
  return [el.tagName, el.getAttribute("name"), el.getAttribute("href"),
          el.textContent.trim().slice(0, 200)].join("\u0000");
}

export function replace(node, ...children) {
  // Keyboard users keep their place: if the focus was inside, it moves to the same
  // control in the new content (else it would fall back to the page's body).
  const active = document.activeElement;
  const key = active && active !== node && node.contains(active) ? focusKey(active) : null;
  node.replaceChildren();
  append(node, children);
  if (key !== null) {
    const same = [...node.querySelectorAll(active.tagName)].find((el) => focusKey(el) === key);
    if (same) same.focus({ preventScroll: true });
  }
  return node;
}

// A run id in a few characters: its last 8, the random end of the id (a run id is a
// UUIDv7, whose first characters are its creation time: the runs of one minute share
// them).
export function shortId(runId) {
  return runId.slice(-8);
}

export function runLink(workflowId, runId, text) {
  const hash = `#/runs/${encodeURIComponent(workflowId)}` +
               (runId ? `?run_id=${encodeURIComponent(runId)}` : "");
  return h("a", { href: hash }, text || workflowId);
}

export function statusBadge(status) {
  return h("span", { class: `badge s-${status}` }, status);
}

// A payload as collapsible JSON: short ones inline, long ones in <details>, very long
// ones truncated with a control to show the rest (a 10 MB result must not freeze the tab)
// and, given `whole` ({name, load}: a file name and a function that reads the payload
// again from the API), a link that saves the whole decoded payload as a JSON file.
export function jsonView(value, { open = false, limit = 20000, whole = null } = {}) {
  if (value === undefined) return h("span", { class: "muted" }, "-");
  const text = JSON.stringify(value, null, 2) ?? "null";
  if (text.length <= 80 && !text.includes("\n")) return h("code", { class: "json" }, text);
  if (text.length <= 80) return h("code", { class: "json" }, JSON.stringify(value));
  const pre = h("pre", { class: "json" });
  const full = () => replace(pre, text);
  if (text.length > limit) {
    const more = h("button", { type: "button", class: "link",
                               onclick: () => { full(); more.remove(); } },
                   `show all ${text.length.toLocaleString()} characters`);
    replace(pre, text.slice(0, limit), "\n…");
    return h("details", { open }, h("summary", {}, preview(value, text)), pre, more,
             whole ? [" ", saveLink(whole)] : null);
  }
  full();
  return h("details", { open }, h("summary", {}, preview(value, text)), pre);
}

// A link (an <a download>: it says what it does) that reads the payload from the API on
// click (the Authorization header rules out a plain href) and saves it as a file.
function saveLink({ name, load }) {
  const link = h("a", { href: "#", download: name, class: "save" }, "download the whole payload");
  link.addEventListener("click", async (event) => {
    if (link.dataset.ready) return;  // the second click, below: the browser saves it
    event.preventDefault();
    try {
      const body = JSON.stringify(await load(), null, 2);
      link.href = URL.createObjectURL(new Blob([body], { type: "application/json" }));
      link.dataset.ready = "1";
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.href = "#"; delete link.dataset.ready; }, 0);
    } catch (exc) {
      link.replaceWith(errorBox(exc));
    }
  });
  return link;
}

function preview(value, text) {
  const flat = JSON.stringify(value);
  const kind = Array.isArray(value) ? `array of ${value.length}` :
    value && typeof value === "object" ? `{${Object.keys(value).slice(0, 4).join(", ")}` +
      `${Object.keys(value).length > 4 ? ", …" : ""}}` : "text";
  const sample = kind.startsWith("{") ? "" : ` · ${flat.slice(0, 40)}${flat.length > 40 ? "…" : ""}`;
  return `${kind}${sample} (${text.length.toLocaleString()} chars)`;
}

export function parseTime(value) {
  return value ? new Date(value) : null;
}

export function fmtTime(value) {
  const date = value instanceof Date ? value : parseTime(value);
  if (!date || isNaN(date)) return "-";
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
         `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "-";
  const s = Math.abs(seconds);
  if (s === 0) return "0 s";
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 0)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m - hrs * 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

export function relative(date, now = new Date()) {
  const seconds = (date - now) / 1000;
  return seconds >= 0 ? `in ${fmtDuration(seconds)}` : `${fmtDuration(-seconds)} ago`;
}

export function errorBox(exc) {
  if (exc instanceof ApiError) {
    return h("div", { class: "error", role: "alert" },
             h("strong", {}, exc.code), ": ", exc.message);
  }
  return h("div", { class: "error", role: "alert" }, String(exc && exc.message || exc));
}

// A confirmation dialog: resolves true when the user confirms.
export function confirmDialog(title, body) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-label": title });
    const done = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    dialog.append(
      h("h3", {}, title), h("p", {}, body),
      h("div", { class: "buttons" },
        h("button", { type: "button", onclick: () => done(false) }, "Cancel"),
        h("button", { type: "button", class: "primary", onclick: () => done(true) }, "Confirm")));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// JSON typed in a form field: undefined when empty, an ApiError-like message when bad.
export function readJson(text, what) {
  if (!text.trim()) return undefined;
  try { return JSON.parse(text); } catch (exc) {
    throw new ApiError(0, "invalid_json", `${what} is not valid JSON: ${exc.message}`);
  }
}

// Each cell says its column (data-label): in a narrow window the rows stack as cards,
// each value under its column's name (app.css), instead of a table to scroll sideways.
export function table(columns, rows, { empty = "nothing here" } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", { class: "stacked" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { "data-label": columns[i] }, c)))))));
}
