import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import * as TestDatabase from "./support/TestDatabase.ts"

const bin = join(import.meta.dirname, "../bin/annal.ts")
const run = (args: ReadonlyArray<string>) =>
  promisify(execFile)(process.execPath, [bin, ...args], { env: { ...process.env, DATABASE_URL: "" } })

describe(`annal migrate (${TestDatabase.engine})`, () => {
  it("applies the migrations once, then reports the table up to date", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "annal-cli-"))
    const schema = TestDatabase.uniqueSchema()
    const target =
      TestDatabase.engine === "postgres"
        ? ["--database-url", TestDatabase.postgresUrl, "--schema", schema]
        : ["--data-dir", dataDir, "--schema", schema]
    const first = await run(["migrate", ...target])
    const second = await run(["migrate", ...target])
    rmSync(dataDir, { recursive: true, force: true })
    if (TestDatabase.engine === "postgres") {
      await promisify(execFile)("psql", [TestDatabase.postgresUrl, "-c", `DROP SCHEMA ${schema} CASCADE`])
    }
    assert.include(first.stdout, "Applied 1_create_events")
    assert.include(first.stdout, "Applied 2_append_only")
    assert.include(second.stdout, "Nothing to apply")
  }, 60_000)

  it("fails with a non-zero exit code when the database cannot be reached", async () => {
    const error = await run(["migrate", "--database-url", "postgres://postgres@127.0.0.1:1/none"]).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.isDefined(error)
  }, 60_000)
})
