import { assert, describe, it } from "@effect/vitest"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Csv from "effect/encoding/Csv"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { EventRegistry, EventStore, Export } from "@annal/core"
import { GstAdded, OrganizationCreated, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

const parseCsv = (text: string) =>
  Effect.runPromise(
    Stream.make(text).pipe(Stream.pipeThroughChannel(Csv.decodeString({ headers: true })), Stream.runCollect)
  ) as Promise<ReadonlyArray<Record<string, string>>>

describe(`annal export (${TestDatabase.engine})`, () => {
  it("writes the filtered events as CSV to a file and NDJSON to stdout, parsed back equal to the stored events", async () => {
    const database = await CliDatabase.make()
    const { schema, dataDir } = database
    const target = database.flags
    const [org, other, user] = [uuid(), uuid(), uuid()]
    try {
      const stored = await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append([
            OrganizationCreated.make({
              aggregateId: org,
              userId: user,
              data: { name: 'Ganga "Agro", Exports\r\nमुंबई 🐘', type: "corporation", email: "a@x.test", country: "IN" }
            }),
            GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1,2", state: 'K"A' } }),
            GstAdded.make({ aggregateId: other, userId: user, data: { gstin: "3", state: "TN" } })
          ])
          return yield* store.getByAggregate(EventRegistry.raw, "organization", org)
        })
      )
      assert.strictEqual(stored.length, 2)

      const file = join(dataDir, "export.csv")
      const csv = await run([
        "export",
        ...target,
        "--aggregate-type",
        "organization",
        "--aggregate-id",
        org,
        "--output",
        file
      ])
      assert.strictEqual(csv.code, 0, csv.stdout + csv.stderr)
      assert.strictEqual(csv.stdout, "", "the file holds the export; stdout nothing")
      assert.include(csv.stderr, `Exported 2 events of ${schema}.events as csv to ${file}`)
      const rows = await parseCsv(readFileSync(file, "utf8"))
      assert.deepStrictEqual(
        rows,
        stored.map((event) => Export.toRow(event))
      )
      assert.strictEqual((JSON.parse(rows[0]!["data"]!) as { name: string }).name, 'Ganga "Agro", Exports\r\nमुंबई 🐘')

      const ndjson = await run([
        "export",
        ...target,
        "--aggregate-id",
        org,
        "--format",
        "ndjson",
        "--event-type",
        "organization.created",
        "--event-type",
        "organization.gst.added"
      ])
      assert.strictEqual(ndjson.code, 0, ndjson.stderr)
      assert.deepStrictEqual(
        ndjson.stdout
          .trimEnd()
          .split("\n")
          .map((line) => JSON.parse(line) as unknown),
        stored.map((event) => Export.toJson(event))
      )

      const one = await run(["export", ...target, "--event-type", "organization.created", "--format", "ndjson"])
      assert.strictEqual(one.stdout.trimEnd().split("\n").length, 1, one.stderr)

      // Bad input: the flag named, exit code 1, no stack trace.
      const badInstant = await run(["export", ...target, "--from", "yesterday"])
      assert.strictEqual(badInstant.code, 1, badInstant.stdout + badInstant.stderr)
      assert.include(badInstant.stderr, "Invalid query: from:")
      assert.notMatch(badInstant.stderr, /^\s+at /m)
      const badId = await run(["export", ...target, "--user-id", "bob"])
      assert.strictEqual(badId.code, 1, badId.stdout + badId.stderr)
      assert.include(badId.stderr, "Invalid query: userId")
    } finally {
      await database.remove()
    }
  })

  it("leaves the target as it was, and no temporary file, when the export fails midway", async () => {
    const database = await CliDatabase.make()
    const target = database.flags
    const [org, user] = [uuid(), uuid()]
    // More events than the export reads in a page (1,000), the last one's metadata broken behind the triggers'
    // back: the first page is written to the file before the second one's read fails.
    const count = 1_001
    try {
      await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append(
            Array.from({ length: count }, (_, index) =>
              GstAdded.make({ aggregateId: org, userId: user, data: { gstin: String(index), state: "KA" } })
            )
          )
          const sql = yield* SqlClient.SqlClient
          const events = sql(`${database.schema}.events`)
          yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`
              yield* sql`UPDATE ${events} SET metadata = '{"correlationId": 5}'
                WHERE aggregate_id = ${org}::uuid AND stream_version = ${count}`
              yield* sql`ALTER TABLE ${events} ENABLE ALWAYS TRIGGER events_refuse_update_delete`
            })
          )
        })
      )
      const folder = join(database.dataDir, "exports")
      mkdirSync(folder)
      const file = join(folder, "export.csv")
      writeFileSync(file, "the previous export\n")

      const failed = await run(["export", ...target, "--output", file])
      assert.strictEqual(failed.code, 1, failed.stdout + failed.stderr)
      assert.include(failed.stdout + failed.stderr, "StorageError")
      assert.strictEqual(readFileSync(file, "utf8"), "the previous export\n", "the target is left as it was")
      assert.deepStrictEqual(readdirSync(folder), ["export.csv"], "the temporary file is removed")

      rmSync(file)
      const none = await run(["export", ...target, "--output", file])
      assert.strictEqual(none.code, 1, none.stdout + none.stderr)
      assert.deepStrictEqual(readdirSync(folder), [], "no file at the target, not even a truncated one")

      // An export that succeeds lands at the target, and only there.
      const header = await run(["export", ...target, "--output", file, "--event-type", "organization.created"])
      assert.strictEqual(header.code, 0, header.stdout + header.stderr)
      assert.deepStrictEqual(readdirSync(folder), ["export.csv"])
      assert.match(readFileSync(file, "utf8"), /^eventId,eventType,/)
    } finally {
      await database.remove()
    }
  }, 120_000)
})
