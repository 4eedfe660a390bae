import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const main = join(import.meta.dirname, "../src/main.ts")
const readme = join(import.meta.dirname, "../../../README.md")

describe("the README's quickstart", () => {
  it("is the program in examples/quickstart, verbatim", () => {
    assert.include(readFileSync(readme, "utf8"), readFileSync(main, "utf8").trim())
  })

  // The program runs on embedded PGlite whatever the test project, so one project runs it.
  it.runIf(process.env["ANNAL_ENGINE"] !== "postgres")(
    "runs: it writes, reads the history back decoded, and folds it",
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "annal-quickstart-"))
      const { stdout } = await promisify(execFile)(process.execPath, [main], {
        env: { ...process.env, ANNAL_DATA_DIR: dataDir }
      })
      rmSync(dataDir, { recursive: true, force: true })
      const lines = stdout.trim().split("\n")
      assert.deepStrictEqual(lines, [
        "1 organization.created { name: 'Acme Trading', country: 'IN' } demo-1",
        "2 organization.renamed { name: 'Acme Commodities' } demo-1",
        "current name: Acme Commodities"
      ])
    },
    60_000
  )
})
