// `npm pack` makes a package a React app can install: the tarball installs
// into an empty app beside react, both of its entries import in Node, a
// component using the hooks renders, and an app's TypeScript checks
// against the package's types.
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDir } from "./harness.js";

const pkg = resolve(import.meta.dirname, "..");
// Asynchronous, so that the test's worker keeps answering vitest while npm works.
const run = promisify(execFile);
const npm = (args: string[], cwd: string) =>
  run("npm", args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_fund: "false", npm_config_audit: "false" } });

describe("npm pack", () => {
  it("makes a tarball a React app installs, imports, renders and type-checks", async () => {
    const dir = tempDir();
    try {
      await npm(["pack", "--pack-destination", dir.path], pkg);
      const tarball = readdirSync(dir.path).find((f) => f.endsWith(".tgz"));
      expect(tarball).toMatch(/^scriptgen-client-\d+\.\d+\.\d+\.tgz$/);
      const files = execFileSync("tar", ["-tzf", join(dir.path, tarball!)], { encoding: "utf8" }).split("\n");
      expect(files).toContain("package/dist/index.js");
      expect(files).toContain("package/dist/react.d.ts");
      expect(files.some((f) => f.startsWith("package/src/") || f.startsWith("package/test/"))).toBe(false);

      const app = join(dir.path, "app");
      execFileSync("mkdir", [app]);
      const react = (name: string) => execFileSync("node", ["-p", `require("${name}/package.json").version`], { cwd: pkg, encoding: "utf8" }).trim();
      writeFileSync(
        join(app, "package.json"),
        JSON.stringify({ name: "app", private: true, type: "module", dependencies: { react: react("react"), "react-dom": react("react-dom") }, devDependencies: { "@types/react": react("@types/react") } }),
      );
      await npm(["install", "--prefer-offline", join(dir.path, tarball!)], app);

      writeFileSync(
        join(app, "main.js"),
        `import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { createClient, followJob, ScriptgenError, normalizeMode, EVENT_NAMES } from "@scriptgen/client";
import { useGenerationJob, useGenerationSSE, ScriptgenProvider } from "@scriptgen/client/react";
function Job() {
  const { job, events, script, mode, error } = useGenerationJob(null);
  return createElement("p", null, String(job) + events.length + script + String(mode) + String(error));
}
const html = renderToString(createElement(ScriptgenProvider, { value: { baseUrl: "http://127.0.0.1:1" } }, createElement(Job)));
console.log(JSON.stringify({
  html,
  types: [typeof createClient, typeof followJob, typeof useGenerationSSE],
  error: new ScriptgenError({ status: 404, code: "not_found", message: "no job" }) instanceof Error,
  rq: normalizeMode("rq"),
  events: EVENT_NAMES,
}));
`,
      );
      const out = JSON.parse((await run("node", ["main.js"], { cwd: app, encoding: "utf8" })).stdout);
      expect(out).toEqual({
        html: "<p>null0nullnull</p>", // no job, no events, no script, no mode yet, no error
        types: ["function", "function", "function"],
        error: true,
        rq: "durable",
        events: ["status", "progress", "script", "result", "failed"],
      });

      writeFileSync(
        join(app, "App.tsx"),
        `import { useGenerationJob } from "@scriptgen/client/react";
import { type Job, type WorkerMode, ScriptgenError } from "@scriptgen/client";
export function App({ id }: { id: string }) {
  const { job, script, mode, error } = useGenerationJob(id);
  const m: WorkerMode | null = mode;
  const j: Job | null = job;
  const e: ScriptgenError | null = error;
  return <p>{j?.status} {j?.progress}% {m} {e?.code} {script}</p>;
}
`,
      );
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { strict: true, jsx: "react-jsx", module: "NodeNext", moduleResolution: "NodeNext", noEmit: true, skipLibCheck: false, types: [] },
          files: ["App.tsx"],
        }),
      );
      const tsc = await run(join(pkg, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: app, encoding: "utf8" }).catch((e: { stdout: string }) => e);
      expect(tsc.stdout).toBe("");
    } finally {
      dir.remove();
    }
  });
});
