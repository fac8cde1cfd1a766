// @scriptgen/client: the typed client, the error class and the event
// follower. The React hooks are at "@scriptgen/client/react".
export { ScriptgenError, type ErrorCode, type ErrorBody } from "./errors.js";
export {
  createClient,
  normalizeMode,
  unwrap,
  TERMINAL_STATUSES,
  type ClientOptions,
  type ScriptgenClient,
  type Schemas,
  type Job,
  type JobStatus,
  type GenerationRequest,
  type SystemInfo,
  type WorkerMode,
  type WorkerSystemChange,
} from "./client.js";
export {
  followJob,
  backoff,
  EVENT_NAMES,
  type EventName,
  type EventData,
  type ScriptEventData,
  type StreamEvent,
  type ConnectionState,
  type Outcome,
  type FollowOptions,
  type FollowResult,
  type EventSourceLike,
  type EventSourceConstructor,
} from "./follow.js";
export { ScriptText, type Applied } from "./script.js";
export type { paths, components, operations } from "./generated/openapi.js";
