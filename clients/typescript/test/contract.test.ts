// The client is the description's: the checked-in types are what
// `npm run gen` makes of api/openapi.yaml now, the events the follower
// listens to are the description's `x-events`, the server serves that same
// file, and its error answers come out as typed ScriptgenErrors.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { EVENT_NAMES, ScriptgenError, createClient } from "../src/index.js";
import { Stack, tempDir } from "./harness.js";

const pkg = resolve(import.meta.dirname, "..");
const spec = resolve(pkg, "../../api/openapi.yaml");

describe("the description", () => {
  it("generates the checked-in types (run `npm run gen` after changing api/openapi.yaml)", () => {
    const dir = tempDir();
    try {
      const out = join(dir.path, "openapi.ts");
      execFileSync(join(pkg, "node_modules/.bin/openapi-typescript"), [spec, "-o", out], { cwd: pkg, stdio: "pipe" });
      expect(readFileSync(join(pkg, "src/generated/openapi.ts"), "utf8")).toBe(readFileSync(out, "utf8"));
    } finally {
      dir.remove();
    }
  });

  it("names the events the follower listens to, and none named `error`", () => {
    const doc = parse(readFileSync(spec, "utf8"));
    const events = doc.paths["/api/generation/{id}/events"].get.responses["200"].content["text/event-stream"]["x-events"];
    expect(Object.keys(events).sort()).toEqual([...EVENT_NAMES].sort());
    expect(EVENT_NAMES).not.toContain("error");
  });
});

describe("the client against a real serve", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("is served the same description", async () => {
    const r = await fetch(stack.url + "/api/openapi.yaml");
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(readFileSync(spec, "utf8"));
  });

  it("submits, replays an Idempotency-Key, reads and cancels jobs, and reads the mode", async () => {
    const client = createClient({ baseUrl: stack.url });
    const body = { project_id: "ts-client", episode_data: { title: "둘째 날", synopsis: "비가 온다.", characters: ["지수"] } };
    const job = await client.submit(body, { idempotencyKey: "ts-client-1" });
    expect(job).toMatchObject({ kind: "generation", project_id: "ts-client", backend: "background_tasks" });
    expect((await client.submit(body, { idempotencyKey: "ts-client-1" })).id).toBe(job.id);
    expect((await client.getJob(job.id)).id).toBe(job.id);
    expect(await client.workerMode()).toBe("background_tasks");
    const other = await client.submit({ ...body, episode_data: { ...body.episode_data, title: "셋째 날" } });
    const cancelled = await client.cancel(other.id).catch((e: unknown) => e);
    // Cancelled while queued or running, or finished first (409 not_cancellable): both are answers of the description.
    if (cancelled instanceof ScriptgenError) expect(cancelled).toMatchObject({ status: 409, code: "not_cancellable" });
    else expect(cancelled).toMatchObject({ id: other.id, status: "cancelled" });
  });

  it("throws the JSON error shape as a ScriptgenError with code, message, field, status and request id", async () => {
    const client = createClient({ baseUrl: stack.url });
    const bad = await client
      .submit({ project_id: "ts-client", episode_data: { title: "", synopsis: "x", characters: [] } })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ScriptgenError);
    const e = bad as ScriptgenError;
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_request");
    expect(e.field).toMatch(/^episode_data\./);
    expect(e.message).not.toBe("");
    expect(e.requestId).toMatch(/^[A-Z0-9]+$/);
    expect(e.transient).toBe(false);

    const reused = await client
      .submit({ project_id: "ts-client", episode_data: { title: "a", synopsis: "b", characters: ["c"] } }, { idempotencyKey: "ts-client-1" })
      .catch((x: unknown) => x);
    expect(reused).toMatchObject({ status: 422, code: "idempotency_key_reused" });

    const admin = await client.setWorkerSystem({ enabled: false }).catch((x: unknown) => x);
    expect(admin).toBeInstanceOf(ScriptgenError);
    expect((admin as ScriptgenError).status).toBe(401);

    const down = await createClient({ baseUrl: "http://127.0.0.1:9" }).getJob("x").catch((x: unknown) => x);
    expect(down).toMatchObject({ status: 0, code: "network", transient: true });
  });

  it("reaches every route through `api`, typed", async () => {
    const client = createClient({ baseUrl: stack.url });
    const { data, response } = await client.api.GET("/health");
    expect(response.status).toBe(200);
    expect(data?.worker_system.type).toBe("background_tasks");
  });
});
