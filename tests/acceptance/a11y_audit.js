// An accessibility audit of the page as it stands (tests/acceptance/test_ui.py evaluates
// this expression in the browser): a function that returns the problems found, as
// text. Written for duro's UI (no checker from elsewhere): the checks of WCAG that a
// page can fail by its markup alone, as the page is built.
//   - every form control has a label (label[for], a wrapping label, aria-label(ledby));
//   - every button and link has an accessible name; every image an alt text;
//   - headings: one h1, no level skipped going down;
//   - landmarks: a banner, a main, named navigations; no content outside a landmark;
//   - ids unique (labels and aria-* point at them); no positive tabindex (tab order is
//     the document's); the page has a language and a title; tables have headers.
() => {
  const problems = [];
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = el.className && typeof el.className === "string" ? `.${el.className.split(" ")[0]}` : "";
    return `<${el.tagName.toLowerCase()}${id}${cls}> "${(el.textContent || "").trim().slice(0, 30)}"`;
  };
  const text = (el) => (el ? (el.textContent || "").replace(/\s+/g, " ").trim() : "");
  const byIds = (ids) => ids.split(/\s+/).map((i) => text(document.getElementById(i))).join(" ").trim();
  const named = (el) =>
    (el.getAttribute("aria-labelledby") && byIds(el.getAttribute("aria-labelledby"))) ||
    (el.getAttribute("aria-label") || "").trim() || (el.getAttribute("title") || "").trim();

  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labels = [...(el.labels || [])].map(text).join(" ").trim();
    if (!labels && !named(el)) problems.push(`control without a label: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("button, [role=button], input[type=submit], input[type=button]")) {
    if (!text(el) && !named(el) && !(el.value || "").trim()) problems.push(`button without a name: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("a[href]")) {
    if (!text(el) && !named(el)) problems.push(`link without a name: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("img, [role=img]")) {
    if (el.tagName === "IMG" ? !el.hasAttribute("alt") : !named(el)) problems.push(`image without alt text: ${describe(el)}`);
  }

  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
    .filter((el) => !el.closest("dialog:not([open])"));
  const h1s = headings.filter((el) => el.tagName === "H1");
  if (h1s.length !== 1) problems.push(`${h1s.length} h1 headings (one is wanted)`);
  let level = 0;
  for (const el of headings) {
    const next = Number(el.tagName[1]);
    if (next > level + 1) problems.push(`heading level skipped: h${level} then ${describe(el)}`);
    level = next;
  }

  if (document.querySelectorAll("main, [role=main]").length !== 1) problems.push("not exactly one main landmark");
  if (!document.querySelector("body > header, [role=banner]")) problems.push("no banner landmark");
  for (const nav of document.querySelectorAll("nav")) {
    if (!named(nav)) problems.push(`navigation without a name: ${describe(nav)}`);
  }
  const LANDMARKS = "header, nav, main, footer, aside, dialog, [role=region], section[aria-label], .skip";
  for (const el of document.body.children) {
    if (el.matches("script, noscript, template") || el.matches(LANDMARKS)) continue;
    if (text(el)) problems.push(`content outside the landmarks: ${describe(el)}`);
  }

  const seen = new Map();
  for (const el of document.querySelectorAll("[id]")) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) problems.push(`id used ${n} times: ${id}`);
  for (const el of document.querySelectorAll("[tabindex]")) {
    if (Number(el.getAttribute("tabindex")) > 0) problems.push(`positive tabindex: ${describe(el)}`);
  }
  if (!document.documentElement.lang) problems.push("the page has no lang");
  if (!document.title.trim()) problems.push("the page has no title");
  for (const table of document.querySelectorAll("table")) {
    if (!table.querySelector("th")) problems.push(`table without headers: ${describe(table)}`);
  }
  return problems;
}
