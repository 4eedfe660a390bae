import { assert, describe, it, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scheduler from "effect/Scheduler"
import * as SqlClient from "effect/sql/SqlClient"
import { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PgliteClient } from "@annal/sql-pglite"

const engine = process.env["ANNAL_ENGINE"] ?? "pglite"

// The run's own database (test/support/RunDatabase.ts), as every other suite reads it.
const postgresUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const single = <A>(rows: ReadonlyArray<A>): A => {
  assert.strictEqual(rows.length, 1)
  const row = rows[0]
  if (row === undefined) return assert.fail("expected a row")
  return row
}

/** The failure of a statement that must fail; a success fails the test. */
const sqlErrorOf = <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<SqlError, A, R> => Effect.flip(effect)

/** The next item of a queue, failing the test if none arrives; the bound is only a hang guard. */
const takeSoon = <A, E>(queue: Queue.Dequeue<A, E>) => Effect.timeout(Queue.take(queue), "20 seconds")

/**
 * Forks `statement` and returns once it has been handed to the client: the fiber starts at once and runs, without
 * yielding to any other, until the statement waits, for the connection or for PGlite's answer.
 */
const submit = <A, E, R>(statement: Effect.Effect<A, E, R>) =>
  Effect.forkChild(Effect.provideService(statement, Scheduler.PreventSchedulerYield, true), { startImmediately: true })

// The values both engines return for the same query. This suite runs against
// PGlite in the `pglite` project and against PostgreSQL through @effect/sql-pg
// in the `postgres` project, so it checks that the adapter and @effect/sql-pg
// agree.
const engineLayer: Layer.Layer<SqlClient.SqlClient, unknown> =
  engine === "postgres" ? PgClient.layer({ url: Redacted.make(postgresUrl) }) : PgliteClient.layer()

layer(engineLayer)(`result types (${engine})`, (it) => {
  it.effect("scalars match @effect/sql-pg", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const row = single(
        yield* sql`
          SELECT
            1::int2 AS int2,
            2::int4 AS int4,
            3::int8 AS int8,
            9007199254740993::int8 AS int8_big,
            1.50::numeric AS numeric,
            123456789012345678901234567890.123::numeric AS numeric_big,
            'NaN'::numeric AS numeric_nan,
            true AS bool_true,
            false AS bool_false,
            'hé'::text AS text,
            'a'::char(3) AS bpchar,
            '6f1c7d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f'::uuid AS uuid,
            '{"a":1,"b":[true,null]}'::json AS json,
            '{"b":[true,null],"a":1}'::jsonb AS jsonb,
            '"s"'::jsonb AS jsonb_string,
            '2024-01-02 03:04:05.123456+02'::timestamptz AS timestamptz,
            '1999-12-31 23:59:59.9995+00'::timestamptz AS timestamptz_before_2000,
            '0044-03-15 12:00:00+00 BC'::timestamptz AS timestamptz_bc,
            'infinity'::timestamptz AS timestamptz_infinity,
            '2024-01-02 03:04:05.5'::timestamp AS timestamp,
            '2024-01-02'::date AS date,
            '0044-03-15 BC'::date AS date_bc,
            'infinity'::date AS date_infinity,
            '\\x00ff10'::bytea AS bytea,
            0.1::float4 AS float4,
            0.1::float8 AS float8,
            12::oid AS oid,
            '04:05:06.789'::time AS time,
            '04:05:06.789+02'::timetz AS timetz,
            '1 year 2 mons 3 days 04:05:06.789'::interval AS interval,
            '-1 year -2 mons +3 days -04:05:06.789'::interval AS interval_negative,
            pg_current_xact_id()::text::int8 AS xact_id,
            NULL AS null_unknown,
            NULL::int8 AS null_int8,
            NULL::jsonb AS null_jsonb
        `
      )
      assert.strictEqual(row["int2"], 1)
      assert.strictEqual(row["int4"], 2)
      assert.strictEqual(row["int8"], 3n)
      assert.strictEqual(row["int8_big"], 9007199254740993n)
      assert.strictEqual(row["numeric"], "1.50")
      assert.strictEqual(row["numeric_big"], "123456789012345678901234567890.123")
      assert.strictEqual(row["numeric_nan"], "NaN")
      assert.strictEqual(row["bool_true"], true)
      assert.strictEqual(row["bool_false"], false)
      assert.strictEqual(row["text"], "hé")
      assert.strictEqual(row["bpchar"], "a  ")
      assert.strictEqual(row["uuid"], "6f1c7d3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f")
      assert.deepStrictEqual(row["json"], { a: 1, b: [true, null] })
      assert.deepStrictEqual(row["jsonb"], { a: 1, b: [true, null] })
      assert.strictEqual(row["jsonb_string"], "s")
      assert.instanceOf(row["timestamptz"], Date)
      assert.deepStrictEqual(row["timestamptz"], new Date("2024-01-02T01:04:05.123Z"))
      // Truncated toward 2000-01-01, not toward the past.
      assert.deepStrictEqual(row["timestamptz_before_2000"], new Date("2000-01-01T00:00:00.000Z"))
      assert.deepStrictEqual(row["timestamptz_bc"], new Date("-000043-03-15T12:00:00.000Z"))
      const infinity = row["timestamptz_infinity"]
      assert.isTrue(infinity instanceof Date && Number.isNaN(infinity.getTime()))
      assert.deepStrictEqual(row["timestamp"], new Date("2024-01-02T03:04:05.500Z"))
      assert.strictEqual(row["date"], "2024-01-02")
      assert.strictEqual(row["date_bc"], "-0043-03-15")
      assert.strictEqual(row["date_infinity"], "infinity")
      assert.deepStrictEqual(row["bytea"], new Uint8Array([0, 255, 16]))
      assert.strictEqual(row["float4"], Math.fround(0.1))
      assert.strictEqual(row["float8"], 0.1)
      assert.strictEqual(row["oid"], 12)
      assert.strictEqual(row["time"], 14_706_789_000n)
      assert.strictEqual(row["timetz"], "04:05:06.789+02:00")
      assert.deepStrictEqual(row["interval"], { months: 14, days: 3, microseconds: 14_706_789_000n })
      assert.deepStrictEqual(row["interval_negative"], { months: -14, days: 3, microseconds: -14_706_789_000n })
      assert.strictEqual(typeof row["xact_id"], "bigint")
      assert.strictEqual(row["null_unknown"], null)
      assert.strictEqual(row["null_int8"], null)
      assert.strictEqual(row["null_jsonb"], null)
    })
  )

  it.effect("arrays match @effect/sql-pg", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const row = single(
        yield* sql`
          SELECT
            ARRAY['a', 'b,c', 'd"e', NULL]::text[] AS text_array,
            ARRAY[1, NULL, 9007199254740993]::int8[] AS int8_array,
            ARRAY[1, 2]::int4[] AS int4_array,
            '{}'::text[] AS empty_array,
            ARRAY['{"x":1}']::jsonb[] AS jsonb_array,
            ARRAY['2024-01-02']::date[] AS date_array,
            ARRAY['2024-01-02 03:04:05+00']::timestamptz[] AS timestamptz_array,
            ARRAY['\\x0102'::bytea] AS bytea_array
        `
      )
      assert.deepStrictEqual(row["text_array"], ["a", "b,c", 'd"e', null])
      assert.deepStrictEqual(row["int8_array"], [1n, null, 9007199254740993n])
      assert.deepStrictEqual(row["int4_array"], [1, 2])
      assert.deepStrictEqual(row["empty_array"], [])
      assert.deepStrictEqual(row["jsonb_array"], [{ x: 1 }])
      assert.deepStrictEqual(row["date_array"], ["2024-01-02"])
      assert.deepStrictEqual(row["timestamptz_array"], [new Date("2024-01-02T03:04:05.000Z")])
      assert.deepStrictEqual(row["bytea_array"], [new Uint8Array([1, 2])])
    })
  )

  it.effect("a bigint identity column reads back as bigint", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP TABLE IF EXISTS annal_pglite_identity`
      yield* sql`CREATE TABLE annal_pglite_identity (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)`
      const inserted = yield* sql<{ readonly id: bigint }>`
        INSERT INTO annal_pglite_identity (name) VALUES (${"a"}), (${"b"}) RETURNING id
      `
      assert.deepStrictEqual(
        inserted.map((row) => row.id),
        [1n, 2n]
      )
      const counted = single(yield* sql`SELECT count(*) AS n, sum(id) AS total FROM annal_pglite_identity`)
      assert.strictEqual(counted["n"], 2n)
      // sum(bigint) is numeric.
      assert.strictEqual(counted["total"], "3")
      yield* sql`DROP TABLE annal_pglite_identity`
    })
  )

  it.effect("parameters are typed like @effect/sql-pg types them", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const types = single(
        yield* sql`
          SELECT
            pg_typeof(${1})::text AS int,
            pg_typeof(${2 ** 40})::text AS int_beyond_32_bits,
            pg_typeof(${1.5})::text AS float,
            pg_typeof(${10n})::text AS bigint,
            pg_typeof(${true})::text AS bool,
            pg_typeof(${new Date(0)})::text AS date,
            pg_typeof(${new Uint8Array([1])})::text AS bytes,
            pg_typeof(${[1, 2]})::text AS int_array,
            pg_typeof(${["a"]})::text AS text_array
        `
      )
      assert.deepStrictEqual(types, {
        int: "integer",
        int_beyond_32_bits: "bigint",
        float: "double precision",
        bigint: "bigint",
        bool: "boolean",
        date: "timestamp with time zone",
        bytes: "bytea",
        int_array: "integer[]",
        text_array: "text[]"
      })
      const values = single(
        yield* sql`
          SELECT
            ${9007199254740993n} + 0 AS big,
            ${new Date("2024-05-06T07:08:09.123Z")}::timestamptz AS ts,
            ${new Uint8Array([7, 8])}::bytea AS bytes,
            ${JSON.stringify({ a: [1, "x"] })}::jsonb AS json,
            ${"42"}::int8 AS from_string,
            ${[1n, 2n]}::int8[] AS int8_array,
            ${null}::text AS nothing
        `
      )
      assert.deepStrictEqual(values, {
        big: 9007199254740993n,
        ts: new Date("2024-05-06T07:08:09.123Z"),
        bytes: new Uint8Array([7, 8]),
        json: { a: [1, "x"] },
        from_string: 42n,
        int8_array: [1n, 2n],
        nothing: null
      })
    })
  )

  it.effect("a plain object parameter is refused", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const error = yield* sqlErrorOf(sql`SELECT ${{ a: 1 }}::jsonb AS value`)
      assert.strictEqual(error.reason._tag, "UnknownError")
    })
  )

  it.effect('sql("schema.table") quotes each part', () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [text] = sql`SELECT * FROM ${sql("annal.events")} WHERE ${sql('weird"name')} = ${1}`.compile()
      assert.strictEqual(text, 'SELECT * FROM "annal"."events" WHERE "weird""name" = $1')
    })
  )
})

describe.runIf(engine === "pglite")("PgliteClient", () => {
  layer(PgliteClient.layer(), { excludeTestServices: true })("in memory", (it) => {
    it.effect("runs parameterised queries, helpers and the value and raw forms", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        assert.strictEqual(sql.driver, "pglite")
        yield* sql`CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, age int4)`
        yield* sql`INSERT INTO people ${sql.insert([
          { name: "Ada", age: 36 },
          { name: "Grace", age: 85 }
        ])}`
        yield* sql`UPDATE people SET age = ${37} WHERE name = ${"Ada"}`
        const rows = yield* sql<{ readonly name: string; readonly age: number }>`
          SELECT name, age FROM people WHERE age > ${30} AND name IN ${sql.in(["Ada", "Grace"])} ORDER BY id
        `
        assert.deepStrictEqual(rows, [
          { name: "Ada", age: 37 },
          { name: "Grace", age: 85 }
        ])
        const values = yield* sql`SELECT name, age FROM people ORDER BY id`.values
        assert.deepStrictEqual(values, [
          ["Ada", 37],
          ["Grace", 85]
        ])
        const raw = yield* sql`DELETE FROM people WHERE name = ${"Grace"}`.raw
        assert.isTrue(typeof raw === "object" && raw !== null && "command" in raw && raw.command === "DELETE")
        const unsafe = yield* sql.unsafe("SELECT count(*) AS n FROM people WHERE age = $1", [37])
        assert.deepStrictEqual(unsafe, [{ n: 1n }])
      })
    )

    it.effect("streams every row, in order and in chunks", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        const rows = yield* sql<{ readonly n: number }>`SELECT generate_series(1, 300) AS n`.stream.pipe(
          Stream.runCollect
        )
        assert.strictEqual(rows.length, 300)
        assert.deepStrictEqual(
          rows.map((row) => row.n),
          Array.from({ length: 300 }, (_, i) => i + 1)
        )
      })
    )

    it.effect("runs multi-statement DDL text through unsafe", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        const rows = yield* sql.unsafe(`
          CREATE TABLE multi_a (id int PRIMARY KEY);
          CREATE TABLE multi_b (id int PRIMARY KEY REFERENCES multi_a (id));
          INSERT INTO multi_a VALUES (1), (2);
          INSERT INTO multi_b VALUES (2);
          SELECT id FROM multi_b
        `)
        // The result is the last statement's.
        assert.deepStrictEqual(rows, [{ id: 2 }])
        const tables = yield* sql<{ readonly name: string }>`
          SELECT table_name AS name FROM information_schema.tables
          WHERE table_name IN ('multi_a', 'multi_b') ORDER BY table_name
        `
        assert.deepStrictEqual(
          tables.map((row) => row.name),
          ["multi_a", "multi_b"]
        )
      })
    )

    it.effect("reads pg_current_xact_id() as bigint, one per transaction", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        const ids = yield* sql.withTransaction(
          Effect.all([sql`SELECT pg_current_xact_id() AS id`, sql`SELECT pg_current_xact_id() AS id`])
        )
        const first = single(ids[0])["id"]
        assert.strictEqual(typeof first, "bigint")
        assert.strictEqual(single(ids[1])["id"], first)
        const next = single(yield* sql`SELECT pg_current_xact_id() AS id`)["id"]
        assert.isTrue(typeof first === "bigint" && typeof next === "bigint" && next > first)
      })
    )

    it.effect("serialises concurrent transactions: a reader never sees half of one", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE tx_log (id serial PRIMARY KEY, tx int NOT NULL, step int NOT NULL)`
        const indices = Array.from({ length: 50 }, (_, i) => i)
        const midway = yield* Effect.forEach(indices, () => Deferred.make<void>())
        const readerSubmitted = yield* Effect.forEach(indices, () => Deferred.make<void>())
        // Each transaction waits, half done, until a reader has been handed to the client; the others queue behind it.
        const writer = (tx: number) =>
          sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO tx_log (tx, step) VALUES (${tx}, 1)`
              yield* Deferred.succeed(midway[tx]!, undefined)
              yield* Deferred.await(readerSubmitted[tx]!)
              yield* sql`INSERT INTO tx_log (tx, step) VALUES (${tx}, 2)`
            })
          )
        const torn = sql<{ readonly tx: number }>`
          SELECT tx FROM tx_log GROUP BY tx HAVING count(*) <> 2
        `
        // A read submitted while transaction `tx` is half done: let in at once, it would see that half.
        const reader = (tx: number) =>
          Effect.gen(function* () {
            yield* Deferred.await(midway[tx]!)
            const read = yield* submit(torn)
            yield* Deferred.succeed(readerSubmitted[tx]!, undefined)
            return yield* Fiber.join(read)
          })
        const [, tornReads] = yield* Effect.all(
          [
            Effect.forEach(indices, writer, { concurrency: "unbounded", discard: true }),
            Effect.forEach(indices, reader, { concurrency: "unbounded" })
          ],
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          tornReads.flatMap((rows) => rows.map((row) => row.tx)),
          []
        )
        const rows = yield* sql<{ readonly tx: number; readonly step: number }>`
          SELECT tx, step FROM tx_log ORDER BY id
        `
        assert.strictEqual(rows.length, 100)
        // Each transaction's two rows are next to each other.
        for (let i = 0; i < rows.length; i += 2) {
          const first = rows[i]
          const second = rows[i + 1]
          assert.deepStrictEqual([first?.step, second?.step], [1, 2])
          assert.strictEqual(first?.tx, second?.tx)
        }
        assert.strictEqual(new Set(rows.map((row) => row.tx)).size, 50)
      })
    )

    it.effect("a statement from another fiber waits for the open transaction instead of joining it", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE isolation (name text NOT NULL)`
        const started = yield* Deferred.make<void>()
        const submitted = yield* Deferred.make<void>()
        const transaction = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO isolation (name) VALUES (${"in transaction"})`
              yield* Deferred.succeed(started, undefined)
              yield* Deferred.await(submitted)
              // Sent after the outside statement, on PGlite's one session: it completes, and sees what ran before it
              // in that session. Had the outside statement not been held back, it would have run first, here.
              const seen = yield* sql<{ readonly name: string }>`SELECT name FROM isolation ORDER BY name`
              return yield* Effect.fail(seen.map((row) => row.name))
            })
          )
          .pipe(Effect.forkChild)
        yield* Deferred.await(started)
        const outside = yield* submit(sql`INSERT INTO isolation (name) VALUES (${"outside"})`)
        yield* Deferred.succeed(submitted, undefined)
        const exit = yield* Fiber.await(transaction)
        assert.deepStrictEqual(exit, Exit.fail(["in transaction"]), "the statement ran inside the transaction")
        yield* Fiber.join(outside)
        const rows = yield* sql<{ readonly name: string }>`SELECT name FROM isolation`
        assert.deepStrictEqual(rows, [{ name: "outside" }])
      })
    )

    it.effect("rolls back a failed transaction", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE rollback_failure (n int NOT NULL)`
        const result = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO rollback_failure (n) VALUES (${1})`
              yield* sql`INSERT INTO rollback_failure (n) VALUES (${2})`
              return yield* Effect.fail("boom" as const)
            })
          )
          .pipe(Effect.flip)
        assert.strictEqual(result, "boom")
        assert.deepStrictEqual(yield* sql`SELECT n FROM rollback_failure`, [])
        assert.isFalse(sql.pglite.isInTransaction())
      })
    )

    it.effect("rolls back and releases the connection when a transaction is interrupted", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE rollback_interrupt (n int NOT NULL)`
        const started = yield* Deferred.make<void>()
        const fiber = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO rollback_interrupt (n) VALUES (${1})`
              yield* Deferred.succeed(started, undefined)
              return yield* Effect.never
            })
          )
          .pipe(Effect.forkChild)
        yield* Deferred.await(started)
        yield* Fiber.interrupt(fiber)
        assert.isFalse(sql.pglite.isInTransaction())
        assert.deepStrictEqual(yield* sql`SELECT n FROM rollback_interrupt`, [])
        yield* sql.withTransaction(sql`INSERT INTO rollback_interrupt (n) VALUES (${2})`)
        assert.deepStrictEqual(yield* sql`SELECT n FROM rollback_interrupt`, [{ n: 2 }])
      })
    )

    it.effect("rolls a failed nested transaction back to its savepoint", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE savepoints (name text NOT NULL)`
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO savepoints (name) VALUES (${"outer before"})`
            const inner = yield* sql
              .withTransaction(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO savepoints (name) VALUES (${"inner"})`
                  return yield* Effect.fail("inner failed" as const)
                })
              )
              .pipe(Effect.flip)
            assert.strictEqual(inner, "inner failed")
            yield* sql.withTransaction(sql`INSERT INTO savepoints (name) VALUES (${"inner committed"})`)
            yield* sql`INSERT INTO savepoints (name) VALUES (${"outer after"})`
          })
        )
        const rows = yield* sql<{ readonly name: string }>`SELECT name FROM savepoints ORDER BY name`
        assert.deepStrictEqual(
          rows.map((row) => row.name),
          ["inner committed", "outer after", "outer before"]
        )
      })
    )

    it.effect("reports a unique violation with its constraint and keeps PGlite's error as cause", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        yield* sql`CREATE TABLE accounts (email text NOT NULL, CONSTRAINT accounts_email_key UNIQUE (email))`
        yield* sql`INSERT INTO accounts (email) VALUES (${"a@example.com"})`
        const error = yield* sqlErrorOf(sql`INSERT INTO accounts (email) VALUES (${"a@example.com"})`)
        assert.instanceOf(error, SqlError)
        const reason = error.reason
        assert.strictEqual(reason._tag, "UniqueViolation")
        assert.strictEqual(reason._tag === "UniqueViolation" ? reason.constraint : undefined, "accounts_email_key")
        assert.isFalse(error.isRetryable)
        const cause = reason.cause
        assert.isTrue(cause instanceof Error)
        assert.include(cause, { code: "23505", constraint: "accounts_email_key", table: "accounts" })
        assert.include(cause, { detail: "Key (email)=(a@example.com) already exists." })
        assert.include(error.message, "duplicate key value violates unique constraint")
      })
    )

    it.effect("classifies failures by SQLSTATE like @effect/sql-pg", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        const raise = (code: string) =>
          sqlErrorOf(sql.unsafe(`DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '${code}'; END $$`))
        const expected: ReadonlyArray<readonly [string, string]> = [
          ["08006", "ConnectionError"],
          ["28000", "AuthenticationError"],
          ["42501", "AuthorizationError"],
          ["42P01", "SqlSyntaxError"],
          ["23514", "ConstraintError"],
          ["40P01", "DeadlockError"],
          ["40001", "SerializationError"],
          ["55P03", "LockTimeoutError"],
          ["57014", "StatementTimeoutError"],
          ["22012", "UnknownError"]
        ]
        for (const [code, tag] of expected) {
          const error = yield* raise(code)
          assert.strictEqual(error.reason._tag, tag, code)
          assert.include(error.reason.cause, { code })
        }
        const syntax = yield* sqlErrorOf(sql`SELEC 1`)
        assert.strictEqual(syntax.reason._tag, "SqlSyntaxError")
        const missing = yield* sqlErrorOf(sql`SELECT * FROM no_such_table WHERE id = ${1}`)
        assert.strictEqual(missing.reason._tag, "SqlSyntaxError")
        assert.include(missing.reason.cause, { code: "42P01" })
        yield* sql`CREATE TABLE parents (id int PRIMARY KEY)`
        yield* sql`CREATE TABLE children (parent int REFERENCES parents (id))`
        const foreignKey = yield* sqlErrorOf(sql`INSERT INTO children (parent) VALUES (${1})`)
        assert.strictEqual(foreignKey.reason._tag, "ConstraintError")
        const divide = yield* sqlErrorOf(sql`SELECT 1 / ${0} AS n`)
        assert.strictEqual(divide.reason._tag, "UnknownError")
        // A COMMIT that finds the transaction aborted rolls it back, and fails.
        const aborted = yield* sqlErrorOf(sql.withTransaction(Effect.ignore(sql`SELECT 1 / ${0} AS n`)))
        assert.strictEqual(aborted.reason._tag, "UnknownError")
        assert.include(aborted.message, "COMMIT rolled back an aborted transaction")
        assert.isFalse(sql.pglite.isInTransaction())
      })
    )

    it.effect("binds json() as jsonb", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        const row = single(
          yield* sql`SELECT ${sql.json({ a: [1, { b: null }] })} AS value, pg_typeof(${sql.json(1)})::text AS type`
        )
        assert.deepStrictEqual(row, { value: { a: [1, { b: null }] }, type: "jsonb" })
        const error = yield* sqlErrorOf(sql`SELECT ${sql.json({ n: 1n })} AS value`)
        assert.strictEqual(error.reason._tag, "UnknownError")
      })
    )

    it.effect("delivers NOTIFY payloads to listeners and unlistens when the scope closes", () =>
      Effect.gen(function* () {
        const sql = yield* PgliteClient.PgliteClient
        // Case, spaces, dots and quotes are kept.
        const channel = 'Annal events.v1 "x"'
        const listening = sql<{ readonly channel: string }>`SELECT pg_listening_channels() AS channel`
        yield* Effect.scoped(
          Effect.gen(function* () {
            const queue = yield* sql.listen(channel)
            assert.deepStrictEqual(yield* listening, [{ channel }])
            yield* sql.notify(channel, "first")
            assert.strictEqual(yield* takeSoon(queue), "first")
            yield* sql`SELECT pg_notify(${channel}, ${"second"})`
            assert.strictEqual(yield* takeSoon(queue), "second")
            // A notification sent in a transaction arrives when it commits, and
            // not at all when it rolls back.
            yield* sql
              .withTransaction(Effect.andThen(sql.notify(channel, "rolled back"), Effect.fail("abort" as const)))
              .pipe(Effect.ignore)
            yield* sql.withTransaction(sql.notify(channel, "committed"))
            assert.strictEqual(yield* takeSoon(queue), "committed")
            assert.strictEqual(yield* Queue.size(queue), 0)
            // Another channel's notifications are not delivered here.
            yield* sql.notify('annal events.v1 "x"', "other channel")
            yield* sql.notify(channel, "last")
            assert.strictEqual(yield* takeSoon(queue), "last")
          })
        )
        assert.deepStrictEqual(yield* listening, [])
        // A listener that starts while another fiber's transaction is open
        // waits for it, so its LISTEN survives that transaction's rollback.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const started = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const transaction = yield* sql
              .withTransaction(
                Effect.gen(function* () {
                  yield* Deferred.succeed(started, undefined)
                  yield* Deferred.await(release)
                  return yield* Effect.fail("abort" as const)
                })
              )
              .pipe(Effect.forkChild)
            yield* Deferred.await(started)
            // The LISTEN is submitted while the transaction is open, and only then is the transaction rolled back.
            const listener = yield* submit(sql.listen(channel))
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.await(transaction)
            const queue = yield* Fiber.join(listener)
            yield* sql.notify(channel, "after rollback")
            assert.strictEqual(yield* takeSoon(queue), "after rollback")
          })
        )
        const tooLong = yield* sqlErrorOf(Effect.scoped(sql.listen("x".repeat(64))))
        assert.strictEqual(tooLong.reason._tag, "UnknownError")
      })
    )
  })

  it.effect("persists to dataDir across clients", () =>
    Effect.gen(function* () {
      const root = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "annal-pglite-"))),
        (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
      )
      // A folder that does not exist yet.
      const dataDir = join(root, "nested", "db")
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE kept (id int8 PRIMARY KEY, body jsonb NOT NULL)`
        yield* sql.withTransaction(sql`INSERT INTO kept (id, body) VALUES (${1n}, ${JSON.stringify({ v: "kept" })})`)
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir })))
      const rows = yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        return yield* sql`SELECT id, body FROM kept`
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir })))
      assert.deepStrictEqual(rows, [{ id: 1n, body: { v: "kept" } }])
      // Memory is not shared between clients; names are transformed both ways.
      const memory = yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const kept = yield* sql`SELECT to_regclass('kept')::text AS kept_table`
        yield* sql`CREATE TABLE ${sql("eventLog")} (${sql("streamId")} text, ${sql("streamVersion")} int8)`
        yield* sql`INSERT INTO ${sql("eventLog")} ${sql.insert({ streamId: "s-1", streamVersion: 1n })}`
        const rows = yield* sql`SELECT * FROM event_log`
        return { kept, rows }
      }).pipe(
        Effect.provide(
          PgliteClient.layerConfig({
            dataDir: Config.succeed("memory://"),
            transformQueryNames: Config.succeed((name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)),
            transformResultNames: Config.succeed((name: string) =>
              name.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())
            )
          })
        )
      )
      assert.deepStrictEqual(memory, {
        kept: [{ keptTable: null }],
        rows: [{ streamId: "s-1", streamVersion: 1n }]
      })
    })
  )
})
