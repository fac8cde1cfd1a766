// The test's real services: `scriptgen serve` and `scriptgen worker`
// processes on a fresh SQLite database, a redis-server of the test's own on a
// free port (never the shared one on 6379), and an HTTP proxy between the
// client and the server that records every request and can cut every
// connection it carries.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, createWriteStream, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";

export const ADMIN_TOKEN = "ts-client-admin-token-0123456789";

/** Every process a test started, stopped at the end whatever happened. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), "scriptgen-ts-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once("exit", () => r()));
}

/** redisAvailable tells whether redis-server is installed; under CI=true a missing one fails the test instead. */
export function redisAvailable(): boolean {
  const found = spawnSync("redis-server", ["--version"]).status === 0;
  if (!found && process.env.CI === "true") throw new Error("redis-server is not installed (bash .ci/install-tools installs it)");
  return found;
}

export interface Redis {
  url: string;
  stop(): Promise<void>;
}

/** startRedis starts a redis-server of the test's own on a free port, in memory only. */
export async function startRedis(): Promise<Redis> {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  children.add(child);
  const deadline = Date.now() + 10_000;
  while (!(await redisPong(port))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`redis-server on ${port} did not start`);
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      child.kill("SIGTERM");
      await exited(child);
      children.delete(child);
    },
  };
}

function redisPong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("error", () => resolve(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.once("data", (d) => {
      resolve(d.toString().startsWith("+PONG"));
      s.destroy();
    });
  });
}

/** A scriptgen process: `serve` (with its URL) or `worker`. */
export class Proc {
  child: ChildProcess | null = null;
  readonly url: string;
  readonly logPath: string;

  constructor(
    readonly name: string,
    readonly args: string[],
    readonly env: Record<string, string>,
    logDir: string,
  ) {
    const addr = env.LISTEN_ADDR;
    this.url = addr ? `http://${addr}` : "";
    this.logPath = join(logDir, `${name}.log`);
  }

  async start(): Promise<void> {
    const log = createWriteStream(this.logPath, { flags: "a" });
    await new Promise((r) => log.once("open", r));
    const child = spawn(inject("scriptgenBinary"), this.args, {
      env: { ...process.env, REDIS_URL: "", ...this.env },
      stdio: ["ignore", log, log],
    });
    this.child = child;
    children.add(child);
    if (this.url) await this.waitHealthy();
  }

  private async waitHealthy(): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (this.child?.exitCode !== null) throw new Error(`${this.name} exited:\n${this.log().slice(-3000)}`);
      try {
        const r = await fetch(this.url + "/health");
        await r.arrayBuffer();
        if (r.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`${this.name} never became healthy`);
  }

  /** stop sends SIGTERM (a graceful stop: in-flight jobs drained or released) and waits for the exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill("SIGTERM");
    await exited(child);
    children.delete(child);
    this.child = null;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }
}

export interface ServeOptions {
  redisUrl?: string;
  env?: Record<string, string>;
}

/** Services of one test: a serve process (and workers) on one database. */
export class Stack {
  readonly dir = tempDir();
  serve!: Proc;
  readonly workers: Proc[] = [];
  env: Record<string, string> = {};

  static async start(opts: ServeOptions = {}): Promise<Stack> {
    const s = new Stack();
    const port = await freePort();
    s.env = {
      LISTEN_ADDR: `127.0.0.1:${port}`,
      DATABASE_URL: "sqlite:" + join(s.dir.path, "scriptgen.db"),
      ADMIN_TOKEN,
      GENERATOR: "template",
      GENERATOR_STEP_DELAY: "100ms",
      LEASE_DURATION: "2s",
      DRAIN_TIMEOUT: "1s",
      POLL_INTERVAL: "100ms",
      MAX_WORKERS: "4",
      AUTO_ROLLBACK: "false",
      LOG_LEVEL: "info",
      REDIS_URL: opts.redisUrl ?? "",
      ...opts.env,
    };
    s.serve = new Proc("serve", ["serve"], s.env, s.dir.path);
    await s.serve.start();
    return s;
  }

  get url(): string {
    return this.serve.url;
  }

  async startWorker(): Promise<Proc> {
    const w = new Proc(`worker-${this.workers.length + 1}`, ["worker"], { ...this.env, LISTEN_ADDR: "" }, this.dir.path);
    await w.start();
    this.workers.push(w);
    return w;
  }

  /** restart stops serve gracefully (SIGTERM) and starts it again on the same port and database. */
  async restart(): Promise<void> {
    await this.serve.stop();
    await this.serve.start();
  }

  async stop(): Promise<void> {
    for (const w of this.workers) await w.stop();
    await this.serve.stop();
    this.dir.remove();
  }
}

export interface Recorded {
  method: string;
  url: string;
  at: number;
}

/**
 * Proxy forwards HTTP to a server and records each request; cut() destroys
 * every connection it carries (client and server side), as a network that
 * drops them would.
 */
export class Proxy {
  readonly requests: Recorded[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** No pooled connections to the server: a socket left open would be the proxy's, not the client's. */
  private readonly agent = new http.Agent({ keepAlive: false });
  private active = 0;
  private readonly server: http.Server;
  url = "";
  cuts = 0;

  /** rewrite changes a request's path and query on the way to the server. */
  rewrite: (url: string) => string = (u) => u;

  constructor(private readonly target: string) {
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.on("connection", (s) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return this;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse) {
    this.requests.push({ method: req.method ?? "", url: req.url ?? "", at: Date.now() });
    this.active++;
    res.once("close", () => this.active--);
    const up = http.request(this.target + this.rewrite(req.url ?? "/"), { method: req.method, headers: req.headers, agent: this.agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
      res.once("close", () => upRes.destroy());
    });
    this.sockets.add(req.socket);
    up.once("socket", (s) => {
      this.sockets.add(s);
      s.once("close", () => this.sockets.delete(s));
    });
    // The server is down: the client's connection is dropped, as a refused one would be.
    up.once("error", () => req.socket.destroy());
    req.pipe(up);
  }

  /** open counts the requests in flight (an open event stream is one). */
  get open(): number {
    return this.active;
  }

  /** cut destroys every connection the proxy carries. */
  cut(): void {
    this.cuts++;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** submitEpisode submits a generation job and returns its id. */
export async function submitEpisode(base: string, project: string, title = "첫 만남"): Promise<string> {
  const r = await fetch(base + "/api/generation", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      project_id: project,
      episode_data: { title, synopsis: "두 사람이 카페에서 만난다.", characters: ["지수", "Minho"] },
    }),
  });
  const body = (await r.json()) as { id: string };
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${JSON.stringify(body)}`);
  return body.id;
}

/** rawEvents reads a job's whole event log over a fresh stream (the reference the followers are compared with). */
export async function rawEvents(base: string, id: string): Promise<Array<{ id: number; event: string; data: string }>> {
  const r = await fetch(`${base}/api/generation/${id}/events`);
  const text = await r.text();
  const out: Array<{ id: number; event: string; data: string }> = [];
  for (const block of text.split("\n\n")) {
    const f: Record<string, string> = {};
    for (const line of block.split("\n")) {
      const i = line.indexOf(": ");
      if (i > 0) f[line.slice(0, i)] = line.slice(i + 2);
    }
    if (f.id) out.push({ id: Number(f.id), event: f.event, data: f.data });
  }
  return out;
}

export async function adminCall(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const parsed = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

/** checkExactlyOnce: every job listed succeeded and saved exactly one episode, and no two jobs share a number. */
export async function checkExactlyOnce(base: string, project: string, ids: string[]): Promise<void> {
  const r = await fetch(`${base}/api/projects/${project}/episodes?limit=200`);
  const page = (await r.json()) as { items: Array<{ number: number; job_id: string }> };
  const byJob = new Map<string, number>();
  for (const e of page.items) {
    if (byJob.has(e.job_id)) throw new Error(`job ${e.job_id} saved two episodes`);
    byJob.set(e.job_id, e.number);
  }
  for (const id of ids) {
    if (!byJob.has(id)) throw new Error(`job ${id} saved no episode`);
  }
  const numbers = page.items.map((e) => e.number).sort((a, b) => a - b);
  numbers.forEach((n, i) => {
    if (n !== i + 1) throw new Error(`episode numbers ${numbers} skip or repeat one`);
  });
}
