// One workflow: its tree by path, each node with its status, time and attempts, kept
// current by the events of the workflow's nodes; cancel and retry of the whole tree.
import { action, api, coalesce, duration, fill, h, jobLink, progressBar, setProgress, table, throttle } from "./dom.js";
import { follow } from "./live.js";

const FINISHED = ["succeeded", "failed", "dead", "cancelled", "skipped"];

/** How deep `path` sits under the workflow's root: 0 for "report.fetch". */
function depth(path) {
  return Math.max(0, (path.match(/[.[]/g) || []).length - 1);
}

/** How long a node's latest attempt ran, once it ended. */
function took(node) {
  return node.started && node.finished ? duration(Math.max(0, node.finished - node.started)) : "";
}

function nodeRow(node, bars) {
  const bar = progressBar(null);
  bars.set(node.job_id, bar);
  // Set through the CSSOM: the Content-Security-Policy refuses inline style attributes.
  const path = h("td", { class: "mono path" }, node.path);
  path.style.paddingLeft = `${0.6 + 1.2 * depth(node.path)}rem`;
  return h(
    "tr",
    { "data-path": node.path, "data-job": node.job_id },
    path,
    h("td", { class: `status ${node.status}` }, node.status),
    h("td", { class: "num took" }, took(node)),
    h("td", { class: "num attempts" }, String(node.attempts)),
    h("td", {}, node.status === "running" ? bar : null),
    h("td", {}, jobLink(node.job_id)),
    h("td", { class: "error" }, node.error),
  );
}

function buttons(id, tree, session, reload) {
  if (session.role === "read") return [];
  const path = `/workflows/${encodeURIComponent(id)}`;
  if (!FINISHED.includes(tree.status)) return [action("cancel", () => api(`${path}/cancel`, { method: "POST" }), reload, { class: "workflow-cancel" })];
  if (tree.status === "succeeded") return [];
  return [action("retry", () => api(`${path}/retry`, { method: "POST" }), reload, { class: "workflow-retry" })];
}

/** The workflow page: its tree (GET /workflows/{id}), then its nodes' pushed events. */
export function workflow(root, { arg: id, session }) {
  if (!id) {
    fill(root, h("h1", {}, "Workflows"), h("p", { class: "empty" }, "Open a workflow from the page of one of its jobs."));
    return { close() {} };
  }
  const head = h("div", { class: "workflow-head" });
  const nodes = h("div");
  fill(root, h("h1", {}, "Workflow ", h("span", { class: "mono" }, id)), head, h("section", {}, h("h2", {}, "Nodes"), nodes));
  const bars = new Map();
  const progress = new Map();
  const draw = coalesce(() => {
    for (const [job, [fraction, message]] of progress) if (bars.has(job)) setProgress(bars.get(job), fraction, message);
  });

  const reload = throttle(async () => {
    const tree = (await api(`/workflows/${encodeURIComponent(id)}`)).workflow;
    const status = h("span", { class: `status ${tree.status}`, id: "workflow-status" }, tree.status);
    fill(head, h("dl", {}, [h("dt", {}, "workflow"), h("dd", {}, tree.name), h("dt", {}, "status"), h("dd", {}, status), h("dt", {}, "on failure"), h("dd", {}, tree.policy || "stop")]), h("p", { class: "actions" }, buttons(id, tree, session, reload)));
    bars.clear();
    fill(nodes, table("workflow", ["path", "status", "time", "attempts", "progress", "job", "error"], tree.nodes.map((node) => nodeRow(node, bars))));
    draw();
  }, 250);
  return follow({ workflow: id }, reload, (event) => {
    if (event.type === "job.log") return;
    if (event.type === "job.progress") {
      progress.set(event.job_id, [event.fraction, event.message]);
      draw();
    } else reload();
  });
}
