// The dashboard's one door to the push stream: the browser module's watch()
// (actorwork.js), bound to the prefix the dashboard is served under.
import { watch } from "../static/actorwork.js";
import { base } from "./dom.js";

/**
 * Events passing `filter` as they happen, to onEvent(event). onSync() is called each
 * time the server confirms the subscription (first, and again after a reconnect) and
 * when it says events were lost: read the snapshot then, and nothing is missed.
 * Returns {close()}.
 */
export function live(filter, onEvent, onSync) {
  return watch(filter, onEvent, {
    base,
    onLost: onSync,
    onSubscribed() {
      document.body.dataset.live = "subscribed";
      onSync();
    },
  });
}

/**
 * A page's life: `reload` (a throttle()) fetches its snapshot now, once subscribed,
 * and after a loss or a reconnect; events passing `filter` go to onEvent (default:
 * reload). close() ends both, and whatever else is given (a chart's ticker).
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
