// One job: its status, attempts with their tracebacks, a progress bar and the live tail
// of its log while it runs, and its artifacts to download or view.
import { action, api, base, coalesce, duration, fill, h, progressBar, setProgress, throttle, when } from "./dom.js";
import { follow } from "./live.js";

const TAIL = 2000;
const FINISHED = ["succeeded", "failed", "dead", "cancelled"];

function logLine(line) {
  // A LogLine is [time, source, level, text, fields].
  const [time, source, level, text, fields] = line;
  const { job_id, work, ...own } = fields || {}; // the page shows these already
  const extra = Object.keys(own).length ? ` ${JSON.stringify(own)}` : "";
  return h("div", { class: `line src-${source} lv-${level}` }, h("span", { class: "t" }, new Date(time * 1000).toLocaleTimeString()), " ", h("span", { class: "lv" }, level), " ", `${text}${extra}`);
}

function attempts(records) {
  return records.map(({ result, committed, note }) =>
    h(
      "details",
      { class: `attempt ${result.outcome}`, open: result.outcome !== "success" },
      h("summary", {}, `attempt ${result.attempt}: ${result.outcome}`, result.error ? ` — ${result.error}` : "", ` · ${duration(result.finished - result.started)}`, result.pool ? ` · ${result.pool}/${result.worker}` : "", committed ? "" : ` (not committed: ${note})`),
      result.traceback ? h("pre", { class: "traceback" }, result.traceback) : null,
    ),
  );
}

function artifacts(id, job) {
  const list = (job.result && job.result.artifacts) || [];
  if (!list.length) return null;
  return h(
    "ul",
    { class: "artifacts" },
    list.map((artifact) => {
      const url = `${base}/jobs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(artifact.name)}`;
      return h("li", {}, h("a", { href: url, download: artifact.name }, artifact.name), ` (${artifact.media_type}, ${artifact.size} bytes) `, h("a", { href: `${url}?view=1`, target: "_blank", rel: "noopener" }, "view"));
    }),
  );
}

function facts(view) {
  return [
    ["status", h("span", { class: `status ${view.status}`, id: "job-status" }, view.status)],
    ["work", view.work],
    ["queue", view.queue],
    ["attempt", `${view.attempt} of ${view.max_attempts}`],
    ["created", when(view.created)],
    ["updated", when(view.updated)],
    view.error ? ["error", h("span", { class: "error" }, view.error)] : null,
    view.waiting ? ["waiting", view.waiting] : null,
    view.workflow ? ["workflow", h("a", { href: `#/workflows/${encodeURIComponent(view.workflow)}`, class: "mono workflow-link" }, view.workflow)] : null,
    view.workflow ? ["path", h("span", { class: "mono" }, view.path)] : null,
  ].filter(Boolean);
}

/** The job page: a snapshot (GET /jobs/{id}), then pushed events, without reloading. */
export function job(root, { arg: id, session }) {
  const head = h("div", { class: "job-head" });
  const bar = progressBar(null);
  // The box lays out bottom up (CSS column-reverse): it stays at the newest line with
  // no script reading the layout, and where the reader scrolled to otherwise.
  const log = h("div", { class: "lines" });
  const history = h("div");
  const files = h("div");
  fill(root, h("h1", {}, "Job ", h("span", { class: "mono" }, id)), head, h("section", {}, h("h2", {}, "Progress"), bar), h("section", {}, h("h2", {}, "Log"), h("div", { class: "log", id: "log" }, log)), h("section", {}, h("h2", {}, "Attempts"), history), h("section", {}, h("h2", {}, "Artifacts"), files));

  let view = null;
  let progress = { fraction: null, message: "" };
  let pending = [];
  const draw = coalesce(() => {
    setProgress(bar, progress.fraction, progress.message);
    if (pending.length) {
      log.append(...pending.map(logLine));
      pending = [];
      while (log.childElementCount > TAIL) log.firstChild.remove();
    }
  });

  const reload = throttle(async () => {
    const data = await api(`/jobs/${encodeURIComponent(id)}`);
    view = data.job;
    progress = { fraction: view.progress, message: view.progress_message };
    const lines = (view.result && view.result.logs) || [];
    // A running attempt's lines arrive as events; a snapshot may not hold them yet.
    if (view.status !== "running" || lines.length >= log.childElementCount + pending.length) {
      pending = [];
      fill(log, lines.slice(-TAIL).map(logLine));
    }
    const buttons =
      session.role === "read"
        ? []
        : [
            FINISHED.includes(view.status) ? action("retry", () => api(`/jobs/${encodeURIComponent(id)}/retry`, { method: "POST" }), reload, { class: "job-retry" }) : action("cancel", () => api(`/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" }), reload, { class: "job-cancel" }),
            FINISHED.includes(view.status) ? action("delete", () => api(`/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }), () => (location.hash = "#/jobs"), { class: "job-delete" }) : null,
          ];
    fill(
      head,
      h("dl", {}, facts(view).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
      h("p", { class: "actions" }, buttons),
    );
    fill(history, attempts(data.attempts));
    fill(files, artifacts(id, view) || h("p", { class: "empty" }, "None."));
    draw();
  });
  return follow(
    { job_id: id },
    reload,
    (event) => {
      if (event.type === "job.progress") {
        progress = { fraction: event.fraction, message: event.message };
        draw();
      } else if (event.type === "job.log") {
        pending.push(...event.lines);
        draw();
      } else reload();
    },
  );
}
