import { defineConfig } from "vitest/config";

// `npm run bench`: the reconnect figure of bench/README.md (not part of `npm test`).
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["bench/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    environment: "node",
    testTimeout: 900_000,
    hookTimeout: 180_000,
  },
});
