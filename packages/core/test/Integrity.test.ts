import { assert, describe, it, layer } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import * as CanonicalJson from "../src/CanonicalJson.ts"
import { EventStore, make as makeEventStore } from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import { type ChainedEvent, microsOfMillis, scheme } from "../src/internal/integrity/chain.ts"
import { findBreak } from "../src/internal/integrity/diagnosis.ts"
import { makeReadPage, makeReadStream, type Position, positionOf } from "../src/internal/integrity/read.ts"
import { describe as describeSqlError } from "../src/internal/sqlErrors.ts"
import * as Migrations from "../src/Migrations.ts"
import { syntheticChain } from "./support/Chains.ts"
import { GstAdded, OrganizationCreated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`

const TestLayer = Integrity.layer({ schema }).pipe(Layer.provideMerge(TestDatabase.layerWith(schema)))

const created = (aggregateId: string, userId: string, data: Record<string, unknown> = {}) =>
  OrganizationCreated.make({
    aggregateId,
    userId,
    data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN", ...data },
    metadata: { correlationId: "req-1", extras: { alpha: { b: [1, "é"], a: null }, zeta: 1 } }
  })

const gst = (aggregateId: string, userId: string, gstin: string) =>
  GstAdded.make({ aggregateId, userId, data: { state: "KA", gstin, amount: 0.1 } })

/** Rolls a transaction back once `body` has run, and returns what it returned. */
class Rollback extends Data.TaggedError("Rollback") {}
const rolledBack = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  SqlClient.SqlClient.use((sql) => {
    const result: Array<A> = []
    return sql
      .withTransaction(
        Effect.flatMap(body, (value) => {
          result.push(value)
          return Effect.fail(new Rollback())
        })
      )
      .pipe(
        Effect.catchIf(
          (error) => error instanceof Rollback,
          () => Effect.succeed(result[0]!)
        )
      )
  })

const sha256Hex = (bytes: string | Uint8Array) => createHash("sha256").update(bytes).digest("hex")

layer(TestLayer, { timeout: 120_000 })(`Integrity (${TestDatabase.engine})`, (it) => {
  it.effect("the append statement chains each stream; an auditor recomputes every hash from the rows alone", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const sql = yield* SqlClient.SqlClient
      const [a, b, user] = [uuid(), uuid(), uuid()]
      // One statement that starts two streams, then appends with an expected version, then a mixed batch.
      yield* store.append([created(a, user), created(b, user), gst(a, user, "1")])
      yield* store.append([gst(b, user, "2"), gst(b, user, "3")], { expectedVersion: 1 })
      yield* store.append([gst(a, user, "4"), gst(b, user, "5")])

      // Recomputed from scratch, with the driver's own parsing of jsonb and nothing of the library's reader.
      const rows = yield* sql<{
        readonly id: string
        readonly event_type: string
        readonly aggregate_type: string
        readonly aggregate_id: string
        readonly user_id: string
        readonly micros: string
        readonly version: number
        readonly data: unknown
        readonly metadata: unknown
        readonly correlation_id: string | null
        readonly causation_id: string | null
        readonly stream_version: number
        readonly hash: string
      }>`SELECT id::text AS id, event_type, aggregate_type, aggregate_id::text AS aggregate_id, user_id::text AS user_id,
          trunc(extract(epoch FROM "timestamp") * 1000000)::text AS micros, version, data, metadata, correlation_id,
          causation_id, stream_version, encode(hash, 'hex') AS hash
        FROM ${sql(events)} WHERE aggregate_id IN (${a}::uuid, ${b}::uuid)
        ORDER BY aggregate_id, stream_version`.withoutTransform
      assert.strictEqual(rows.length, 7)
      let previous = ""
      for (const row of rows) {
        if (row.stream_version === 1) previous = "00".repeat(32)
        const text = CanonicalJson.serialize({
          aggregateId: row.aggregate_id,
          aggregateType: row.aggregate_type,
          causationId: row.causation_id,
          correlationId: row.correlation_id,
          data: row.data,
          eventId: row.id,
          eventType: row.event_type,
          metadata: row.metadata,
          streamVersion: row.stream_version,
          timestamp: row.micros,
          userId: row.user_id,
          version: row.version
        })
        const expected = sha256Hex(Buffer.concat([Buffer.from(previous, "hex"), Buffer.from(text, "utf8")]))
        assert.strictEqual(row.hash, expected, `${row.aggregate_id} v${row.stream_version}`)
        previous = row.hash
      }

      const aggregate = yield* integrity.verifyAggregate("organization", a.toUpperCase())
      assert.deepStrictEqual(aggregate, {
        aggregateType: "organization",
        aggregateId: a,
        verified: true,
        events: 3,
        head: { streamVersion: 3, hash: rows.filter((row) => row.aggregate_id === a).at(-1)!.hash },
        finding: undefined,
        digest: undefined
      })
      const report = yield* integrity.verify()
      assert.isTrue(report.ok)
      assert.deepStrictEqual(report.findings, [])
    })
  )

  it.effect("verifyAggregate refuses an id that is not a UUID", () =>
    Effect.gen(function* () {
      const integrity = yield* Integrity.Integrity
      const error = yield* Effect.flip(integrity.verifyAggregate("organization", "not-a-uuid"))
      assert.strictEqual(error._tag, "InvalidQuery")
    })
  )

  it.effect("jsonb reorders keys: hashing JSON as it reads back fails on the stored row, RFC 8785 holds", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      const [appended] = yield* store.append([created(org, user)])
      const [row] = yield* sql<{ readonly metadata: string }>`SELECT metadata::text AS metadata FROM ${sql(events)}
        WHERE id = ${appended!.eventId}::uuid`
      // The application sent alpha before zeta; jsonb keeps the shortest keys first.
      const sent = { correlationId: "req-1", extras: { alpha: { b: [1, "é"], a: null }, zeta: 1 } }
      assert.notStrictEqual(JSON.stringify(JSON.parse(row!.metadata)), JSON.stringify(sent))
      assert.strictEqual(CanonicalJson.serialize(JSON.parse(row!.metadata)), CanonicalJson.serialize(sent))
      // The naive verifier: the chain's record, with metadata written as JSON.stringify writes it once read back.
      const naive = findBreak(
        {
          ...scheme,
          canonical: (fields) =>
            scheme.canonical(fields).replace(CanonicalJson.serialize(fields.metadata), JSON.stringify(fields.metadata))
        },
        yield* readChain(org)
      )
      assert.deepStrictEqual([naive?.kind, naive?.streamVersion], ["changed", 1])
      assert.isTrue((yield* integrity.verifyAggregate("organization", org)).verified)
    })
  )

  it.effect(
    "16 fibers racing on one stream leave one unbroken chain; chaining from a head read earlier breaks it",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const integrity = yield* Integrity.Integrity
        const sql = yield* SqlClient.SqlClient
        const [real, naive, user] = [uuid(), uuid(), uuid()]
        yield* store.append([created(real, user)])
        yield* store.append([created(naive, user)])

        // The naive writer reads the head's hash, then inserts numbered from whatever the head is by then.
        const naiveAppend = (gstin: string) =>
          Effect.gen(function* () {
            const [head] = yield* sql<{
              readonly version: number
              readonly hash: string
            }>`SELECT stream_version AS version,
              encode(hash, 'hex') AS hash FROM ${sql(events)} WHERE aggregate_type = 'organization'
              AND aggregate_id = ${naive}::uuid ORDER BY stream_version DESC LIMIT 1`
            const now = yield* DateTime.now
            const fields = {
              eventId: uuid(),
              eventType: "organization.gst.added",
              aggregateType: "organization",
              aggregateId: naive,
              userId: user,
              timestamp: microsOfMillis(DateTime.toEpochMillis(now)),
              version: 1,
              data: { gstin, state: "KA" },
              metadata: {},
              correlationId: null,
              causationId: null,
              streamVersion: head!.version + 1
            }
            const hash = Integrity.link(head!.hash, Integrity.canonical(fields))
            for (;;) {
              const inserted =
                yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id,
                "timestamp", version, data, metadata, stream_version, hash)
              SELECT ${fields.eventId}::uuid, ${fields.eventType}, ${naive}::uuid, 'organization', ${user}::uuid,
                ${DateTime.formatIso(now)}::timestamptz, 1, ${JSON.stringify(fields.data)}::jsonb, '{}'::jsonb,
                COALESCE(max(stream_version), 0) + 1, decode(${hash}, 'hex')
              FROM ${sql(events)} WHERE aggregate_type = 'organization' AND aggregate_id = ${naive}::uuid
              ON CONFLICT DO NOTHING RETURNING id`
              if (inserted.length > 0) return
            }
          })
        yield* writers(naiveAppend)
        yield* writers((gstin) => store.append([gst(real, user, gstin)]))

        const broken = yield* integrity.verifyAggregate("organization", naive)
        assert.strictEqual(broken.events, 65)
        assert.isFalse(broken.verified, "the naive writer's chain held, so the writers did not race")
        const chained = yield* integrity.verifyAggregate("organization", real)
        assert.strictEqual(chained.events, 65)
        assert.isTrue(chained.verified, JSON.stringify(chained.finding))
      })
  )

  it.effect("a row that no append wrote has no hash and is reported as inserted", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user), gst(org, user, "1")])
      const report = yield* rolledBack(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
              version, data, stream_version)
            VALUES (gen_random_uuid(), 'organization.deleted', ${org}::uuid, 'organization', ${user}::uuid, now(), 1,
              '{}'::jsonb, 3)`
          return yield* integrity.verify()
        })
      )
      // Other tests of this file share the table; only this stream is looked at.
      assert.deepStrictEqual(
        report.findings
          .filter((finding) => finding.aggregateId === org)
          .map((finding) => [finding.kind, finding.streamVersion, finding.detail.includes("no hash")]),
        [["inserted", 3, true]]
      )
      assert.isFalse(report.ok)
    })
  )

  it.effect("progress is reported batch by batch, up to the number of events", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const user = uuid()
      for (let n = 0; n < 5; n++) yield* store.append([created(uuid(), user)])
      const seen: Array<Integrity.Progress> = []
      const report = yield* integrity.verify({
        batchSize: 3,
        onProgress: (progress) => Effect.sync(() => seen.push(progress))
      })
      assert.isAbove(seen.length, 1)
      assert.deepStrictEqual(seen.at(-1), { events: report.events, streams: report.streams, total: report.events })
      assert.deepStrictEqual(
        seen.map((progress) => progress.events),
        seen.map((progress) => progress.events).toSorted((x, y) => x - y)
      )
    })
  )

  it.effect("pages are cut by the size of their payloads too, and the whole table is still read, in order", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const user = uuid()
      yield* store.append([created(uuid(), user), gst(uuid(), user, "x".repeat(500))])
      const readPage = makeReadPage(sql, sql(events))
      const [all] = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM ${sql(events)}`
      // A budget of one byte: every page is cut after its first row, whatever the row limit, and still has one.
      const sizes: Array<number> = []
      const seen: Array<string> = []
      let after: Position | undefined
      while (true) {
        const page = yield* readPage(after, 1000, sql`false`, undefined, 1)
        const last = page.at(-1)
        if (last === undefined) break
        sizes.push(page.length)
        for (const row of page)
          seen.push(`${row.event.aggregateId} ${String(row.event.streamVersion).padStart(10, "0")}`)
        after = positionOf(last.event)
      }
      assert.strictEqual(seen.length, Number(all!.n))
      assert.deepStrictEqual(new Set(sizes), new Set([1]))
      assert.deepStrictEqual(seen, seen.toSorted())
    })
  )

  describe("the tables stay append-only", () => {
    for (const [name, relation, column] of [
      ["events", "events", "stream_version"],
      ["digests", "events_digests", "id"],
      ["digest heads", "events_digest_heads", "digest_id"]
    ] as const) {
      it.effect(`${name}: UPDATE, DELETE and TRUNCATE are refused, even with session_replication_role = replica`, () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const table = sql(`${schema}.${relation}`)
          for (const statement of [
            sql`UPDATE ${table} SET ${sql(column)} = ${sql(column)} WHERE false`,
            sql`DELETE FROM ${table} WHERE false`,
            sql`TRUNCATE ${table}`
          ]) {
            const error = yield* sql
              .withTransaction(
                Effect.gen(function* () {
                  yield* sql`SET LOCAL session_replication_role = replica`
                  yield* statement
                })
              )
              .pipe(Effect.flip)
            assert.include(describeSqlError(error), "append-only")
          }
          const enabled = yield* sql<{ readonly tgname: string; readonly tgenabled: string }>`SELECT tgname,
              tgenabled FROM pg_trigger WHERE tgrelid = ${`${schema}.${relation}`}::regclass AND NOT tgisinternal
              AND tgname LIKE '%refuse%' ORDER BY tgname`
          assert.strictEqual(enabled.length, 2)
          for (const trigger of enabled) assert.strictEqual(trigger.tgenabled, "A", trigger.tgname)
        })
      )
    }
  })

  it.effect(
    "migration 4 hashes the rows written before it, microseconds included, then chains new appends on them",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const other = TestDatabase.uniqueSchema()
        const config = { schema: other, table: "events" }
        yield* sql`CREATE SCHEMA ${sql(other)}`
        // The first three migrations only: the table as it was before tamper evidence.
        const before = Object.fromEntries(
          Object.entries(Migrations.migrations(config)).filter(([name]) => Number.parseInt(name, 10) < 4)
        )
        yield* Migrator.make({})({ loader: Migrator.fromRecord(before), table: `${other}.events_migrations` })
        const [a, b, user] = [uuid(), uuid(), uuid()]
        const table = sql(`${other}.events`)
        // Rows as an earlier release, or another writer, stored them: microsecond timestamps, keys in any order.
        for (const [aggregateId, version, data, micros] of [
          [a, 1, `{"zeta": 1, "alpha": [1.5, "é", {"y": null, "x": true}]}`, "2024-02-29 12:34:56.789123+00"],
          [a, 2, `{"name": "Ünïcode \\"quoted\\" \\u2028"}`, "2024-02-29 12:34:57.000001+00"],
          [b, 1, `{"n": 1e21, "small": 1e-7}`, "1969-12-31 23:59:59.999999+00"]
        ] as const) {
          yield* sql`INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
            metadata, stream_version, correlation_id)
          VALUES (gen_random_uuid(), 'organization.created', ${aggregateId}::uuid, 'organization', ${user}::uuid,
            ${micros}::timestamptz, 1, ${data}::jsonb, '{"correlationId": "old"}'::jsonb, ${version}, 'old')`
        }

        const applied = yield* Migrations.run({ schema: other })
        assert.deepStrictEqual(applied, [
          [4, "integrity"],
          [5, "notify_after_commit"],
          [6, "commit_order"],
          [7, "digest_chain"]
        ])
        const hashed = yield* sql<{
          readonly n: string
        }>`SELECT count(*)::text AS n FROM ${table} WHERE hash IS NOT NULL`
        assert.strictEqual(hashed[0]!.n, "3")
        // The trigger the backfill turned off is on again, ALWAYS.
        const [trigger] = yield* sql<{ readonly tgenabled: string }>`SELECT tgenabled FROM pg_trigger
        WHERE tgrelid = ${`${other}.events`}::regclass AND tgname = 'events_refuse_update_delete'`
        assert.strictEqual(trigger!.tgenabled, "A")
        const refused = yield* Effect.flip(sql`UPDATE ${table} SET hash = NULL`)
        assert.include(describeSqlError(refused), "append-only")

        const integrity = yield* Integrity.make({ schema: other })
        const store = yield* makeEventStore({ schema: other })
        yield* store.append([gst(a, user, "new")])
        const report = yield* integrity.verify()
        assert.isTrue(report.ok, JSON.stringify(report.findings))
        assert.strictEqual(report.events, 4)

        // A verifier that reads timestamps as JavaScript dates (milliseconds) fails the backfilled rows.
        const naive = findBreak(
          { ...scheme, canonical: (fields) => scheme.canonical({ ...fields, timestamp: asDate(fields.timestamp) }) },
          yield* readChain(a, other)
        )
        assert.strictEqual(naive?.kind, "changed")
        assert.strictEqual(naive?.streamVersion, 1)
        yield* sql`DROP SCHEMA ${sql(other)} CASCADE`
      })
  )
})

/** 16 fibers, each appending four events with `append`, all at once. */
const writers = (append: (gstin: string) => Effect.Effect<unknown, unknown>) =>
  Effect.forEach(
    Array.from({ length: 16 }, (_, fiber) => fiber),
    (fiber) => Effect.forEach([0, 1, 2, 3], (n) => append(`${fiber}-${n}`), { discard: true }),
    { concurrency: "unbounded", discard: true }
  )

/** A timestamp as a JavaScript date holds it: in milliseconds. */
const asDate = (micros: string) => microsOfMillis(Number(BigInt(micros) / 1000n))

const renumber = (rows: ReadonlyArray<ChainedEvent>) => rows.map((row, index) => ({ ...row, streamVersion: index + 1 }))

const kindAt = (rows: ReadonlyArray<ChainedEvent>) => {
  const found = findBreak(scheme, rows)
  return found === undefined ? undefined : [found.kind, found.streamVersion]
}

/** One stream's rows, as the chain reads them. */
const readChain = (aggregateId: string, inSchema = schema) =>
  SqlClient.SqlClient.use((sql) => makeReadStream(sql, sql(`${inSchema}.events`))("organization", aggregateId))

describe("findBreak, on synthetic chains", () => {
  const stream = uuid()
  const make = (length: number): ReadonlyArray<ChainedEvent> => syntheticChain(stream, length)

  it("an intact chain has no break", () => {
    assert.isUndefined(findBreak(scheme, make(6)))
  })
  it("a changed field, a changed hash, and both", () => {
    const rows = make(6)
    assert.deepStrictEqual(kindAt(rows.with(2, { ...rows[2]!, data: { n: 99 } })), ["changed", 3])
    assert.deepStrictEqual(kindAt(rows.with(2, { ...rows[2]!, hash: "ab".repeat(32) })), ["changed", 3])
    assert.deepStrictEqual(kindAt(rows.with(5, { ...rows[5]!, data: { n: 99 } })), ["changed", 6])
  })
  it("a gap, and a removal hidden by renumbering the rest", () => {
    const rows = make(6)
    assert.deepStrictEqual(kindAt(rows.toSpliced(3, 1)), ["missing", 4])
    assert.deepStrictEqual(kindAt(renumber(rows.toSpliced(3, 1))), ["missing", 4])
  })
  it("two versions exchanged, adjacent or not", () => {
    const rows = make(6)
    const swap = (i: number, j: number) =>
      rows.map((row, index) =>
        index === i ? { ...rows[j]!, streamVersion: i + 1 } : index === j ? { ...rows[i]!, streamVersion: j + 1 } : row
      )
    assert.deepStrictEqual(kindAt(swap(1, 2)), ["swapped", 2])
    assert.deepStrictEqual(kindAt(swap(0, 5)), ["swapped", 1])
  })
  it("an inserted event, with a valid hash, a garbage one, none, or as a duplicate version", () => {
    const rows = make(6)
    const forged = { ...rows[0]!, eventId: uuid(), data: { forged: true }, streamVersion: 3 }
    const valid = { ...forged, hash: Integrity.link(rows[1]!.hash!, Integrity.canonical(forged)) }
    assert.deepStrictEqual(kindAt(renumber(rows.toSpliced(2, 0, valid))), ["inserted", 3])
    assert.deepStrictEqual(kindAt(renumber(rows.toSpliced(2, 0, { ...forged, hash: "cd".repeat(32) }))), [
      "inserted",
      3
    ])
    assert.deepStrictEqual(kindAt(renumber(rows.toSpliced(2, 0, { ...forged, hash: null }))), ["inserted", 3])
    assert.deepStrictEqual(kindAt(rows.toSpliced(2, 0, { ...valid, streamVersion: 3 })), ["inserted", 3])
    assert.deepStrictEqual(kindAt(rows.toSpliced(3, 0, { ...valid, streamVersion: 3 })), ["inserted", 3])
  })
})
