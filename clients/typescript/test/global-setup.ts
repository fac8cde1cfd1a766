// Builds the scriptgen binary once for every test file, from this
// repository's root (`go build -o <tmp>/scriptgen ./cmd/scriptgen`).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    scriptgenBinary: string;
  }
}

export const repoRoot = resolve(import.meta.dirname, "../../..");

export default function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), "scriptgen-ts-"));
  const binary = join(dir, "scriptgen");
  // Go is where the README's install puts it when it is not on PATH.
  const onPath = (process.env.PATH ?? "").split(":").some((d) => d && existsSync(join(d, "go")));
  const go = process.env.GO ?? (onPath ? "go" : "/usr/local/go/bin/go");
  execFileSync(go, ["build", "-o", binary, "./cmd/scriptgen"], { cwd: repoRoot, stdio: "inherit" });
  project.provide("scriptgenBinary", binary);
  return () => rmSync(dir, { recursive: true, force: true });
}
