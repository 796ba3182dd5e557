// The pages about the system as a whole: overview, queues, pools and busy workers.
import { RateChart } from "./chart.js";
import { action, api, coalesce, duration, fill, h, jobLink, progressBar, setProgress, table, throttle } from "./dom.js";
import { follow } from "./live.js";

// A job's start and end move the queues' depths; the steps in between change nothing shown.
const JOB_KINDS = ["job.submitted", "job.succeeded", "job.failed", "job.dead", "job.retrying", "job.cancelled", "job.deleted"];
// The overview charts finished jobs; the queue table follows them (and pauses) at 1 Hz.
const FINISHED_KINDS = ["job.succeeded", "job.failed", "job.dead", "job.retrying", "job.cancelled"];

function queueTable(queues, session, reload) {
  return table(
    "queues",
    ["queue", "queued", "running", "scheduled", "retrying", "oldest job", "state", ""],
    queues.map((queue) =>
        h(
          "tr",
          { "data-queue": queue.name },
          h("td", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(queue.name)}` }, queue.name)),
          h("td", { class: "num" }, queue.queued),
          h("td", { class: "num" }, queue.running),
          h("td", { class: "num" }, queue.scheduled),
          h("td", { class: "num" }, queue.retrying),
          h("td", { class: "num" }, duration(queue.oldest_age)),
          h("td", { class: queue.paused ? "paused" : "" }, queue.paused ? "paused" : "running"),
          h(
            "td",
            {},
            session.role === "read"
              ? null
              : action(
                  queue.paused ? "resume" : "pause",
                  () => api(`/queues/${encodeURIComponent(queue.name)}/${queue.paused ? "resume" : "pause"}`, { method: "POST" }),
                  reload,
                  { class: "queue-toggle" },
                ),
          ),
        ),
    ),
  );
}

/** Overview: throughput and failures live, and the queues' depths. */
export function overview(root, { session }) {
  const canvas = h("canvas", { class: "chart", id: "throughput" });
  const rates = h("p", { class: "rates" });
  const queues = h("div");
  fill(root, h("h1", {}, "Overview"), h("section", {}, h("h2", {}, "Throughput"), canvas, rates), h("section", {}, h("h2", {}, "Queues"), queues));
  const chart = new RateChart(
    canvas,
    [
      { name: "succeeded", color: "#2a7" },
      { name: "failed", color: "#d33" },
    ],
    rates,
  );
  const reload = throttle(async () => {
    const data = await api("/queues");
    fill(queues, queueTable(data.queues, session, reload));
  });
  return follow(
    { kinds: [...FINISHED_KINDS, "queue.paused", "queue.resumed"] },
    reload,
    (event) => {
      if (event.type === "job.succeeded") chart.count(0);
      else if (["job.failed", "job.dead", "job.retrying"].includes(event.type)) chart.count(1);
      reload();
    },
    chart,
  );
}

/** Queues: depth, oldest job, pause and resume. */
export function queues(root, { session }) {
  const list = h("div");
  fill(root, h("h1", {}, "Queues"), list);
  const reload = throttle(async () => fill(list, queueTable((await api("/queues")).queues, session, reload)));
  return follow({ kinds: [...JOB_KINDS, "queue.paused", "queue.resumed"] }, reload);
}

/** Pools and their busy workers: each one's job, its progress, the heartbeat's age. */
export function pools(root) {
  const list = h("div");
  fill(root, h("h1", {}, "Pools and busy workers"), list);
  const bars = new Map();
  // The Scheduler knows each pool's attempts; which worker runs one, its start says.
  const workers = new Map();
  const reload = throttle(async () => {
    const data = await api("/pools");
    bars.clear();
    fill(
      list,
      data.pools.length ? null : h("p", {}, "No pool has joined."),
      data.pools.map((pool) =>
        h(
          "section",
          { class: "pool", "data-pool": pool.name },
          h("h2", {}, pool.name, " ", h("span", { class: pool.connected ? "ok" : "bad" }, pool.connected ? "connected" : "away")),
          h("p", {}, `queues: ${pool.queues.join(", ")} · capacity ${pool.capacity} · free ${pool.free} · heartbeat ${duration(pool.heartbeat_age)} ago`),
          table(
            "busy",
            ["job", "work", "queue", "worker", "attempt", "running for", "progress"],
            pool.busy.map((busy) => {
              const bar = progressBar(null);
              bars.set(busy.job_id, bar);
              return h("tr", {}, h("td", {}, jobLink(busy.job_id)), h("td", {}, busy.work), h("td", {}, busy.queue), h("td", {}, workers.get(busy.job_id) || ""), h("td", { class: "num" }, busy.attempt), h("td", { class: "num" }, duration(Date.now() / 1000 - busy.since)), h("td", {}, bar));
            }),
          ),
        ),
      ),
    );
  });
  // Progress is the busiest event: kept as it comes, drawn once per frame.
  const progress = new Map();
  const draw = coalesce(() => {
    for (const [id, event] of progress) {
      const bar = bars.get(id);
      if (bar) setProgress(bar, event.fraction, event.message);
    }
    progress.clear();
  });
  return follow(
    { kinds: ["pool.joined", "pool.left", "worker.busy", "worker.idle", "job.started", "job.progress", "job.succeeded", "job.failed", "job.dead", "job.retrying", "job.cancelled"] },
    reload,
    (event) => {
      if (event.type === "job.started") workers.set(event.job_id, event.worker);
      else if (FINISHED_KINDS.includes(event.type)) workers.delete(event.job_id);
      if (event.type !== "job.progress") return reload();
      progress.set(event.job_id, event);
      draw();
    },
  );
}
