// The dashboard's one door to the push stream: the browser module's watch(), bound to
// the prefix the dashboard is served under. A page passes onLost to reload its
// snapshot when the stream says it fell behind (or reconnected).
import { watch } from "../static/actorwork.js";
import { base } from "./dom.js";

/** Events passing `filter` as they happen; {close()} ends the subscription. */
export function live(filter, onEvent, onLost) {
  return watch(filter, (event) => onEvent(event), { base, onLost: onLost || (() => {}) });
}

/**
 * A page's life: `reload` (a throttle()) fetches its snapshot now and again after a
 * loss; events passing `filter` go to onEvent (default: reload). close() ends both,
 * and whatever else is given (a chart's ticker).
 */
export function follow(filter, reload, onEvent = reload, ...others) {
  reload();
  const watch = live(filter, onEvent, reload);
  return {
    reload,
    close() {
      watch.close();
      reload.close();
      for (const other of others) other.close();
    },
  };
}
