// followJob against a real `scriptgen serve`: each event once and in order,
// across cut connections, a graceful restart, a mode switch and a rollback;
// nothing asked after the final event; a job's failure told apart from a
// lost connection.
import http from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { backoff, createClient, followJob, ScriptgenError, type ConnectionState, type StreamEvent } from "../src/index.js";
import { CountingEventSource } from "./es.js";
import {
  ADMIN_TOKEN,
  Proxy,
  Stack,
  adminCall,
  checkExactlyOnce,
  freePort,
  rawEvents,
  redisAvailable,
  sleep,
  startRedis,
  submitEpisode,
  type Redis,
} from "./harness.js";

/** expectWholeLog: what the follower delivered is the job's whole log, 1…N, each once, final last. */
async function expectWholeLog(base: string, id: string, got: StreamEvent[]) {
  const log = await rawEvents(base, id);
  expect(got.map((e) => e.seq)).toEqual(log.map((e) => e.id));
  expect(got.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
  expect(got.map((e) => e.type)).toEqual(log.map((e) => e.event));
  expect(got.map((e) => JSON.stringify(e.data))).toEqual(log.map((e) => JSON.stringify(JSON.parse(e.data))));
  const finals = got.filter((e) => e.type !== "script" && e.data.final);
  expect(finals).toHaveLength(1);
  expect(finals[0]).toBe(got[got.length - 1]);
}

beforeEach(() => CountingEventSource.reset());

describe("followJob on one server", () => {
  let stack: Stack;
  let proxy: Proxy;
  beforeAll(async () => {
    stack = await Stack.start({ env: { GENERATOR_STEP_DELAY: "400ms" } });
    proxy = await new Proxy(stack.url).listen();
  });
  afterAll(async () => {
    await proxy?.close();
    await stack?.stop();
  });

  it("delivers progress to the end exactly once and asks nothing after the final event", async () => {
    const id = await submitEpisode(stack.url, "ts-once");
    const got: StreamEvent[] = [];
    let finalAt = 0;
    const result = await followJob(id, {
      baseUrl: proxy.url,
      EventSource: CountingEventSource,
      onEvent: (e) => {
        got.push(e);
        if (e.type !== "script" && e.data.final) finalAt = Date.now();
      },
    });
    expect(result.outcome).toBe("succeeded");
    expect(result).toMatchObject({ connects: 1, duplicates: 0, gaps: [] });
    expect(got.some((e) => e.type === "progress")).toBe(true);
    expect(got.some((e) => e.type === "script")).toBe(true);
    expect(result.final?.type).toBe("result");
    await expectWholeLog(stack.url, id, got);
    // Longer than any reconnect's first backoff: nothing may come.
    await sleep(2500);
    expect(proxy.requests.filter((r) => r.at >= finalAt)).toEqual([]);
    expect(proxy.open).toBe(0);
    expect(CountingEventSource.open).toBe(0);
    expect(CountingEventSource.most).toBe(1);
    await checkExactlyOnce(stack.url, "ts-once", [id]);
  });

  it("resumes after cut connections with no duplicate and no gap, one stream at a time", async () => {
    const id = await submitEpisode(stack.url, "ts-cuts");
    const got: StreamEvent[] = [];
    // Cut the first two streams at their first event (after the job's second),
    // unless the final event came in the same read (a loaded machine's reconnect
    // can take as long as the rest of the job).
    let cutFor = 0;
    let cuts = 0;
    let ended = false;
    const result = await followJob(id, {
      baseUrl: proxy.url,
      EventSource: CountingEventSource,
      onEvent: (e) => {
        got.push(e);
        if (e.type !== "script" && e.data.final) ended = true;
        const stream = CountingEventSource.made;
        if (e.seq >= 2 && stream <= 2 && cutFor < stream) {
          cutFor = stream;
          setTimeout(() => {
            if (ended) return;
            cuts++;
            proxy.cut();
          }, 0);
        }
      },
    });
    expect(result.outcome).toBe("succeeded");
    expect(cuts).toBeGreaterThanOrEqual(1);
    expect(result.connects).toBe(1 + cuts);
    expect(result.duplicates).toBe(0);
    expect(CountingEventSource.most).toBe(1);
    await expectWholeLog(stack.url, id, got);
    // Each reconnect asked the job once and resumed after its last event.
    const streams = proxy.requests.filter((r) => r.url.startsWith(`/api/generation/${id}/events`)).map((r) => r.url);
    expect(streams[0]).toBe(`/api/generation/${id}/events`);
    for (const u of streams.slice(1)) expect(u).toMatch(/\?last_event_id=\d+$/);
    await checkExactlyOnce(stack.url, "ts-cuts", [id]);
  });

  it("drops a replayed event at or below the last one it delivered", async () => {
    const id = await submitEpisode(stack.url, "ts-replay");
    // A proxy that loses the resume: every reconnect gets the log from its start.
    const forgetful = await new Proxy(stack.url).listen();
    forgetful.rewrite = (u) => u.replace(/[?&]last_event_id=\d+/, "");
    const got: StreamEvent[] = [];
    let cut = false;
    try {
      const result = await followJob(id, {
        baseUrl: forgetful.url,
        EventSource: CountingEventSource,
        onEvent: (e) => {
          got.push(e);
          if (e.seq === 5 && !cut) {
            cut = true;
            setTimeout(() => forgetful.cut(), 0);
          }
        },
      });
      expect(result.outcome).toBe("succeeded");
      expect(result.connects).toBe(2);
      expect(result.duplicates).toBeGreaterThanOrEqual(5);
      await expectWholeLog(stack.url, id, got);
      await checkExactlyOnce(stack.url, "ts-replay", [id]);
    } finally {
      await forgetful.close();
    }
  });

  it("ends a resume after a finished job's last event on the 204, from the job's state", async () => {
    const id = await submitEpisode(stack.url, "ts-204");
    const first = await followJob(id, { baseUrl: stack.url, EventSource: CountingEventSource });
    const before = proxy.requests.length;
    const got: StreamEvent[] = [];
    const again = await followJob(id, {
      baseUrl: proxy.url,
      EventSource: CountingEventSource,
      lastEventId: first.lastSeq,
      onEvent: (e) => got.push(e),
    });
    expect(got).toEqual([]);
    expect(again).toMatchObject({ outcome: "succeeded", lastSeq: first.lastSeq, connects: 1 });
    expect(again.job?.status).toBe("succeeded");
    // The 204, then one look at the job; no second stream.
    expect(proxy.requests.slice(before).map((r) => r.url)).toEqual([
      `/api/generation/${id}/events?last_event_id=${first.lastSeq}`,
      `/api/generation/${id}`,
    ]);
    await checkExactlyOnce(stack.url, "ts-204", [id]);
  });

  it("rejects with the API's error for a job that does not exist", async () => {
    const err = await followJob("01a24dcc-c032-70dd-b121-06e60e4a0000", {
      baseUrl: stack.url,
      EventSource: CountingEventSource,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptgenError);
    expect(err).toMatchObject({ status: 404, code: "not_found" });
    expect((err as ScriptgenError).requestId).toMatch(/^[A-Z0-9]+$/);
    expect(CountingEventSource.open).toBe(0);
  });

  it("stops on abort: the stream closed, nothing asked afterwards", async () => {
    const id = await submitEpisode(stack.url, "ts-abort");
    const abort = new AbortController();
    const got: StreamEvent[] = [];
    const done = followJob(id, {
      baseUrl: proxy.url,
      EventSource: CountingEventSource,
      signal: abort.signal,
      onEvent: (e) => {
        got.push(e);
        if (e.seq === 3) abort.abort();
      },
    });
    const result = await done;
    const abortedAt = Date.now();
    expect(result.outcome).toBe("aborted");
    expect(got.map((e) => e.seq)).toEqual([1, 2, 3]);
    await sleep(2500);
    expect(proxy.requests.filter((r) => r.at > abortedAt)).toEqual([]);
    expect(proxy.open).toBe(0);
    expect(CountingEventSource.open).toBe(0);
  });

  it("backs off min(1000·1.5ⁿ, 5000) ms while the server refuses, one stream at a time", async () => {
    const dead = await new Proxy(`http://127.0.0.1:${await freePort()}`).listen();
    const delays: number[] = [];
    const abort = new AbortController();
    try {
      const done = followJob("01a24dcc-c032-70dd-b121-06e60e4a0001", {
        baseUrl: dead.url,
        EventSource: CountingEventSource,
        signal: abort.signal,
        onState: (s, info) => {
          if (s === "reconnecting") delays.push(info.delayMs ?? -1);
          if (delays.length === 6) abort.abort();
        },
      });
      const result = await done;
      expect(result.outcome).toBe("aborted");
      expect(delays).toEqual([0, 1, 2, 3, 4, 5].map(backoff));
      expect(delays).toEqual([1000, 1500, 2250, 3375, 5000, 5000]);
      // One stream, then a look at the job per backoff while nothing answers.
      expect(CountingEventSource.made).toBe(1);
      expect(CountingEventSource.most).toBe(1);
      expect(CountingEventSource.open).toBe(0);
    } finally {
      await dead.close();
    }
  });
});

describe("followJob across a graceful restart, a mode switch and a rollback", () => {
  let redis: Redis | undefined;
  let stack: Stack;
  const hasRedis = redisAvailable();
  beforeAll(async () => {
    if (!hasRedis) return;
    redis = await startRedis();
    stack = await Stack.start({ redisUrl: redis.url, env: { GENERATOR_STEP_DELAY: "300ms" } });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  it.skipIf(!hasRedis)("delivers every job's events once through all three", async () => {
    const client = createClient({ baseUrl: stack.url, token: ADMIN_TOKEN });
    const follow = (id: string, stage: string, onMid: () => void) => {
      const got: StreamEvent[] = [];
      const states: ConnectionState[] = [];
      let fired = false;
      const done = followJob(id, {
        baseUrl: stack.url,
        EventSource: CountingEventSource,
        onState: (s) => states.push(s),
        onEvent: (e) => {
          got.push(e);
          if (!fired && e.type !== "script" && e.data.stage === stage) {
            fired = true;
            onMid();
          }
        },
      });
      return { got, states, done };
    };

    const modeBecomes = async (want: string) => {
      let mode = await client.workerMode();
      for (let i = 0; i < 100 && mode !== want; i++) {
        await sleep(100);
        mode = await client.workerMode();
      }
      expect(mode).toBe(want);
    };

    // 1. A background_tasks job across a graceful restart (SIGTERM, then a new
    // serve on the same port and database): its run is released and resumed.
    await client.setWorkerSystem({ enabled: false, reason: "ts client test starts on background_tasks" });
    await modeBecomes("background_tasks");
    const id1 = await submitEpisode(stack.url, "ts-switch");
    let restarted!: Promise<void>;
    const f1 = follow(id1, "scenes", () => (restarted = stack.restart()));
    const r1 = await f1.done;
    await restarted;
    expect(r1.outcome).toBe("succeeded");
    expect(f1.states).toContain("reconnecting");
    expect(r1.connects).toBeGreaterThan(1);
    await expectWholeLog(stack.url, id1, f1.got);

    // 2. The mode switched to durable: a job on a worker, followed across
    // another restart of serve.
    await stack.startWorker();
    await client.setWorkerSystem({ enabled: true, rollout_percent: 100, reason: "ts client test" });
    await modeBecomes("durable");
    const id2 = await submitEpisode(stack.url, "ts-switch");
    const f2 = follow(id2, "scenes", () => (restarted = stack.restart()));
    const r2 = await f2.done;
    await restarted;
    expect(r2.outcome).toBe("succeeded");
    expect(r2.connects).toBeGreaterThan(1);
    await expectWholeLog(stack.url, id2, f2.got);
    expect((await client.getJob(id2)).backend).toBe("durable");

    // 3. A rollback while a durable job waits for a worker (none runs): the
    // job moves to background_tasks and finishes there; the stream goes on.
    for (const w of stack.workers) await w.stop();
    const id3 = await submitEpisode(stack.url, "ts-switch");
    expect((await client.getJob(id3)).backend).toBe("durable");
    let rolledBack!: Promise<unknown>;
    const f3 = follow(id3, "queued", () => (rolledBack = client.rollback("ts client test")));
    const r3 = await f3.done;
    await rolledBack;
    expect(r3.outcome).toBe("succeeded");
    await expectWholeLog(stack.url, id3, f3.got);
    expect((await client.getJob(id3)).backend).toBe("background_tasks");
    expect(f3.got.some((e) => e.type === "status" && /migrat/i.test(e.data.message))).toBe(true);
    expect(await client.workerMode()).toBe("background_tasks");

    expect(CountingEventSource.most).toBe(1);
    expect(CountingEventSource.open).toBe(0);
    await checkExactlyOnce(stack.url, "ts-switch", [id1, id2, id3]);
  });
});

describe("a job's failure", () => {
  let stack: Stack;
  let model: http.Server;
  beforeAll(async () => {
    // An OpenAI-compatible server that refuses every request (400): the job fails for good.
    model = http.createServer((_, res) => {
      res.writeHead(400, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: "the model refused", type: "invalid_request_error" } }));
    });
    await new Promise<void>((r) => model.listen(0, "127.0.0.1", () => r()));
    const port = (model.address() as { port: number }).port;
    stack = await Stack.start({ env: { GENERATOR: "openai", OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`, OPENAI_API_KEY: "x" } });
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise((r) => model?.close(r));
  });

  it("is the outcome `failed` from its `failed` event, not a lost connection", async () => {
    const id = await submitEpisode(stack.url, "ts-fail");
    const got: StreamEvent[] = [];
    const states: ConnectionState[] = [];
    const result = await followJob(id, {
      baseUrl: stack.url,
      EventSource: CountingEventSource,
      onEvent: (e) => got.push(e),
      onState: (s) => states.push(s),
    });
    expect(result.outcome).toBe("failed");
    expect(result.final?.type).toBe("failed");
    expect(result.final?.type !== "script" && result.final?.data.message).toMatch(/refused|400/);
    expect(states).not.toContain("reconnecting");
    expect(states[states.length - 1]).toBe("ended");
    await expectWholeLog(stack.url, id, got);
    // Failed for good: no episode saved.
    expect((await createClient({ baseUrl: stack.url }).getJob(id)).status).toBe("failed");
    const episodes = (await (await fetch(`${stack.url}/api/projects/ts-fail/episodes`)).json()) as { items: unknown[] };
    expect(episodes.items).toEqual([]);
  });
});
