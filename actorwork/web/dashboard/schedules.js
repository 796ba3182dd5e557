// The cron schedules: next fire times, enable and disable, run now.
import { action, api, fill, h, table, throttle, when } from "./dom.js";
import { follow } from "./live.js";

export function schedules(root, { session }) {
  const list = h("div");
  fill(root, h("h1", {}, "Schedules"), list);
  const reload = throttle(async () => {
    const data = await api("/schedules?count=3");
    fill(
      list,
      data.schedules.length
        ? table(
            "schedules",
            ["name", "work", "cron", "zone", "state", "next fire times", "live jobs", ""],
            data.schedules.map(({ schedule, next_fires, live: running }) => {
                const path = `/schedules/${encodeURIComponent(schedule.name)}`;
                return h(
                  "tr",
                  { "data-schedule": schedule.name },
                  h("td", {}, schedule.name),
                  h("td", {}, schedule.work),
                  h("td", { class: "mono" }, schedule.cron),
                  h("td", {}, schedule.timezone),
                  h("td", {}, schedule.enabled ? "enabled" : "disabled"),
                  h("td", {}, next_fires.map((stamp) => h("div", {}, when(stamp)))),
                  h("td", { class: "num" }, running),
                  h(
                    "td",
                    {},
                    session.role === "read"
                      ? null
                      : [
                          action(schedule.enabled ? "disable" : "enable", () => api(`${path}/${schedule.enabled ? "disable" : "enable"}`, { method: "POST" }), reload),
                          " ",
                          action("run now", () => api(`${path}/run`, { method: "POST" }), reload),
                        ],
                  ),
                );
              }),
          )
        : h("p", { class: "empty" }, "No schedules."),
    );
  });
  return follow({ kinds: ["schedule.fired", "job.succeeded", "job.failed", "job.dead", "job.cancelled"] }, reload);
}
