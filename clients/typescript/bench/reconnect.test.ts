// The reconnect figure (bench/README.md, issue 19): one client follows one
// long generation through an HTTP proxy that cuts its connection 100 times;
// every event of the job must reach the client exactly once, in order.
//
// The generation is GENERATOR=openai against a model server of the bench's
// own that streams TOKENS tokens one every TOKEN_MS ms, so the job writes a
// script event every ~100 ms for minutes: cuts land mid-burst as well as
// between events. Each cut comes a random 0–300 ms after the new stream's
// first event. Run: `cd clients/typescript && npm run bench`.
import http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { followJob, ScriptText, type StreamEvent } from "../src/index.js";
import { CountingEventSource } from "../test/es.js";
import { Proxy, Stack, checkExactlyOnce, rawEvents, sleep, submitEpisode } from "../test/harness.js";

const CUTS = Number(process.env.CUTS ?? 100);
const TOKENS = Number(process.env.TOKENS ?? 7000);
const TOKEN_MS = Number(process.env.TOKEN_MS ?? 30);
// FORGET=1: the proxy drops `last_event_id` from every request, so each
// reconnect gets the log from event 1 (what the earlier system's hook, which
// never resumed, asked for): followJob must drop every replayed event.
const FORGET = process.env.FORGET === "1";

/** A chat-completions server that streams a long answer, one short token at a time. */
function slowModel(): http.Server {
  return http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    let i = 0;
    const chunk = (body: object) => res.write(`data: ${JSON.stringify(body)}\n\n`);
    const timer = setInterval(() => {
      if (i < TOKENS) {
        const word = i % 12 === 11 ? "대사.\n" : `w${i} `;
        chunk({ model: "slow-fake", choices: [{ index: 0, delta: { content: word } }] });
        i++;
        return;
      }
      clearInterval(timer);
      chunk({ model: "slow-fake", choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 10, completion_tokens: TOKENS } });
      res.end("data: [DONE]\n\n");
    }, TOKEN_MS);
    res.on("close", () => clearInterval(timer));
  });
}

let model: http.Server;
let stack: Stack;
let proxy: Proxy;
beforeAll(async () => {
  model = slowModel();
  await new Promise<void>((r) => model.listen(0, "127.0.0.1", () => r()));
  const port = (model.address() as { port: number }).port;
  stack = await Stack.start({ env: { GENERATOR: "openai", OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`, OPENAI_API_KEY: "x", LOG_LEVEL: "warn" } });
  proxy = await new Proxy(stack.url).listen();
  if (FORGET) proxy.rewrite = (u) => u.replace(/[?&]last_event_id=\d+/, "");
});
afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
  await new Promise((r) => model?.close(r));
});

it(`delivers every event exactly once across ${CUTS} forced disconnects`, async () => {
  CountingEventSource.reset();
  const id = await submitEpisode(stack.url, "ts-bench");
  const got: StreamEvent[] = [];
  const script = new ScriptText();
  const reconnectMs: number[] = []; // from a cut to the next event delivered
  let cutAt = 0;
  let cutStream = 0; // the stream last cut
  const started = Date.now();

  const done = followJob(id, {
    baseUrl: proxy.url,
    EventSource: CountingEventSource,
    onEvent: (e) => {
      got.push(e);
      if (e.type === "script") script.apply(e.seq, e.data);
      if (cutAt) {
        reconnectMs.push(Date.now() - cutAt);
        cutAt = 0;
      }
      const stream = CountingEventSource.made;
      if (proxy.cuts < CUTS && cutStream < stream) {
        cutStream = stream;
        setTimeout(() => {
          if (proxy.open === 0) {
            cutStream = stream - 1; // nothing to cut: the stream's next event tries again
            return;
          }
          cutAt = Date.now();
          proxy.cut();
        }, Math.random() * 300);
      }
    },
  });
  const result = await done;
  const seconds = (Date.now() - started) / 1000;

  const log = await rawEvents(stack.url, id);
  const seqs = got.map((e) => e.seq);
  const once = seqs.length === log.length && seqs.every((s, i) => s === i + 1 && log[i].id === s);
  const sorted = [...reconnectMs].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const job = (await (await fetch(`${stack.url}/api/generation/${id}?include=script`)).json()) as { script: string; status: string };
  const figure = {
    forget: FORGET,
    cuts: proxy.cuts,
    connects: result.connects,
    events: got.length,
    log_events: log.length,
    script_events: got.filter((e) => e.type === "script").length,
    delivered_exactly_once: once,
    duplicates_dropped: result.duplicates,
    gaps: result.gaps.length,
    most_streams_open: CountingEventSource.most,
    script_matches: script.text === job.script,
    script_chars: script.length,
    outcome: result.outcome,
    seconds: Math.round(seconds),
    reconnect_ms: { p50: pct(50), p90: pct(90), max: sorted[sorted.length - 1] },
  };
  console.log("RECONNECT " + JSON.stringify(figure));

  expect(proxy.cuts).toBe(CUTS); // the generation outlasted the cuts
  expect(result.connects).toBe(CUTS + 1);
  expect(once).toBe(true);
  if (FORGET) expect(result.duplicates).toBeGreaterThan(0);
  else expect(result.duplicates).toBe(0);
  expect(result.gaps).toEqual([]);
  expect(CountingEventSource.most).toBe(1);
  expect(figure.script_matches).toBe(true);
  expect(result.outcome).toBe("succeeded");
  await sleep(100);
  await checkExactlyOnce(stack.url, "ts-bench", [id]);
});
