// The lists of jobs: every job (filtered, searched, paged by cursor through GET /jobs),
// and the scheduled, retrying and dead sets with their retry and delete buttons.
import { action, api, coalesce, fill, h, jobLink, notice, table, throttle, when } from "./dom.js";
import { follow } from "./live.js";

const STATUSES = ["scheduled", "queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled"];
const PAGE = 50;
const FINISHED = ["succeeded", "failed", "dead", "cancelled"];

/** The actions of `actions` that a job in `status` allows. */
function allowed(actions, status) {
  const finished = FINISHED.includes(status);
  return actions.filter((verb) => (verb === "cancel" ? !finished : finished));
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  return search.toString();
}

function jobRows(jobs, session, reload, actions) {
  return table(
    "jobs",
    ["job", "work", "queue", "status", "attempt", "updated", "error", ""],
    jobs.map((job) =>
        h(
          "tr",
          { "data-job": job.id },
          h("td", {}, jobLink(job.id)),
          h("td", {}, job.work),
          h("td", {}, job.queue),
          h("td", { class: `status ${job.status}` }, job.status),
          h("td", { class: "num" }, `${job.attempt}/${job.max_attempts}`),
          h("td", {}, when(job.updated)),
          h("td", { class: "error" }, job.error),
          h(
            "td",
            {},
            session.role === "read"
              ? null
              : allowed(actions, job.status).map((verb) =>
                  action(verb, () => api(verb === "delete" ? `/jobs/${encodeURIComponent(job.id)}` : `/jobs/${encodeURIComponent(job.id)}/${verb}`, { method: verb === "delete" ? "DELETE" : "POST" }), reload, { class: `job-${verb}` }),
                ),
          ),
        ),
    ),
  );
}

/** A paged list: `path` is the API's list, `filters` its query; cursors kept for "newer". */
function pagedList(root, path, filters, session, actions) {
  const list = h("div");
  const pager = h("p", { class: "pager" });
  const cursors = [null];
  let rows = new Map();
  const reload = throttle(async () => {
    const cursor = cursors[cursors.length - 1];
    const data = await api(`${path}?${query({ ...filters, limit: PAGE, cursor })}`);
    rows = new Map(data.jobs.map((job) => [job.id, job]));
    fill(list, data.jobs.length ? jobRows(data.jobs, session, reload, actions) : h("p", { class: "empty" }, "No jobs."));
    fill(
      pager,
      cursors.length > 1 ? h("button", { type: "button", onclick: () => (cursors.pop(), reload()) }, "newer") : null,
      data.next !== null && data.next !== undefined ? h("button", { type: "button", class: "older", onclick: () => (cursors.push(data.next), reload()) }, "older") : null,
    );
  });
  root.append(list, pager);
  // A job on the page changed: show its new status at once; the list itself follows.
  const changed = new Map();
  const apply = coalesce(() => {
    for (const [id, status] of changed) {
      const cell = list.querySelector(`tr[data-job="${CSS.escape(id)}"] td.status`);
      if (cell) {
        cell.className = `status ${status}`;
        cell.textContent = status;
      }
    }
    changed.clear();
  });
  return follow(
    { work: filters.work || null, queue: filters.queue || null, kinds: ["job.submitted", "job.queued", "job.started", "job.succeeded", "job.failed", "job.dead", "job.retrying", "job.cancelled", "job.deleted", "job.scheduled"] },
    reload,
    (event) => {
      if (rows.has(event.job_id) && event.status) {
        changed.set(event.job_id, event.status);
        apply();
      }
      if (cursors.length === 1) reload();
    },
  );
}

/** Every job: filter by status, work and queue; search by id. */
export function jobs(root, { params, session }) {
  const filters = { status: params.get("status") || "", work: params.get("work") || "", queue: params.get("queue") || "" };
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any status"), STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
  const work = h("input", { name: "work", placeholder: "work", value: filters.work });
  const queue = h("input", { name: "queue", placeholder: "queue", value: filters.queue });
  const search = h("input", { name: "search", placeholder: "job id", type: "search" });
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: async (event) => {
        event.preventDefault();
        const id = search.value.trim();
        if (id) {
          try {
            await api(`/jobs/${encodeURIComponent(id)}`);
            location.hash = `#/job/${encodeURIComponent(id)}`;
          } catch (error) {
            notice(`no job ${JSON.stringify(id)}: ${error.message}`, "error");
          }
          return;
        }
        location.hash = `#/jobs?${query({ status: status.value, work: work.value.trim(), queue: queue.value.trim() })}`;
      },
    },
    status,
    work,
    queue,
    search,
    h("button", { type: "submit" }, "show"),
  );
  fill(root, h("h1", {}, "Jobs"), form);
  return pagedList(root, "/jobs", filters, session, ["retry", "cancel", "delete"]);
}

/** The scheduled, retrying or dead jobs, with retry and delete one by one or all at once. */
export function statusPage(status) {
  return (root, { session }) => {
    fill(root, h("h1", {}, status[0].toUpperCase() + status.slice(1)));
    let list = null;
    const bulk = (verb) => action(`${verb} all ${status}`, () => api(`/jobs/${verb}/by-filter`, { method: "POST", body: { status } }), () => list.reload(), { class: `bulk-${verb}` });
    if (session.role !== "read") root.append(h("p", { class: "bulk" }, bulk("retry"), " ", bulk("delete")));
    list = pagedList(root, `/${status}`, {}, session, ["retry", "delete"]);
    return list;
  };
}
