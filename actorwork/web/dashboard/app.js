// The dashboard: a page per route of the URL's hash (#/queues, #/job/ID, #/workflows/ID...), each fed
// a snapshot from the API and then the events pushed over /ws. Nothing reloads or polls.
import { api, fill, h, notice } from "./dom.js";
import { job } from "./job.js";
import { jobs, statusPage } from "./jobs.js";
import { schedules } from "./schedules.js";
import { overview, pools, queues } from "./system.js";
import { workflow } from "./workflow.js";

const ROUTES = {
  "": overview,
  queues,
  pools,
  jobs,
  job,
  scheduled: statusPage("scheduled"),
  retrying: statusPage("retrying"),
  dead: statusPage("dead"),
  schedules,
  workflows: workflow,
};
const NAV = [
  ["", "Overview"],
  ["queues", "Queues"],
  ["pools", "Pools"],
  ["jobs", "Jobs"],
  ["scheduled", "Scheduled"],
  ["retrying", "Retrying"],
  ["dead", "Dead"],
  ["schedules", "Schedules"],
];

const main = document.getElementById("page");
let session = null;
let current = null;

function route() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  const page = ROUTES[name] || overview;
  if (current) current.close();
  notice("");
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("here", link.dataset.route === name);
  const root = h("div", { class: `page page-${name || "overview"}` });
  main.replaceChildren(root);
  current = page(root, { arg: decodeURIComponent(rest.join("/")), params: new URLSearchParams(search), session });
  document.body.dataset.route = name || "overview";
}

function login(reason) {
  const token = h("input", { type: "password", name: "token", autocomplete: "current-password", placeholder: "API token", required: true });
  const form = h(
    "form",
    {
      class: "login",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api("/login", { method: "POST", body: { token: token.value } });
          await start();
        } catch (error) {
          notice(error.message, "error");
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, reason),
    token,
    h("button", { type: "submit" }, "sign in"),
  );
  main.replaceChildren(form);
  token.focus();
}

async function start() {
  try {
    session = await api("/session");
  } catch (error) {
    if (error.status === 401) return login("This dashboard needs the API's token (or its read-only token).");
    notice(error.message, "error");
    return;
  }
  document.body.classList.toggle("read-only", session.role === "read");
  fill(
    document.getElementById("nav"),
    NAV.map(([name, label]) => h("a", { href: `#/${name}`, "data-route": name }, label)),
    session.role === "open" ? null : h("button", { type: "button", class: "logout", onclick: async () => (await api("/logout", { method: "POST" }), login("Signed out.")) }, "sign out"),
  );
  window.addEventListener("hashchange", route);
  route();
}

start();
