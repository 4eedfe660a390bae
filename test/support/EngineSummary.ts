/**
 * A vitest reporter that counts results per test project (one per engine), prints them with a closing
 * `tests: N passed, N failed` line, and writes them to `.ci/engines.json` so that CI can refuse a run in which
 * an engine's suite did not run at all.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import type { Reporter, TestModule } from "vitest/node"

type Counts = { passed: number; failed: number; skipped: number }

export default class EngineSummary implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byProject: Record<string, Counts> = {}
    for (const module of testModules) {
      const counts = (byProject[module.project.name] ??= { passed: 0, failed: 0, skipped: 0 })
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") counts.passed++
        else if (state === "failed") counts.failed++
        else counts.skipped++
      }
      // A file that failed to load has no tests to count, but it failed.
      if (module.state() === "failed" && module.children.size === 0) counts.failed++
    }
    const total = Object.values(byProject).reduce(
      (sum, counts) => ({ passed: sum.passed + counts.passed, failed: sum.failed + counts.failed }),
      { passed: 0, failed: 0 }
    )
    for (const [project, counts] of Object.entries(byProject)) {
      console.log(`${project}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
    }
    mkdirSync(".ci", { recursive: true })
    writeFileSync(".ci/engines.json", JSON.stringify(byProject, null, 2))
    console.log(`tests: ${total.passed} passed, ${total.failed} failed`)
  }
}
