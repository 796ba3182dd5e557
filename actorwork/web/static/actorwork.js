// actorwork.js: watch and submit jobs from a web page, live, over the API's /ws socket.
// An ES module with no dependencies, served by the API app at {base}/static/actorwork.js.
//
//   import { submit, watchJob } from "/actorwork/static/actorwork.js";
//   const { id } = await submit("report", { month: 5 }, { base: "/actorwork" });
//   watchJob(id, { base: "/actorwork", progress: (f) => bar.value = f, log: (line) => ...,
//                  done: (status, job) => ... });
//
// One socket per base (and token) is shared by every watch. It reconnects with
// exponential backoff (0.25 s to 10 s, with jitter) and subscribes again; a watch of a
// job then reads the job again (GET {base}/jobs/{id}), as it does when the server says
// events were lost, so no state is missed. Frames are those of actorwork/web/ws.py.

const MIN_DELAY = 250;
const MAX_DELAY = 10000;
const PING_EVERY = 20000;
const TERMINAL = new Set(["succeeded", "failed", "dead", "cancelled", "skipped"]);

const connections = new Map();
let nextSub = 0;

function absolute(base) {
  return new URL(base.replace(/\/$/, "") + "/", globalThis.location?.href);
}

function headersFor(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function request(base, path, token, init = {}) {
  const url = new URL(path.replace(/^\//, ""), absolute(base));
  const reply = await fetch(url, {
    ...init,
    headers: { ...headersFor(token), ...(init.headers || {}) },
  });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    const error = new Error(body.error || `${init.method || "GET"} ${url} answered ${reply.status}`);
    Object.assign(error, { status: reply.status, field: body.field, value: body.value });
    throw error;
  }
  return body;
}

/** The shared socket to one API; made by connect(). */
export class Connection {
  constructor(base = "", { token } = {}) {
    this.base = base;
    this.token = token;
    this.subs = new Map(); // sub id -> {filter, handlers}
    this.resyncHandlers = new Set();
    this.attempt = 0;
    this.opened = false;
    this.closed = false;
    this.socket = null;
    this.timer = null;
    this.open();
  }

  url() {
    const url = new URL("ws", absolute(this.base));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.token) url.searchParams.set("token", this.token);
    return url;
  }

  open() {
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      const again = this.opened;
      this.opened = true;
      this.attempt = 0;
      for (const [sub, { filter }] of this.subs) this.send({ op: "subscribe", sub, filter });
      this.heard = Date.now();
      this.pinger = setInterval(() => {
        // A socket that stopped answering (a half-open connection) is closed, and opened again.
        if (Date.now() - this.heard <= 2 * PING_EVERY) this.send({ op: "ping" });
        else this.drop(socket);
      }, PING_EVERY);
      if (again) for (const handler of this.resyncHandlers) handler();
    };
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      this.heard = Date.now();
      this.receive(JSON.parse(message.data));
    };
    socket.onclose = () => this.drop(socket);
  }

  // Forget `socket` (closed, or silent) and open another after a backoff.
  drop(socket) {
    if (this.socket !== socket || this.closed) return;
    this.socket = null;
    clearInterval(this.pinger);
    socket.close();
    const ceiling = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt++);
    const delay = Math.max(MIN_DELAY, ceiling / 2 + (Math.random() * ceiling) / 2);
    this.timer = setTimeout(() => this.open(), delay);
  }

  send(frame) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  receive(frame) {
    const entry = this.subs.get(frame.sub);
    if (frame.op === "error") {
      console.error("actorwork:", frame.error, frame.field, frame.value);
      entry?.handlers.onError?.(frame);
    } else if (entry === undefined) {
      return;
    } else if (frame.op === "events") {
      for (const event of frame.events) entry.handlers.onEvent?.(event);
    } else if (frame.op === "lost") {
      entry.handlers.onLost?.(frame.count);
    } else if (frame.op === "subscribed") {
      entry.handlers.onSubscribed?.();
    }
  }

  /** Subscribe with `filter` ({job_id, work, queue, workflow, status: [...], kinds: [...]});
   * `handlers` are {onEvent(event), onLost(count), onSubscribed(), onError(frame)}.
   * Returns the subscription's id, for unsubscribe(). */
  subscribe(filter, handlers) {
    const sub = `s${++nextSub}`;
    this.subs.set(sub, { filter, handlers });
    this.send({ op: "subscribe", sub, filter });
    return sub;
  }

  unsubscribe(sub) {
    if (this.subs.delete(sub)) this.send({ op: "unsubscribe", sub });
  }

  /** Call `handler` after each reconnect (the subscriptions are made again; events
   * in between were missed). Returns a function that removes it. */
  onResync(handler) {
    this.resyncHandlers.add(handler);
    return () => this.resyncHandlers.delete(handler);
  }

  /** Close the socket for good. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.socket?.close();
    connections.delete(`${this.base}\n${this.token || ""}`);
  }
}

/** The shared Connection to the API at `base` ("", "/actorwork" or
 * "http://host:port/actorwork"), opened on first use. */
export function connect(base = "", { token } = {}) {
  const key = `${base}\n${token || ""}`;
  if (!connections.has(key)) connections.set(key, new Connection(base, { token }));
  return connections.get(key);
}

function follow(filter, handlers, base, token) {
  const connection = connect(base, { token });
  const sub = connection.subscribe(filter, handlers);
  return { close: () => connection.unsubscribe(sub) };
}

/** Call `onEvent(event)` for each event passing `filter`, live. `onSubscribed()` is
 * called each time the server confirms the subscription (first, and after each
 * reconnect): read a snapshot then, and no event after it is missed. `onLost(count)`
 * is called when the server dropped events for this watch, `onResync()` after a
 * reconnect: read the state again then. Returns {close()}. */
export function watch(filter, onEvent, { base = "", token, onLost, onResync, onSubscribed } = {}) {
  let subscribed = 0;
  const confirmed = () => {
    onSubscribed?.();
    if (subscribed++) onResync?.();
  };
  return follow(filter, { onEvent, onLost, onSubscribed: confirmed }, base, token);
}

/** Watch job `id`: `progress(fraction, message, event)` as it moves, `log(line, event)`
 * for each line it logs (`event` is null for lines read from the finished job), and
 * `done(status, job)` once, when it ends ("succeeded", "failed", "dead", "cancelled",
 * "skipped", or "deleted"). The job is read first (GET {base}/jobs/{id}) and again after a
 * reconnect or lost events. Returns {close(), done}: `done` is a Promise of {status, job}
 * (close() settles it with status "closed", without calling the `done` handler). */
export function watchJob(id, { progress, log, done, base = "", token } = {}) {
  let finished = false;
  let reading = null;
  let waiting = []; // events that came while the job was being read
  let shown = { fraction: undefined, message: undefined };
  const lines = new Set();
  let settle;
  const ended = new Promise((resolve) => (settle = resolve));

  const finish = (status, job) => {
    if (finished) return;
    finished = true;
    subscription.close();
    done?.(status, job);
    settle({ status, job });
  };
  const showProgress = (fraction, message, event) => {
    if (fraction === shown.fraction && message === shown.message) return;
    shown = { fraction, message };
    progress?.(fraction, message, event);
  };
  const showLine = (line, event) => {
    const key = JSON.stringify(line);
    if (lines.has(key)) return;
    lines.add(key);
    log?.(line[3], event);
  };
  const apply = (event) => {
    if (finished) return;
    if (event.type === "job.progress") showProgress(event.fraction, event.message, event);
    else if (event.type === "job.log") for (const line of event.lines) showLine(line, event);
    else if (event.type === "job.deleted") finish("deleted", null);
    else if (TERMINAL.has(event.status)) read();
  };
  let again = false; // asked to read while reading: what was read may be older
  const read = () => {
    if (reading) {
      again = true;
      return;
    }
    reading = (async () => {
      try {
        const { job } = await request(base, `/jobs/${encodeURIComponent(id)}`, token);
        if (job.progress != null) showProgress(job.progress, job.progress_message, null);
        if (TERMINAL.has(job.status)) {
          for (const line of job.result?.logs || []) showLine(line, null);
          finish(job.status, job);
        }
      } catch (error) {
        if (error.status === 404) finish("deleted", null);
        else console.error("actorwork: reading job", id, error);
      } finally {
        reading = null;
        const queued = waiting;
        waiting = [];
        queued.forEach(apply);
        if (again && !finished) {
          again = false;
          read();
        }
      }
    })();
  };
  // Read the job once the subscription holds, and again after each reconnect: nothing
  // that happens after the read is missed, and what happened before it is in what is read.
  const subscription = follow(
    { job_id: id },
    {
      onEvent: (event) => (reading ? waiting.push(event) : apply(event)),
      onLost: read,
      onSubscribed: read,
    },
    base,
    token,
  );
  const close = () => {
    if (finished) return;
    finished = true;
    subscription.close();
    settle({ status: "closed", job: null });
  };
  return { close, done: ended };
}

/** Submit a job through the API (POST {base}/jobs): `work`'s name, its payload, and
 * options (queue, priority, retries, timeout, unique_key, delay, job_id). Returns
 * {id, created}; throws an Error with the API's message, field and value. */
export async function submit(work, payload, { base = "", token, ...options } = {}) {
  const body = await request(base, "/jobs", token, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ work, payload, ...options }),
  });
  return { id: body.job_id, created: body.created };
}
