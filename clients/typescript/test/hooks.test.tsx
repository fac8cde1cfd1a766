// @vitest-environment jsdom
// The React hooks against a real `scriptgen serve`, rendered with Testing
// Library in jsdom: a job followed to its end once, its script as saved, the
// worker mode refreshed across a switch and a rollback, and nothing left
// open or asked after unmount or after the final event.
import { StrictMode } from "react";
import { act, cleanup, render, renderHook, waitFor } from "@testing-library/react";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { normalizeMode } from "../src/index.js";
import { ScriptgenProvider, useGenerationJob, useGenerationSSE, type HookOptions } from "../src/react.js";
import { CountingEventSource } from "./es.js";
import { ADMIN_TOKEN, Proxy, Stack, adminCall, checkExactlyOnce, rawEvents, redisAvailable, sleep, startRedis, submitEpisode, type Redis } from "./harness.js";

beforeEach(() => CountingEventSource.reset());
afterEach(() => cleanup());

const until = { timeout: 60_000, interval: 20 };

describe("useGenerationJob", () => {
  let stack: Stack;
  let proxy: Proxy;
  let opts: HookOptions;
  beforeAll(async () => {
    stack = await Stack.start({ env: { GENERATOR_STEP_DELAY: "200ms" } });
    proxy = await new Proxy(stack.url).listen();
    opts = { baseUrl: proxy.url, EventSource: CountingEventSource, modeInterval: 300 };
  });
  afterAll(async () => {
    await proxy?.close();
    await stack?.stop();
  });

  it("follows a job to its end once: job, events, script and mode; nothing asked after the final event", async () => {
    const id = await submitEpisode(stack.url, "ts-hook");
    const { result, unmount } = renderHook(() => useGenerationJob(id, opts));
    await waitFor(() => expect(result.current.result?.outcome).toBe("succeeded"), until);
    const finalAt = Date.now();
    const h = result.current;
    const log = await rawEvents(stack.url, id);
    expect(h.events.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    expect(h.error).toBeNull();
    expect(h.state).toBe("ended");
    expect(h.mode).toBe("background_tasks");
    expect(h.job).toMatchObject({ id, status: "succeeded", progress: 100, stage: "done" });
    const n = (h.job?.result as { episode_number: number }).episode_number;
    const ep = (await (await fetch(`${stack.url}/api/projects/ts-hook/episodes/${n}`)).json()) as { script: string; job_id: string };
    expect(ep.job_id).toBe(id);
    expect(h.script).toBe(ep.script);
    // The mode is polled every 300 ms while the job runs, and not after its end.
    await sleep(1500);
    expect(proxy.requests.filter((r) => r.at > finalAt)).toEqual([]);
    expect(proxy.open).toBe(0);
    expect(CountingEventSource.open).toBe(0);
    expect(CountingEventSource.most).toBe(1);
    unmount();
    await checkExactlyOnce(stack.url, "ts-hook", [id]);
  });

  it("closes everything on unmount mid-job: no stream, no poll, no reconnect", async () => {
    const id = await submitEpisode(stack.url, "ts-unmount");
    const { result, unmount } = renderHook(() => useGenerationJob(id, opts));
    await waitFor(() => expect(result.current.events.length).toBeGreaterThanOrEqual(3), until);
    expect(result.current.state).toBe("live");
    expect(proxy.open).toBeGreaterThanOrEqual(1); // the stream (and perhaps a look at the mode)
    unmount();
    const at = Date.now();
    await waitFor(() => expect(proxy.open).toBe(0), until);
    expect(CountingEventSource.open).toBe(0);
    await sleep(1500); // five mode intervals, more than a reconnect's backoff
    expect(proxy.requests.filter((r) => r.at > at)).toEqual([]);
  });

  it("keeps one stream under StrictMode and a provider, and follows a new id", async () => {
    const first = await submitEpisode(stack.url, "ts-strict");
    const second = await submitEpisode(stack.url, "ts-strict");
    const seen: Record<string, number[]> = {};
    function Job({ id }: { id: string }) {
      const { job, events, script } = useGenerationJob(id, {
        onEvent: (e) => (seen[id] ??= []).push(e.seq),
      });
      return (
        <p data-testid="job">
          {job?.status ?? "…"} {events.length} {script.length}
        </p>
      );
    }
    const tree = (id: string) => (
      <StrictMode>
        <ScriptgenProvider value={opts}>
          <Job id={id} />
        </ScriptgenProvider>
      </StrictMode>
    );
    const view = render(tree(first));
    await waitFor(() => expect(seen[first]?.length).toBeGreaterThanOrEqual(2), until);
    view.rerender(tree(second));
    await waitFor(() => expect(view.getByTestId("job").textContent).toMatch(/^succeeded /), until);
    expect(CountingEventSource.most).toBe(1);
    const log = await rawEvents(stack.url, second);
    expect(seen[second]).toEqual(log.map((_, i) => i + 1));
    // The first job's events stopped when the id changed, each delivered once.
    const firstSeqs = seen[first];
    expect(firstSeqs).toEqual(firstSeqs.map((_, i) => i + 1));
    expect(firstSeqs.length).toBeLessThan((await rawEvents(stack.url, first)).length);
    view.unmount();
    await waitFor(() => expect(proxy.open).toBe(0), until);
    expect(CountingEventSource.open).toBe(0);
  });

  it("gives the API's error for a job that does not exist", async () => {
    const { result } = renderHook(() => useGenerationSSE("01a24dcc-c032-70dd-b121-06e60e4a0002", opts));
    await waitFor(() => expect(result.current.error).not.toBeNull(), until);
    expect(result.current.error).toMatchObject({ status: 404, code: "not_found" });
    expect(result.current.state).toBe("ended");
  });
});

describe("useGenerationJob's mode", () => {
  it("reads `rq`, the earlier system's name, as durable", () => {
    expect(normalizeMode("rq")).toBe("durable");
    expect(normalizeMode("durable")).toBe("durable");
    expect(normalizeMode("background_tasks")).toBe("background_tasks");
    expect(normalizeMode("celery")).toBeUndefined();
  });

  const hasRedis = redisAvailable();
  let redis: Redis | undefined;
  let stack: Stack;
  beforeAll(async () => {
    if (!hasRedis) return;
    redis = await startRedis();
    stack = await Stack.start({ redisUrl: redis.url, env: { GENERATOR_STEP_DELAY: "300ms" } });
    await adminCall(stack.url, "PUT", "/api/admin/worker-system", { enabled: false, reason: "ts hooks test" });
  });
  afterAll(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  it.skipIf(!hasRedis)("follows a switch to durable and a rollback while mounted, and one job through them", async () => {
    const opts: HookOptions = { baseUrl: stack.url, EventSource: CountingEventSource, modeInterval: 200, token: ADMIN_TOKEN };
    const { result: idle, unmount: unmountIdle } = renderHook(() => useGenerationJob(null, opts));
    await waitFor(() => expect(idle.current.mode).toBe("background_tasks"), until);
    await act(() => adminCall(stack.url, "PUT", "/api/admin/worker-system", { enabled: true, rollout_percent: 100, reason: "ts hooks test" }));
    await waitFor(() => expect(idle.current.mode).toBe("durable"), until);

    // A durable job with no worker to run it: the rollback moves it to background_tasks.
    const id = await submitEpisode(stack.url, "ts-hook-mode");
    const { result } = renderHook(() => useGenerationJob(id, opts));
    await waitFor(() => expect(result.current.job?.backend).toBe("durable"), until);
    await waitFor(() => expect(result.current.mode).toBe("durable"), until);
    await act(() => adminCall(stack.url, "POST", "/api/admin/rollback", { reason: "ts hooks test" }));
    await waitFor(() => expect(idle.current.mode).toBe("background_tasks"), until);
    await waitFor(() => expect(result.current.result?.outcome).toBe("succeeded"), until);
    const log = await rawEvents(stack.url, id);
    expect(result.current.events.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    expect(result.current.job?.status).toBe("succeeded");
    unmountIdle();
    await checkExactlyOnce(stack.url, "ts-hook-mode", [id]);
    expect(CountingEventSource.open).toBe(0);
  });
});
