// The typed HTTP client: openapi-fetch over the types openapi-typescript
// generates from api/openapi.yaml (src/generated/openapi.ts, `npm run gen`),
// with the calls a frontend makes most wrapped so that an error answer
// throws a ScriptgenError instead of being returned beside the data.
import createFetchClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./generated/openapi.js";
import { ScriptgenError } from "./errors.js";

export type Schemas = components["schemas"];
export type Job = Schemas["Job"];
export type JobStatus = Schemas["JobStatus"];
export type GenerationRequest = Schemas["GenerationRequest"];
export type SystemInfo = Schemas["SystemInfo"];
export type WorkerSystemChange = Schemas["WorkerSystemChange"];

/** The worker mode: where new jobs run. */
export type WorkerMode = "durable" | "background_tasks";

/**
 * normalizeMode reads a worker mode as scriptgen or the system it replaced
 * wrote it: `rq` is that system's name for the durable queue. Anything else
 * is undefined.
 */
export function normalizeMode(type: unknown): WorkerMode | undefined {
  if (type === "durable" || type === "rq") return "durable";
  if (type === "background_tasks") return "background_tasks";
  return undefined;
}

/** The job statuses after which nothing changes. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

export interface ClientOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8002`; empty (the default) for the page's own origin. */
  baseUrl?: string;
  /** An API key, a JWT or an admin token, sent as `Authorization: Bearer …` (and as `?access_token=` to event streams). */
  token?: string;
  /** The fetch to use (the global one by default). */
  fetch?: typeof globalThis.fetch;
}

/** A call's result as openapi-fetch returns it. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** ScriptgenClient is the typed client; `api` reaches every route of the description. */
export interface ScriptgenClient {
  /** openapi-fetch's client: `api.GET("/api/usage")` and so on, typed from the description. */
  readonly api: Client<paths>;
  readonly baseUrl: string;
  readonly token?: string;
  submit(body: GenerationRequest, opts?: { idempotencyKey?: string; signal?: AbortSignal }): Promise<Job>;
  getJob(id: string, opts?: { includeScript?: boolean; signal?: AbortSignal }): Promise<Job>;
  cancel(id: string, opts?: { signal?: AbortSignal }): Promise<Job>;
  systemInfo(opts?: { signal?: AbortSignal }): Promise<SystemInfo>;
  /** workerMode reads `worker_system.type` of system-info (`rq` read as `durable`). */
  workerMode(opts?: { signal?: AbortSignal }): Promise<WorkerMode>;
  /** setWorkerSystem changes the worker-system flag (admin token). */
  setWorkerSystem(change: WorkerSystemChange): Promise<Schemas["WorkerSystem"]>;
  /** rollback runs the emergency rollback (admin token). */
  rollback(reason: string): Promise<Schemas["OperationResult"]>;
}

export function createClient(options: ClientOptions = {}): ScriptgenClient {
  const baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  // openapi-fetch reads the global fetch when it is called, not when the client is made.
  const fetchFn = options.fetch ?? ((input: Request) => globalThis.fetch(input));
  const api = createFetchClient<paths>({ baseUrl, headers, fetch: fetchFn });

  return {
    api,
    baseUrl,
    token: options.token,
    async submit(body, opts = {}) {
      const header = opts.idempotencyKey ? { "Idempotency-Key": opts.idempotencyKey } : undefined;
      return unwrap(() => api.POST("/api/generation", { body, params: { header }, signal: opts.signal }));
    },
    async getJob(id, opts = {}) {
      const query = opts.includeScript ? { include: "script" as const } : undefined;
      return unwrap(() => api.GET("/api/generation/{id}", { params: { path: { id }, query }, signal: opts.signal }));
    },
    async cancel(id, opts = {}) {
      return unwrap(() => api.POST("/api/generation/{id}/cancel", { params: { path: { id } }, signal: opts.signal }));
    },
    async systemInfo(opts = {}) {
      return unwrap(() => api.GET("/api/generation/system-info", { signal: opts.signal }));
    },
    async workerMode(opts = {}) {
      const info = await this.systemInfo(opts);
      const mode = normalizeMode(info.worker_system.type);
      if (!mode) {
        throw new ScriptgenError({ status: 200, code: "unexpected", message: `unknown worker mode ${JSON.stringify(info.worker_system.type)}` });
      }
      return mode;
    },
    async setWorkerSystem(change) {
      return unwrap(() => api.PUT("/api/admin/worker-system", { body: change }));
    },
    async rollback(reason) {
      return unwrap(() => api.POST("/api/admin/rollback", { body: { reason } }));
    },
  };
}

/**
 * unwrap turns openapi-fetch's {data, error, response} into the data or a
 * thrown ScriptgenError; a request that got no answer throws one with
 * status 0 and code `network`. An aborted request throws the AbortError.
 */
export async function unwrap<T>(call: () => Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await call();
  } catch (e) {
    if (isAbort(e)) throw e;
    throw ScriptgenError.network(e);
  }
  if (!answer.response.ok || answer.data === undefined) {
    throw ScriptgenError.fromResponse(answer.response, answer.error);
  }
  return answer.data;
}

export function isAbort(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "AbortError";
}
