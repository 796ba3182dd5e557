// Small helpers every page uses: DOM building that never parses markup, the API with
// the CSRF header, and redraws coalesced to one per animation frame.
//
// Everything shown comes from jobs (names, payloads, logs, tracebacks, artifact names),
// so it goes into the page as text only: h() makes text nodes of strings, and no code
// here hands a string to the HTML parser.

/** The prefix the app is served under ("" or e.g. "/actorwork"), from this file's URL. */
export const base = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** An element: props are attributes (on* are listeners), strings become text nodes. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "value") element.value = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** An API call relative to the app; JSON in and out; a refusal throws its error text. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { "x-csrf-token": cookie("actorwork_csrf") };
  if (body !== undefined) headers["content-type"] = "application/json";
  const reply = await fetch(base + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error(data.error || `${method} ${path}: HTTP ${reply.status}`);
    error.status = reply.status;
    throw error;
  }
  return data;
}

/** A function that calls draw() at most once per animation frame, however often called. */
export function coalesce(draw) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
}

/**
 * A function that calls load() now, and again at most once per `every` ms after events
 * ask for it: a snapshot refreshed because something changed, never on a timer alone.
 */
export function throttle(load, every = 1000) {
  let timer = null;
  let again = false;
  let closed = false;
  const run = async () => {
    if (closed) return;
    again = false;
    timer = true; // loading: asks meanwhile wait for the next turn
    try {
      await load();
    } catch (error) {
      notice(error.message, "error");
    }
    timer = setTimeout(() => {
      timer = null;
      if (again) run();
    }, every);
  };
  const ask = () => {
    if (timer === null) run();
    else again = true;
  };
  ask.close = () => {
    closed = true;
    clearTimeout(timer);
  };
  return ask;
}

/** A message at the top of the page (text only). */
export function notice(text, kind = "info") {
  const box = document.getElementById("notice");
  if (!box) return;
  fill(box, text ? h("span", { class: kind }, text) : null);
}

/** Seconds as "3.2 s", "4 min", "2 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** A timestamp (seconds) as local date and time. */
export function when(stamp) {
  if (!stamp) return "";
  return new Date(stamp * 1000).toLocaleString();
}

/** A button that runs an action, shows its error, and then calls after(). */
export function action(label, run, after, props = {}) {
  return h(
    "button",
    {
      type: "button",
      ...props,
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await run();
          notice("");
          if (after) await after();
        } catch (error) {
          notice(`${label}: ${error.message}`, "error");
        } finally {
          event.target.disabled = false;
        }
      },
    },
    label,
  );
}

/** A link to a job's page. */
export function jobLink(id) {
  return h("a", { href: `#/job/${encodeURIComponent(id)}`, class: "mono" }, id);
}

/** A progress bar: fraction 0..1 (or null: unknown). */
export function progressBar(fraction, message = "") {
  const known = typeof fraction === "number";
  const bar = h("div", { class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100 });
  const inner = h("div", { class: "fill" });
  bar.append(inner);
  const label = h("span", { class: "bar-label" });
  bar.append(label);
  setProgress(bar, known ? fraction : null, message);
  return bar;
}

/** Move a progress bar made by progressBar(). */
export function setProgress(bar, fraction, message = "") {
  const percent = typeof fraction === "number" ? Math.round(fraction * 100) : 0;
  bar.firstChild.style.width = `${percent}%`;
  bar.setAttribute("aria-valuenow", String(percent));
  bar.dataset.value = String(percent);
  bar.lastChild.textContent = typeof fraction === "number" ? `${percent}% ${message}` : message;
}

/** A table with a header row of `titles`, and `rows` (each a <tr>). */
export function table(className, titles, rows) {
  return h("table", { class: className }, h("thead", {}, h("tr", {}, titles.map((t) => h("th", {}, t)))), h("tbody", {}, rows));
}
