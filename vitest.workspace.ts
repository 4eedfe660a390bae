/**
 * The test projects, one per engine. vitest 5 no longer reads workspace files, so
 * `vitest.config.ts` imports this list as `test.projects`.
 */
import type { TestProjectInlineConfiguration } from "vitest/config"

const shared = {
  include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "test/**/*.test.ts"],
  testTimeout: 60_000,
  hookTimeout: 60_000
}

/** Each project runs the whole suite against one engine, named by `ANNAL_ENGINE`. */
export const projects: ReadonlyArray<TestProjectInlineConfiguration> = [
  {
    test: { ...shared, name: "pglite", env: { ANNAL_ENGINE: "pglite" } }
  },
  {
    test: { ...shared, name: "postgres", env: { ANNAL_ENGINE: "postgres" } }
  }
]
