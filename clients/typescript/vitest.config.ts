import { defineConfig } from "vitest/config";

// The tests start real `scriptgen serve` processes (and redis-server):
// one file at a time, so that the machine's few cores are not fought over.
export default defineConfig({
  test: {
    include: ["test/**/*.test.{ts,tsx}"],
    globalSetup: ["test/global-setup.ts"],
    environment: "node",
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
