/**
 * A vitest reporter that counts results per test project (one per engine, and the reliability battery), prints them
 * with a closing `tests: N passed, N failed` line, and writes them to `.ci/engines.json` (or `ANNAL_TEST_SUMMARY`) so that CI can refuse a run
 * in which a project's suite did not run at all. For the `reliability` project it also prints the battery's table:
 * each test, how many cases it ran and how many failures its checker found, from what the test recorded in its meta.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import type { Reporter, TestCase, TestModule } from "vitest/node"

type Counts = { passed: number; failed: number; skipped: number }

/** What a reliability test records in `ctx.task.meta.reliability` for the table. */
export interface ReliabilityOutcome {
  readonly cases: number
  readonly failures: number
  /** The run was a deliberately broken variant: its failures show that the checker catches the fault. */
  readonly broken: boolean
  /** A figure worth a glance, such as how many conflicts the writers met. */
  readonly note?: string
}

declare module "vitest" {
  interface TaskMeta {
    reliability?: ReliabilityOutcome
  }
}

/** The project whose tests make the battery's table. */
export const reliabilityProject = "reliability"

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
    const battery = testModules
      .filter((module) => module.project.name === reliabilityProject)
      .flatMap((module) => [...module.children.allTests()])
    if (battery.length > 0) console.log(reliabilityTable(battery))
    // A run of its own (test:stress runs two at once in one clone) names its own file.
    const file = process.env["ANNAL_TEST_SUMMARY"] ?? ".ci/engines.json"
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, JSON.stringify(byProject, null, 2))
    console.log(`tests: ${total.passed} passed, ${total.failed} failed`)
  }
}

/**
 * The battery's table. A broken variant's failures are what it must produce, so its verdict is "caught" when it
 * found them and the test passed, and "NOT CAUGHT" when it did not; a test that failed says so, and one that never
 * recorded its numbers shows dashes.
 */
const reliabilityTable = (tests: ReadonlyArray<TestCase>): string => {
  const header = ["test", "cases", "failures", "verdict", "note"] as const
  const rows = tests.map((test) => {
    const outcome = test.meta().reliability
    const state = test.result().state
    const verdict =
      test.options.mode === "todo"
        ? "todo"
        : state === "skipped" || state === "pending"
          ? "skipped"
          : state === "failed"
            ? outcome?.broken === true
              ? "NOT CAUGHT"
              : "FAILED"
            : outcome?.broken === true
              ? "caught"
              : "ok"
    return [
      test.fullName.replace(/^reliability: /, ""),
      outcome === undefined ? "-" : String(outcome.cases),
      outcome === undefined ? "-" : String(outcome.failures),
      verdict,
      outcome?.note ?? ""
    ]
  })
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((cell, column) =>
        column === 1 || column === 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)
      )
      .join("  ")
      .trimEnd()
  return ["", "reliability battery", line(header), ...rows.map(line), ""].join("\n")
}
