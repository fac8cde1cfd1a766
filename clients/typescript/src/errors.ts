// The API's one error shape, {"error": {"code", "message", "field"}}, as an
// exception (api/openapi.yaml, components.schemas.Error).
import type { components } from "./generated/openapi.js";

export type ErrorCode = components["schemas"]["ErrorCode"];
export type ErrorBody = components["schemas"]["Error"];

/** ScriptgenError is an answer of the API that is not a success. */
export class ScriptgenError extends Error {
  /** The HTTP status (0 when the server did not answer). */
  readonly status: number;
  /** The error's code (`not_found`, `rate_limited`, …); `network` when the server did not answer. */
  readonly code: ErrorCode | "network" | "unexpected";
  /** The input at fault, when the server names one (`project_id`, `Idempotency-Key`…). */
  readonly field?: string;
  /** The server's `X-Request-Id`, which its log names for a 500. */
  readonly requestId?: string;
  /** `Retry-After` in seconds, for a 429 or a 503 that gives one. */
  readonly retryAfter?: number;

  constructor(init: {
    status: number;
    code: ScriptgenError["code"];
    message: string;
    field?: string;
    requestId?: string;
    retryAfter?: number;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ScriptgenError";
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }

  /** fromResponse builds the error from an answer and its parsed body (the JSON error shape, or anything else). */
  static fromResponse(response: Response, body: unknown): ScriptgenError {
    const problem = isErrorBody(body) ? body.error : undefined;
    const retry = Number(response.headers.get("Retry-After"));
    return new ScriptgenError({
      status: response.status,
      code: problem?.code ?? "unexpected",
      message: problem?.message ?? `HTTP ${response.status}`,
      field: problem?.field,
      requestId: response.headers.get("X-Request-Id") ?? undefined,
      retryAfter: Number.isFinite(retry) && retry > 0 ? retry : undefined,
    });
  }

  /** network wraps a request that got no answer (refused, reset, DNS). */
  static network(cause: unknown): ScriptgenError {
    const message = cause instanceof Error ? cause.message : String(cause);
    return new ScriptgenError({ status: 0, code: "network", message: `no answer: ${message}`, cause });
  }

  /** transient tells whether asking again later may succeed: no answer, 429, 5xx. */
  get transient(): boolean {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

function isErrorBody(body: unknown): body is ErrorBody {
  if (typeof body !== "object" || body === null) return false;
  const e = (body as { error?: unknown }).error;
  return typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string";
}
