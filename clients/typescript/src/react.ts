// React hooks over followJob and the typed client: the names of the system
// scriptgen replaces (useGenerationJob, useGenerationSSE), without its bugs —
// cleanup closes the stream, the pending reconnect and the mode's polling of
// this render; a reconnect opens one stream and resumes after the last
// event; the follow stops at the final event; every event is named and
// listened to by name; the mode is 'durable' | 'background_tasks'.
import { createContext, createElement, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { createClient, isAbort, normalizeMode, type ClientOptions, type Job, type WorkerMode } from "./client.js";
import { ScriptgenError } from "./errors.js";
import { backoff, followJob, type ConnectionState, type EventSourceConstructor, type FollowResult, type StreamEvent } from "./follow.js";
import { ScriptText } from "./script.js";

export interface HookOptions extends ClientOptions {
  /** The EventSource class; the global one by default. */
  EventSource?: EventSourceConstructor;
  /** How often the worker mode is read again, in ms (3000, as the writer's page). */
  modeInterval?: number;
  /** The reconnect delay (min(1000·1.5ⁿ, 5000) ms by default). */
  backoff?: (attempt: number) => number;
  /** Called once per event, in order. */
  onEvent?: (event: StreamEvent) => void;
}

const ScriptgenContext = createContext<HookOptions>({});

/** ScriptgenProvider gives the hooks below it their server, credential and EventSource. */
export function ScriptgenProvider(props: { value: HookOptions; children?: ReactNode }) {
  return createElement(ScriptgenContext.Provider, { value: props.value }, props.children);
}

function useOptions(options?: HookOptions): HookOptions {
  const fromContext = useContext(ScriptgenContext);
  return { ...fromContext, ...options };
}

export interface GenerationSSE {
  /** The events delivered so far, each once, in seq order. */
  events: StreamEvent[];
  /** The connection: connecting, live, reconnecting, ended; idle without a job. */
  state: ConnectionState | "idle";
  /** How the follow ended (`failed` is the job's failure), once it has. */
  result: FollowResult | null;
  /** Why the job cannot be followed (404, 401…); a lost connection is not an error, it is retried. */
  error: ScriptgenError | null;
}

/** useGenerationSSE follows a job's events until its final one; unmounting (or another id) closes everything. */
export function useGenerationSSE(id: string | null | undefined, options?: HookOptions): GenerationSSE {
  const opts = useOptions(options);
  const onEvent = useRef(opts.onEvent);
  onEvent.current = opts.onEvent;
  const [events, setEvents] = useState<StreamEvent[]>([]);
  const [state, setState] = useState<GenerationSSE["state"]>("idle");
  const [result, setResult] = useState<FollowResult | null>(null);
  const [error, setError] = useState<ScriptgenError | null>(null);
  const backoffRef = useRef(opts.backoff);
  backoffRef.current = opts.backoff;

  useEffect(() => {
    setEvents([]);
    setResult(null);
    setError(null);
    if (!id) {
      setState("idle");
      return;
    }
    const abort = new AbortController();
    followJob(id, {
      baseUrl: opts.baseUrl,
      token: opts.token,
      fetch: opts.fetch,
      EventSource: opts.EventSource,
      backoff: backoffRef.current,
      signal: abort.signal,
      onState: (s) => {
        if (!abort.signal.aborted) setState(s);
      },
      onEvent: (ev) => {
        if (abort.signal.aborted) return;
        setEvents((prev) => [...prev, ev]);
        onEvent.current?.(ev);
      },
    }).then(
      (r) => {
        if (!abort.signal.aborted) setResult(r);
      },
      (e: unknown) => {
        if (!abort.signal.aborted) setError(asError(e));
      },
    );
    return () => abort.abort();
  }, [id, opts.baseUrl, opts.token, opts.fetch, opts.EventSource]);

  return { events, state, result, error };
}

export interface GenerationJob extends GenerationSSE {
  /** The job: read once, then kept up to date by its events (status, stage, progress, result, error). */
  job: Job | null;
  /** The script as written so far (its `script` events; gaps filled from the API). */
  script: string;
  /** The worker mode, read from system-info every modeInterval (until the job has ended). */
  mode: WorkerMode | null;
}

/** useGenerationJob is the job, its events, its script as written and the worker mode. */
export function useGenerationJob(id: string | null | undefined, options?: HookOptions): GenerationJob {
  const opts = useOptions(options);
  const client = useMemo(
    () => createClient({ baseUrl: opts.baseUrl, token: opts.token, fetch: opts.fetch }),
    [opts.baseUrl, opts.token, opts.fetch],
  );
  const [snapshot, setSnapshot] = useState<Job | null>(null);
  const [readError, setReadError] = useState<ScriptgenError | null>(null);
  const [script, setScript] = useState("");
  const scriptText = useRef(new ScriptText());
  const refetch = useRef<AbortController | null>(null);

  // The script: each script event goes to the assembler as it arrives; a gap
  // is filled from ?include=script, as the writer's page does.
  const fillGap = (jobId: string) => {
    if (refetch.current) return;
    const abort = new AbortController();
    refetch.current = abort;
    void client
      .getJob(jobId, { includeScript: true, signal: abort.signal })
      .then((j) => {
        if (typeof j.script === "string") scriptText.current.replaceWith(j.script);
        setScript(scriptText.current.text);
      })
      .catch(() => undefined) // the next gap asks again
      .finally(() => {
        if (refetch.current === abort) refetch.current = null;
      });
  };
  const sse = useGenerationSSE(id, {
    ...opts,
    onEvent: (ev) => {
      if (ev.type === "script" && id) {
        if (scriptText.current.apply(ev.seq, ev.data) === "gap") fillGap(id);
        else setScript(scriptText.current.text);
      }
      opts.onEvent?.(ev);
    },
  });
  const ended = sse.result !== null || sse.error !== null;

  // The job as read once.
  useEffect(() => {
    setSnapshot(null);
    setReadError(null);
    setScript("");
    scriptText.current = new ScriptText();
    if (!id) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A server that does not answer yet (restarting, busy) is asked again
    // after the stream's backoff; an answer that will not change (404…) is the error.
    const read = (attempt: number) => {
      client.getJob(id, { signal: abort.signal }).then(
        (j) => setSnapshot(j),
        (e: unknown) => {
          if (abort.signal.aborted) return;
          const err = asError(e);
          if (err.transient) timer = setTimeout(() => read(attempt + 1), (opts.backoff ?? backoff)(attempt));
          else setReadError(err);
        },
      );
    };
    read(0);
    return () => {
      clearTimeout(timer);
      abort.abort();
      refetch.current?.abort();
      refetch.current = null;
    };
  }, [id, client]);

  const mode = useWorkerMode({ ...opts, enabled: !(id && ended) }, client);

  const job = useMemo(() => applyEvents(snapshot, sse.events, sse.result), [snapshot, sse.events, sse.result]);
  return { ...sse, job, script, mode, error: sse.error ?? readError };
}

/**
 * useWorkerMode reads the worker mode now and every modeInterval ms while
 * enabled; a failed read keeps the last mode known.
 */
export function useWorkerMode(
  options?: HookOptions & { enabled?: boolean },
  givenClient?: ReturnType<typeof createClient>,
): WorkerMode | null {
  const opts = useOptions(options);
  const enabled = options?.enabled ?? true;
  const interval = opts.modeInterval ?? 3000;
  const client = useMemo(
    () => givenClient ?? createClient({ baseUrl: opts.baseUrl, token: opts.token, fetch: opts.fetch }),
    [givenClient, opts.baseUrl, opts.token, opts.fetch],
  );
  const [mode, setMode] = useState<WorkerMode | null>(null);
  useEffect(() => {
    if (!enabled) return;
    let inFlight: AbortController | null = null;
    const read = () => {
      if (inFlight) return; // the last read is still waiting for an answer
      const abort = new AbortController();
      inFlight = abort;
      client
        .systemInfo({ signal: abort.signal })
        .then((info) => {
          const m = normalizeMode(info.worker_system.type);
          if (m && !abort.signal.aborted) setMode(m);
        })
        .catch(() => undefined)
        .finally(() => {
          if (inFlight === abort) inFlight = null;
        });
    };
    read();
    const timer = setInterval(read, interval);
    return () => {
      clearInterval(timer);
      inFlight?.abort();
    };
  }, [client, enabled, interval]);
  return mode;
}

/** applyEvents brings the job read once up to date with the events that followed. */
function applyEvents(snapshot: Job | null, events: StreamEvent[], result: FollowResult | null): Job | null {
  let job = result?.job ?? snapshot;
  if (!job) return null;
  for (const ev of events) {
    if (ev.type === "script") continue;
    const d = ev.data;
    job = { ...job, status: d.status, progress: d.progress, stage: d.stage };
    if (ev.type === "result") job.result = d.data as Job["result"];
    if (ev.type === "failed") job.error = d.message;
  }
  return job;
}

function asError(e: unknown): ScriptgenError {
  if (e instanceof ScriptgenError) return e;
  if (isAbort(e)) return new ScriptgenError({ status: 0, code: "network", message: "aborted", cause: e });
  return ScriptgenError.network(e);
}
