import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import { exited, holder, report } from "../../sql-pglite/test/support/FolderHolder.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

describe(`annal migrate (${TestDatabase.engine})`, () => {
  it("applies the migrations once, then reports the table up to date", async () => {
    const database = await CliDatabase.make({ migrate: false })
    const schema = database.schema
    try {
      const first = await run(["migrate", ...database.flags])
      const second = await run(["migrate", ...database.flags])
      assert.deepStrictEqual([first.code, second.code], [0, 0], first.stderr + second.stderr)
      assert.include(first.stdout, `Migrating ${schema}.events on`)
      assert.include(first.stdout, "Applied 1_create_events")
      assert.include(first.stdout, "Applied 2_append_only")
      assert.include(second.stdout, "Nothing to apply")
      assert.notInclude(second.stdout, "Applied")
    } finally {
      await database.remove()
    }
  }, 120_000)

  it("exits with code 1 and a StorageError naming the connection failure when the database cannot be reached", async () => {
    const result = await run(["migrate", "--database-url", "postgres://postgres@127.0.0.1:1/none"])
    const output = result.stdout + result.stderr
    assert.strictEqual(result.code, 1, output)
    assert.include(result.stdout, "Migrating public.events on PostgreSQL")
    assert.include(output, "@annal/core/StorageError: Migrations.run failed (ConnectionError)")
    assert.include(output, "ECONNREFUSED 127.0.0.1:1")
    assert.notInclude(result.stdout, "Applied")
  }, 60_000)

  it("exits with code 1 naming the schema when it is not a plain lowercase name", async () => {
    const database = await CliDatabase.make({ schema: "Bad-Name", migrate: false })
    try {
      const result = await run(["migrate", ...database.flags])
      const output = result.stdout + result.stderr
      assert.strictEqual(result.code, 1, output)
      assert.include(output, 'Invalid events schema or table name: "Bad-Name"')
      assert.notInclude(result.stdout, "Applied")
    } finally {
      await database.remove()
    }
  }, 120_000)

  it("exits with code 1 naming a flag it does not know, before touching any database", async () => {
    const result = await run(["migrate", "--bogus"])
    const output = result.stdout + result.stderr
    assert.strictEqual(result.code, 1, output)
    assert.include(output, "Unrecognized flag: --bogus in command annal migrate")
    assert.notInclude(result.stdout, "Migrating")
  }, 60_000)
})

describe.skipIf(TestDatabase.engine === "postgres")("annal on a PGlite folder another process holds", () => {
  it.live("refuses with exit code 1 naming the folder and the holding process, and runs once it has stopped", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(join(tmpdir(), "annal-cli-held-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(root, { recursive: true, force: true })))
      const folder = join(root, "db")
      // A process with the folder open through PgliteClient.layer, as a running app has it.
      const app = yield* holder(folder, "client")
      assert.isTrue((yield* report(app)).held)

      const refused = yield* Effect.promise(() => run(["verify", "--data-dir", folder]))
      const output = refused.stdout + refused.stderr
      assert.strictEqual(refused.code, 1, output)
      assert.include(output, `The PGlite data folder ${folder} is in use by process ${app.pid} on `)
      assert.include(output, "Stop that process first")
      assert.notInclude(output, "Verified")

      app.stdin?.end()
      assert.strictEqual(yield* exited(app), 0)
      const migrated = yield* Effect.promise(() => run(["migrate", "--data-dir", folder]))
      assert.strictEqual(migrated.code, 0, migrated.stdout + migrated.stderr)
      assert.include(migrated.stdout, "Applied 1_create_events")
    }).pipe(Effect.scoped)
  )
})
