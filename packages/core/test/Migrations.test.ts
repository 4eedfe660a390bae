import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { describe as describeSqlError } from "../src/internal/sqlErrors.ts"
import * as Migrations from "../src/Migrations.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`

const migrated = TestDatabase.layerWith(schema)

/** Every migration the core declares, by id: all of them must be applied, each once. */
const declared = Object.keys(Migrations.migrations({ schema, table: "events" }))
  .map((key) => Number(key.split("_")[0]))
  .toSorted((a, b) => a - b)

layer(migrated)(`Migrations (${TestDatabase.engine})`, (it) => {
  it.effect("are idempotent: a second run applies nothing", () =>
    Effect.gen(function* () {
      const applied = yield* Migrations.run({ schema })
      assert.deepStrictEqual(applied, [])
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly migration_id: number }>`SELECT migration_id FROM ${sql(
        `${schema}.events_migrations`
      )} ORDER BY migration_id`
      assert.deepStrictEqual(
        rows.map((row) => row.migration_id),
        declared
      )
    })
  )

  it.effect("concurrent runs on a new table all succeed and migrate it once", () =>
    Effect.gen(function* () {
      const other = TestDatabase.uniqueSchema()
      const runs = yield* Effect.all(
        Array.from({ length: 4 }, () => Migrations.run({ schema: other })),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(runs.map((applied) => applied.length).toSorted(), [0, 0, 0, declared.length])
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP SCHEMA ${sql(other)} CASCADE`
    })
  )

  describe("the events table is append-only", () => {
    const insertOne = Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO ${sql(events)}
        (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
        VALUES (gen_random_uuid(), 'organization.created', gen_random_uuid(), 'organization', gen_random_uuid(),
          now(), 1, '{}'::jsonb, 1)`
    })

    for (const [name, statement] of [
      ["UPDATE", (sql: SqlClient.SqlClient) => sql`UPDATE ${sql(events)} SET version = 2`],
      ["DELETE", (sql: SqlClient.SqlClient) => sql`DELETE FROM ${sql(events)}`],
      ["TRUNCATE", (sql: SqlClient.SqlClient) => sql`TRUNCATE ${sql(events)}`],
      ["UPDATE of no row", (sql: SqlClient.SqlClient) => sql`UPDATE ${sql(events)} SET version = 2 WHERE false`]
    ] as const) {
      it.effect(`${name} is refused by the database, with a clear message`, () =>
        Effect.gen(function* () {
          yield* insertOne
          const sql = yield* SqlClient.SqlClient
          const before = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM ${sql(events)}`
          const error = yield* Effect.flip(statement(sql))
          assert.include(describeSqlError(error), "append-only")
          const after = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM ${sql(events)}`
          assert.deepStrictEqual(after, before)
        })
      )
    }

    it.effect("the triggers fire even with session_replication_role = replica", () =>
      Effect.gen(function* () {
        yield* insertOne
        const sql = yield* SqlClient.SqlClient
        const error = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`SET LOCAL session_replication_role = replica`
              yield* sql`DELETE FROM ${sql(events)}`
            })
          )
          .pipe(Effect.flip)
        assert.include(describeSqlError(error), "append-only")
      })
    )
  })
})

describe("Migrations", () => {
  it("refuse a schema name that is not a plain identifier", async () => {
    const exit = await Effect.runPromiseExit(
      Migrations.run({ schema: "x; DROP TABLE y" }).pipe(Effect.provide(TestDatabase.sqlLayer), Effect.scoped)
    )
    assert.strictEqual(exit._tag, "Failure")
  })
})
