// followJob follows a job's Server-Sent Events (docs/design.md sections 7
// and 12) the way the server's own writer page does
// (internal/web/static/writer.js): one EventSource at a time, its own
// reconnects turned off by closing it on every error; a reconnect after a
// backoff resumes after the last event seen (`?last_event_id=`, since an
// EventSource sends no headers of ours); an event at or below that id is
// dropped; the final event, or a 204 to a resume, ends it.
import type { components } from "./generated/openapi.js";
import { createClient, type ClientOptions, type Job, type ScriptgenClient, TERMINAL_STATUSES, isAbort } from "./client.js";
import { ScriptgenError } from "./errors.js";

export type EventData = components["schemas"]["Event"];
export type ScriptEventData = components["schemas"]["ScriptEvent"];

/** The names of the stream's events (`x-events` of api/openapi.yaml). No event is named `error`. */
export const EVENT_NAMES = ["status", "progress", "script", "result", "failed"] as const;
export type EventName = (typeof EVENT_NAMES)[number];

/** One event of a job's stream, by its name. */
export type StreamEvent =
  | { type: "script"; seq: number; data: ScriptEventData }
  | { type: Exclude<EventName, "script">; seq: number; data: EventData };

/** The state of the follower's connection, for a page's indicator. */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "ended";

/** How a follow ended. `failed` is the job's failure; a lost connection is never an outcome: it is retried. */
export type Outcome = "succeeded" | "failed" | "cancelled" | "aborted";

export interface FollowResult {
  outcome: Outcome;
  /** The seq of the last event delivered (or the one the follow started from). */
  lastSeq: number;
  /** The final event, when the stream delivered it. */
  final?: StreamEvent;
  /** The job as read after a 204 (the client had its last event already). */
  job?: Job;
  /** Event streams opened. */
  connects: number;
  /** Events dropped because their seq was at or below the last one delivered. */
  duplicates: number;
  /** Pairs [last delivered, next received] where a seq was skipped (the server never skips one). */
  gaps: Array<[number, number]>;
}

/** The part of the EventSource interface the follower uses (the browser's, or the `eventsource` package's). */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: Event) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface FollowOptions extends ClientOptions {
  /** Called once per event, in seq order, never twice for a seq. */
  onEvent?: (event: StreamEvent) => void;
  /** Called when the connection's state changes; `attempt` counts reconnects since the last event. */
  onState?: (state: ConnectionState, info: { attempt: number; delayMs?: number }) => void;
  /** Aborting stops the follow: the stream is closed, a pending reconnect cancelled. */
  signal?: AbortSignal;
  /** Resume after this seq (0, the default, is the whole log). */
  lastEventId?: number;
  /** The EventSource class; the global one by default (in Node: `import { EventSource } from "eventsource"`). */
  EventSource?: EventSourceConstructor;
  /** The client for the job's look-ups between reconnects (one is made from the other options otherwise). */
  client?: ScriptgenClient;
  /** The delay before reconnect n (0-based); min(1000·1.5ⁿ, 5000) ms by default. */
  backoff?: (attempt: number) => number;
}

/** backoff is the default reconnect delay: min(1000·1.5ⁿ, 5000) ms. */
export function backoff(attempt: number): number {
  return Math.min(1000 * Math.pow(1.5, attempt), 5000);
}

const CLOSED = 2; // EventSource.CLOSED

/**
 * followJob delivers the job's events to onEvent, each once and in order,
 * until the final one. It resolves with how the job ended (`failed` is the
 * job's own failure, told by its `failed` event), or `aborted`; it rejects
 * with a ScriptgenError only when the job cannot be followed (404, 401, 403).
 */
export function followJob(id: string, options: FollowOptions = {}): Promise<FollowResult> {
  try {
    return new Follower(id, options).run();
  } catch (e) {
    return Promise.reject(e); // no EventSource: a rejection, as every other way it can fail
  }
}

class Follower {
  private readonly client: ScriptgenClient;
  private readonly ES: EventSourceConstructor;
  private readonly backoff: (attempt: number) => number;
  private es: EventSourceLike | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private attempts = 0;
  private done = false;
  private state: ConnectionState | undefined;
  private readonly result: FollowResult;
  private settle!: (r: FollowResult) => void;
  private fail!: (e: unknown) => void;
  private lookup: AbortController | null = null;
  private readonly onAbort = () => this.finish("aborted");

  constructor(
    private readonly id: string,
    private readonly opts: FollowOptions,
  ) {
    this.client = opts.client ?? createClient(opts);
    const ES = opts.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
    if (!ES) throw new TypeError("followJob: no EventSource here; pass options.EventSource (in Node, the `eventsource` package's)");
    this.ES = ES;
    this.backoff = opts.backoff ?? backoff;
    this.result = { outcome: "aborted", lastSeq: opts.lastEventId ?? 0, connects: 0, duplicates: 0, gaps: [] };
  }

  run(): Promise<FollowResult> {
    return new Promise<FollowResult>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
      const signal = this.opts.signal;
      if (signal?.aborted) return this.finish("aborted");
      signal?.addEventListener("abort", this.onAbort, { once: true });
      this.connect();
    });
  }

  private setState(state: ConnectionState, delayMs?: number) {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this.opts.onState?.(state, { attempt: this.attempts, delayMs });
  }

  private url(): string {
    const params = new URLSearchParams();
    if (this.result.lastSeq > 0) params.set("last_event_id", String(this.result.lastSeq));
    if (this.client.token) params.set("access_token", this.client.token);
    const q = params.toString();
    return `${this.client.baseUrl}/api/generation/${encodeURIComponent(this.id)}/events${q ? "?" + q : ""}`;
  }

  private connect() {
    if (this.done) return;
    this.setState("connecting");
    const es = new this.ES(this.url());
    this.es = es;
    this.result.connects++;
    let heard = false;
    es.onopen = () => {
      if (this.es === es) this.setState("live");
    };
    for (const name of EVENT_NAMES) {
      es.addEventListener(name, (e: MessageEvent) => {
        if (this.es !== es) return;
        heard = true;
        this.onMessage(name, e);
      });
    }
    es.onerror = () => {
      // CLOSED without an event: the server answered without a stream (204
      // for a finished job whose last event we have, or an error status);
      // CONNECTING: a stream that broke, or no answer at all.
      const refused = es.readyState === CLOSED && !heard;
      es.close();
      if (this.es !== es) return;
      this.es = null;
      if (!this.done) this.reconnect(refused);
    };
  }

  private onMessage(name: EventName, e: MessageEvent) {
    const seq = Number(e.lastEventId);
    let data: unknown;
    try {
      data = JSON.parse(String(e.data));
    } catch {
      return; // not one of the server's events
    }
    if (!Number.isSafeInteger(seq) || seq <= this.result.lastSeq) {
      this.result.duplicates++;
      return;
    }
    if (seq !== this.result.lastSeq + 1) this.result.gaps.push([this.result.lastSeq, seq]);
    this.result.lastSeq = seq;
    this.attempts = 0;
    const event = { type: name, seq, data } as StreamEvent;
    this.opts.onEvent?.(event);
    if (event.type === "script") return;
    // The final event ends the stream: nothing follows it, so nothing is asked again.
    if (event.data.final || TERMINAL_STATUSES.has(event.data.status)) {
      this.result.final = event;
      this.finish(event.data.status as Outcome);
    }
  }

  /**
   * reconnect looks at the job after a backoff and follows its stream again
   * from the last event, unless the job is finished and its stream had
   * nothing more for us (refused): then the follow ends from the job's state.
   */
  private reconnect(refused: boolean) {
    const delayMs = this.backoff(this.attempts);
    this.attempts++;
    this.setState("reconnecting", delayMs);
    this.timer = setTimeout(() => void this.lookAndConnect(refused), delayMs);
  }

  private async lookAndConnect(refused: boolean) {
    if (this.done) return;
    this.lookup = new AbortController();
    let job: Job;
    try {
      job = await this.client.getJob(this.id, { signal: this.lookup.signal });
    } catch (e) {
      if (this.done || isAbort(e)) return;
      if (e instanceof ScriptgenError && !e.transient) return this.finishWithError(e);
      return this.reconnect(refused); // the server is down or busy: back off further
    } finally {
      this.lookup = null;
    }
    if (this.done) return;
    if (refused && TERMINAL_STATUSES.has(job.status)) {
      this.result.job = job;
      return this.finish(job.status as Outcome);
    }
    this.connect();
  }

  private stop() {
    this.done = true;
    clearTimeout(this.timer);
    this.lookup?.abort();
    this.es?.close();
    this.es = null;
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    this.setState("ended");
  }

  private finish(outcome: Outcome) {
    if (this.done) return;
    this.stop();
    this.result.outcome = outcome;
    this.settle(this.result);
  }

  private finishWithError(e: ScriptgenError) {
    if (this.done) return;
    this.stop();
    this.fail(e);
  }
}
