// The tab's ONE connection to `GET /v1/events`, shared by every component
// that wants live data. Components subscribe to deployments and apps; the
// union of their subscriptions is the stream's query, and a change of it
// reconnects (debounced). Each event's id is a cursor over the whole
// stream: after a drop, or when a hidden tab comes back and the stream went
// quiet, the stream reconnects with `Last-Event-ID` and the API sends what
// was missed. The cursor belongs to one query: after a change of the
// subscriptions the stream starts fresh, and subscribers get `open` with
// `fresh: true` to reload what the REST API says.
//
// Why fetch and not `EventSource`: a person acts in a project named by the
// `Slipway-Project` header, and `EventSource` can send no header, nor a
// `Last-Event-ID` of its own choosing on a new connection.
import { currentProject, projectHeaders } from "./api";
import { sseParser } from "./sse";

export type StreamEvent =
  | { kind: "open"; fresh: boolean }
  | { kind: "deployment"; data: any }
  | { kind: "app"; data: any }
  | { kind: "log"; data: any };

interface Subscription {
  deployments: string[];
  apps: string[];
  handler: (e: StreamEvent) => void;
}

/** The API's limit on deployments plus apps in one stream. */
export const MAX_SUBSCRIPTIONS = 50;
/** The API sends a keep-alive comment every 15 s: silence longer than this is a dead stream. */
const QUIET_MS = 40_000;

class EventStream {
  private subs = new Set<Subscription>();
  private query = "";
  private cursor: string | null = null;
  private abort: AbortController | null = null;
  private pending = 0;
  private lastData = 0;
  private retry = 0;
  state: "idle" | "connecting" | "open" | "retrying" = "idle";
  /** Connections made, and how many of them resumed from a cursor. */
  stats = { connects: 0, resumes: 0 };
  private reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  private stateListeners = new Set<() => void>();

  constructor() {
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.checkQuiet();
    });
    setInterval(() => this.checkQuiet(), 10_000);
  }

  subscribe(deployments: string[], apps: string[], handler: (e: StreamEvent) => void): () => void {
    const sub = { deployments, apps, handler };
    this.subs.add(sub);
    this.schedule();
    return () => {
      this.subs.delete(sub);
      this.schedule();
    };
  }

  onState(fn: () => void): () => void {
    this.stateListeners.add(fn);
    return () => void this.stateListeners.delete(fn);
  }

  private setState(s: EventStream["state"]) {
    this.state = s;
    this.stateListeners.forEach((l) => l());
  }

  /** Subscriptions change in bursts (a page mounts many parts): connect once. */
  private schedule() {
    clearTimeout(this.pending);
    this.pending = window.setTimeout(() => this.reconcile(), 30);
  }

  private reconcile() {
    const deployments = new Set<string>();
    const apps = new Set<string>();
    for (const s of this.subs) {
      s.deployments.forEach((d) => deployments.add(d));
      s.apps.forEach((a) => apps.add(a));
    }
    const d = [...deployments].sort();
    const a = [...apps].sort().slice(0, Math.max(0, MAX_SUBSCRIPTIONS - d.length));
    const params = new URLSearchParams();
    if (d.length) params.set("deployments", d.join(","));
    if (a.length) params.set("apps", a.join(","));
    // The project is part of the key: the same names in another project
    // are other apps.
    const query = `${params.toString()}#${currentProject() ?? ""}`;
    if (query === this.query && this.abort) return;
    this.stop();
    this.query = query;
    this.cursor = null;
    if (d.length || a.length) this.connect();
    else this.setState("idle");
  }

  private stop() {
    this.abort?.abort();
    this.abort = null;
  }

  /** Ends the current connection as a network drop would (the browser test, and people debugging). */
  drop() {
    this.reader?.cancel().catch(() => {});
  }

  private checkQuiet() {
    if (this.abort && this.state === "open" && Date.now() - this.lastData > QUIET_MS) {
      // A throttled or suspended tab can hold a dead connection: resume.
      this.stop();
      this.connect();
    }
  }

  private async connect() {
    const controller = new AbortController();
    this.abort = controller;
    const query = this.query;
    const resumed = this.cursor !== null;
    this.setState(this.retry ? "retrying" : "connecting");
    try {
      const headers: Record<string, string> = { accept: "text/event-stream", ...projectHeaders() };
      if (this.cursor) headers["last-event-id"] = this.cursor;
      const response = await fetch(`/v1/events?${query.split("#")[0]}`, {
        headers,
        signal: controller.signal,
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok || !response.body) {
        if (response.status === 422 && resumed) this.cursor = null; // a cursor of another stream
        throw new Error(`events: ${response.status}`);
      }
      this.retry = 0;
      this.stats.connects++;
      if (resumed) this.stats.resumes++;
      this.lastData = Date.now();
      this.setState("open");
      this.dispatch({ kind: "open", fresh: !resumed });
      await this.read(response.body, controller.signal);
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    if (controller.signal.aborted || this.abort !== controller || this.query !== query) return;
    this.abort = null;
    this.retry = Math.min(this.retry + 1, 6);
    this.setState("retrying");
    const delay = Math.min(500 * 2 ** (this.retry - 1), 10_000);
    setTimeout(() => {
      if (!this.abort && this.query === query) this.connect();
    }, delay);
  }

  private async read(body: ReadableStream<Uint8Array>, signal: AbortSignal) {
    const reader = body.getReader();
    this.reader = reader;
    const decoder = new TextDecoder();
    const feed = sseParser((event, data, id) => {
      if (id !== null) this.cursor = id;
      this.deliver(event, data);
    });
    while (!signal.aborted) {
      const { value, done } = await reader.read();
      if (done) return;
      this.lastData = Date.now();
      feed(decoder.decode(value, { stream: true }));
    }
  }

  private deliver(kind: string, raw: string) {
    let data: any;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    if (kind === "deployment" || kind === "app" || kind === "log") this.dispatch({ kind, data } as StreamEvent);
  }

  private dispatch(e: StreamEvent) {
    for (const s of [...this.subs]) {
      if (e.kind === "open") s.handler(e);
      else if (e.kind === "log" && e.data.deployment && !s.deployments.includes(e.data.deployment)) continue;
      else if (e.kind === "log" && e.data.app && !e.data.deployment && !s.apps.includes(e.data.app)) continue;
      else s.handler(e);
    }
  }
}

export const events = new EventStream();
