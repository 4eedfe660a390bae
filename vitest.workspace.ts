/**
 * The test projects, one per engine. vitest 5 no longer reads workspace files, so
 * `vitest.config.ts` imports this list as `test.projects`.
 */
import { defaultServerConditions } from "vite"
import type { TestProjectInlineConfiguration } from "vitest/config"

/**
 * The workspace's packages are tested from their sources: the `@annal/source` condition of their `exports` points at
 * `src/*.ts`, where a user's install gets the built `dist`. Child processes that tests start get it through
 * `NODE_OPTIONS`.
 */
const sources = {
  resolve: { conditions: ["@annal/source", ...defaultServerConditions] },
  ssr: { resolve: { conditions: ["@annal/source", ...defaultServerConditions], externalConditions: ["@annal/source"] } }
}
const nodeOptions = { NODE_OPTIONS: "--conditions=@annal/source" }

const shared = {
  include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "test/**/*.test.ts"],
  // The reliability battery is a project of its own: it is not a suite to run once per engine.
  exclude: ["**/node_modules/**", "**/.git/**", "test/reliability/**"],
  testTimeout: 60_000,
  hookTimeout: 60_000
}

/**
 * Each engine project runs the whole suite against one engine, named by `ANNAL_ENGINE`. The `reliability` project
 * runs the fault battery of `test/reliability` against real PostgreSQL (the hostile payloads against PGlite too);
 * its files run one at a time, as they load the machine on purpose.
 */
export const projects: ReadonlyArray<TestProjectInlineConfiguration> = [
  {
    ...sources,
    test: { ...shared, name: "pglite", env: { ANNAL_ENGINE: "pglite", ...nodeOptions }, sequence: { groupOrder: 0 } }
  },
  {
    ...sources,
    test: {
      ...shared,
      name: "postgres",
      env: { ANNAL_ENGINE: "postgres", ...nodeOptions },
      sequence: { groupOrder: 0 }
    }
  },
  {
    ...sources,
    test: {
      name: "reliability",
      include: ["test/reliability/**/*.test.ts"],
      env: { ANNAL_ENGINE: "postgres", ...nodeOptions },
      maxWorkers: 1,
      // A phase of its own, apart from the engine suites (vitest runs this group first): it loads the machine on
      // purpose, and must not load theirs.
      sequence: { groupOrder: 1 },
      testTimeout: 300_000,
      hookTimeout: 120_000
    }
  }
]
