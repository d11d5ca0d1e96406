// The web UI's entry: sign-in (an API token in sessionStorage, sent as a Bearer header;
// none when the server takes requests without tokens) and the hash router.

import { ApiError, api, errorBox, h, onUnauthenticated, replace, token } from "./lib.js";
import { approvalsPage, queuesPage, runsPage, schedulesPage, workersPage } from "./pages.js";
import { runPage } from "./run.js";
import { statsPage } from "./stats.js";

const main = document.getElementById("main");
const who = document.getElementById("who");
let current = null;  // the AbortController of the page shown

function signIn(reason) {
  current && current.abort();
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off",
                             required: true, placeholder: "duro_…" });
  const problem = h("div", {}, reason ? errorBox(reason) : null);
  const form = h("form", { class: "card signin", "aria-label": "sign in", onsubmit: async (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    if (await probe()) route();
    else replace(problem, errorBox(new ApiError(401, "unauthenticated", "the server refused this token")));
  } },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste an API token (made with ", h("code", {}, "duro token create"),
      "). It is kept in this tab only (sessionStorage) and sent with each request; you see " +
      "what its namespace and scope allow."),
    h("label", { for: "token" }, "API token"), input,
    h("button", { type: "submit", class: "primary" }, "Sign in"), problem);
  replace(who, "");
  replace(main, form);
  input.focus();
}

// Whether the API answers with the token held (or without one, when the server needs none).
async function probe() {
  try {
    await api("GET", "/v1/runs", { params: { limit: 1 }, signIn: false });
  } catch (exc) {
    if (exc.status === 401) { token.clear(); return false; }
    throw exc;
  }
  const held = token.get();
  replace(who, held
    ? [h("span", { class: "muted" }, `token ${held.split("_")[1] || "…"}`), " ",
       h("button", { type: "button", class: "link", onclick: () => { token.clear(); signIn(); } }, "Sign out")]
    : h("span", { class: "muted" }, "no sign-in needed (server without tokens)"));
  return true;
}

const ROUTES = [
  [/^#?\/?(runs)?$/, (root, m, q, s) => runsPage(root, q, s), "runs"],
  [/^#\/runs\/([^?]+)$/, (root, m, q, s) => runPage(root, decodeURIComponent(m[1]), q, s), "runs"],
  [/^#\/approvals$/, (root, m, q, s) => approvalsPage(root, q, s), "approvals"],
  [/^#\/schedules$/, (root, m, q, s) => schedulesPage(root, q, s), "schedules"],
  [/^#\/queues$/, (root, m, q, s) => queuesPage(root, q, s), "queues"],
  [/^#\/workers$/, (root, m, q, s) => workersPage(root, q, s), "workers"],
  [/^#\/stats$/, (root, m, q, s) => statsPage(root, q, s), "stats"],
];

function route() {
  current && current.abort();
  current = new AbortController();
  const [path, query = ""] = location.hash.split("?");
  for (const [pattern, page, nav] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("header nav a")) {
      const on = link.dataset.nav === nav;
      link.classList.toggle("on", on);
      on ? link.setAttribute("aria-current", "page") : link.removeAttribute("aria-current");
    }
    document.title = `duro · ${nav}`;
    page(main, match, new URLSearchParams(query), current.signal);
    return;
  }
  replace(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/runs" }, "the runs")));
}

// Keyboard users skip the header: the page's content takes the focus (a plain "#main"
// link would change the hash, which is the router's).
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

onUnauthenticated.handler = (error) => signIn(error);
window.addEventListener("hashchange", route);
probe().then((ok) => (ok ? route() : signIn()), (exc) => replace(main, errorBox(exc)));
