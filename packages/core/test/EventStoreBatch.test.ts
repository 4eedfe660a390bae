/**
 * The batch path of `EventStore.append`: the application numbers and chains a batch from the heads it read, and the
 * INSERT writes it only onto those heads. These tests race batches on one stream, inside and outside a caller's
 * transaction, and check that every append succeeds, the versions have no gap and the chain verifies; and that the
 * cases the batch path hands to the general statement (stored ids, a wrong expected version, a head without a hash)
 * behave as before. A batch outside a transaction is first chained onto the heads the store remembers; the tests of
 * stale heads check that a wrong guess costs only a statement, never a gap or a broken chain.
 */
import { assert, layer } from "@effect/vitest"
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import { EventStore, make as makeStore } from "../src/EventStore.ts"
import * as EventTable from "../src/EventTable.ts"
import * as Integrity from "../src/Integrity.ts"
import { makeLockAndReadHeads, streamLockText } from "../src/internal/store/append.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`

const TestLayer = Integrity.layer({ schema }).pipe(Layer.provideMerge(TestDatabase.layerWith(schema)))

const batch = (aggregateId: string, userId: string, tag: string, size = 5) =>
  Array.from({ length: size }, (_, i) =>
    GstAdded.make({ aggregateId, userId, data: { state: "KA", gstin: `${tag}-${i}`, amount: i } })
  )

/** 8 fibers, 3 batches each, all on the same stream. */
const race = (append: (tag: string) => Effect.Effect<unknown, unknown>) =>
  Effect.forEach(
    Array.from({ length: 8 }, (_, fiber) => fiber),
    (fiber) => Effect.forEach([0, 1, 2], (n) => Effect.exit(append(`${fiber}-${n}`))),
    { concurrency: "unbounded" }
  ).pipe(Effect.map((exits) => exits.flat()))

const versionsOf = (aggregateId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly v: number }>`SELECT stream_version AS v FROM ${sql(events)}
      WHERE aggregate_type = 'organization' AND aggregate_id = ${aggregateId}::uuid ORDER BY stream_version`
    return rows.map((row) => row.v)
  })

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

layer(TestLayer, { timeout: 120_000 })(`EventStore batches (${TestDatabase.engine})`, (it) => {
  it.effect("racing batches on one stream all succeed, leave no gap and one unbroken chain", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const [org, user] = [uuid(), uuid()]
      // The first event goes through the one-event statement, hashed in SQL; the batches chain onto it in the client.
      yield* store.append(batch(org, user, "first", 1))
      const exits = yield* race((tag) => store.append(batch(org, user, tag)))
      assert.deepStrictEqual(
        exits.filter(Exit.isFailure).map((exit) => String(exit.cause)),
        []
      )
      assert.deepStrictEqual(yield* versionsOf(org), range(1 + 8 * 3 * 5))
      const report = yield* integrity.verifyAggregate("organization", org)
      assert.isTrue(report.verified, JSON.stringify(report.finding))
      assert.strictEqual(report.events, 1 + 8 * 3 * 5)
    })
  )

  it.effect(
    "racing batches in callers' transactions all succeed; inserting from the heads read with the locks would not",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const integrity = yield* Integrity.Integrity
        const sql = yield* SqlClient.SqlClient
        const config = yield* EventTable.make({ schema })
        const lockAndReadHeads = makeLockAndReadHeads(sql, config)
        const [real, naive, user] = [uuid(), uuid(), uuid()]

        // The naive writer numbers its batch from the heads its first statement read, and inserts without checking
        // them again: when it waited for the lock, those heads are stale, and its insert fails the caller's
        // transaction with a unique violation.
        const naiveAppend = (tag: string) =>
          sql.withTransaction(
            Effect.gen(function* () {
              const locked = yield* lockAndReadHeads(
                [streamLockText(config, "organization", naive)],
                [{ aggregate_type: "organization", aggregate_id: naive }],
                []
              )
              const head = locked.heads[0]!.version
              yield* sql`INSERT INTO ${sql(events)} ${sql.insert(
                Arr.makeBy(5, (i) => ({
                  id: uuid(),
                  event_type: "organization.gst.added",
                  aggregate_id: naive,
                  aggregate_type: "organization",
                  user_id: user,
                  timestamp: new Date(),
                  version: 1,
                  data: JSON.stringify({ gstin: `${tag}-${i}` }),
                  metadata: "{}",
                  stream_version: head + i + 1
                }))
              )}`
            })
          )
        const naiveExits = yield* race(naiveAppend)
        // PGlite has one connection, so its transactions take turns and never race.
        if (TestDatabase.engine === "postgres") {
          assert.isTrue(naiveExits.some(Exit.isFailure), "the naive writers did not race")
        }

        const exits = yield* race((tag) => sql.withTransaction(store.append(batch(real, user, tag))))
        assert.deepStrictEqual(
          exits.filter(Exit.isFailure).map((exit) => String(exit.cause)),
          []
        )
        assert.deepStrictEqual(yield* versionsOf(real), range(8 * 3 * 5))
        const report = yield* integrity.verifyAggregate("organization", real)
        assert.isTrue(report.verified, JSON.stringify(report.finding))
      })
  )

  it.effect("a batch sent again is recognised event by event, and a wrong expected version is a conflict", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const [org, user] = [uuid(), uuid()]
      const events = batch(org, user, "a").map((event) => ({ ...event, eventId: uuid() }))
      const first = yield* store.append(events)
      const again = yield* store.append(events)
      assert.deepStrictEqual(
        again.map((appended) => [appended.streamVersion, appended.duplicate]),
        first.map((appended) => [appended.streamVersion, true])
      )
      const conflict = yield* Effect.flip(store.append(batch(org, user, "b"), { expectedVersion: 3 }))
      assert.strictEqual(conflict._tag, "ConcurrencyConflict")
      assert.deepStrictEqual(
        (yield* store.append(batch(org, user, "c"), { expectedVersion: 5 })).map((a) => a.streamVersion),
        [6, 7, 8, 9, 10]
      )
    })
  )

  it.effect("a batch after a row that no append wrote follows it as the general statement does", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append(batch(org, user, "a", 2))
      yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
          version, data, stream_version)
        VALUES (gen_random_uuid(), 'organization.deleted', ${org}::uuid, 'organization', ${user}::uuid, now(), 1,
          '{}'::jsonb, 3)`
      const appended = yield* store.append(batch(org, user, "b", 3))
      assert.deepStrictEqual(
        appended.map((a) => a.streamVersion),
        [4, 5, 6]
      )
      const [hashes] = yield* sql<{ readonly n: number }>`SELECT count(hash)::integer AS n FROM ${sql(events)}
        WHERE aggregate_id = ${org}::uuid`
      // The hash-less row leaves the events after it without a hash too, which the verifier reports as inserted.
      assert.strictEqual(hashes!.n, 2)
      const report = yield* integrity.verifyAggregate("organization", org)
      assert.isFalse(report.verified)
    })
  )

  it.effect("a batch onto heads another writer moved, remembered or not, is written after that writer's events", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const other = yield* makeStore({ schema })
      const integrity = yield* Integrity.Integrity
      const [known, unknown, user] = [uuid(), uuid(), uuid()]
      // `store` remembers the head it wrote (5); `other` moves it to 10 behind its back.
      yield* store.append(batch(known, user, "a"))
      yield* other.append(batch(known, user, "b"))
      // `store` has never seen this stream and assumes it new; `other` wrote 3 events to it.
      yield* other.append(batch(unknown, user, "c", 3))
      const onKnown = yield* store.append(batch(known, user, "d"))
      const onUnknown = yield* store.append(batch(unknown, user, "e"))
      assert.deepStrictEqual(
        onKnown.map((a) => a.streamVersion),
        [11, 12, 13, 14, 15]
      )
      assert.deepStrictEqual(
        onUnknown.map((a) => a.streamVersion),
        [4, 5, 6, 7, 8]
      )
      // And the heads now remembered are the right ones: the next batches go on from them.
      assert.deepStrictEqual(
        (yield* store.append(batch(known, user, "f", 2))).map((a) => a.streamVersion),
        [16, 17]
      )
      assert.deepStrictEqual(yield* versionsOf(known), range(17))
      assert.deepStrictEqual(yield* versionsOf(unknown), range(8))
      for (const stream of [known, unknown]) {
        const report = yield* integrity.verifyAggregate("organization", stream)
        assert.isTrue(report.verified, JSON.stringify(report.finding))
      }
    })
  )

  it.effect("a batch after a single append, or after a transaction that rolled back, goes on from the real head", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const integrity = yield* Integrity.Integrity
      const [org, user] = [uuid(), uuid()]
      yield* store.append(batch(org, user, "a", 3))
      // One event takes the single-statement path, which hashes in the statement.
      yield* store.append(batch(org, user, "b", 1))
      // A batch in a transaction that rolls back: its heads were never committed.
      const rolledBack = yield* Effect.exit(
        sql.withTransaction(Effect.andThen(store.append(batch(org, user, "c")), Effect.fail("rollback")))
      )
      assert.isTrue(Exit.isFailure(rolledBack))
      assert.deepStrictEqual(
        (yield* store.append(batch(org, user, "d", 2))).map((a) => a.streamVersion),
        [5, 6]
      )
      assert.deepStrictEqual(yield* versionsOf(org), range(6))
      const report = yield* integrity.verifyAggregate("organization", org)
      assert.isTrue(report.verified, JSON.stringify(report.finding))
    })
  )

  it.effect("a batch with an id already stored, onto a remembered head, is recognised event by event", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const [org, user] = [uuid(), uuid()]
      const first = batch(org, user, "a", 3).map((event) => ({ ...event, eventId: uuid() }))
      yield* store.append(first)
      // The remembered head is right, but the first event is stored: the INSERT's unique violation hands the batch
      // to the general statement, which writes the new events after the stored ones.
      const appended = yield* store.append([...first, ...batch(org, user, "b", 2)])
      assert.deepStrictEqual(
        appended.map((a) => [a.streamVersion, a.duplicate]),
        [
          [1, true],
          [2, true],
          [3, true],
          [4, false],
          [5, false]
        ]
      )
    })
  )

  it.effect(
    "a batch stores each event's payload, metadata and tracing ids, present or not, as the chain hashed them",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        const integrity = yield* Integrity.Integrity
        const [org, user, traced] = [uuid(), uuid(), uuid()]
        const [plain, correlated, caused] = batch(org, user, "a", 3)
        const appended = yield* store.append([
          plain!,
          { ...correlated!, metadata: { correlationId: traced, reason: 'ü "quoted" \\ \u2028' } },
          { ...caused!, metadata: { causationId: traced } }
        ])
        assert.deepStrictEqual(
          appended.map((a) => a.streamVersion),
          [1, 2, 3]
        )
        const rows = yield* sql<{
          readonly correlation_id: string | null
          readonly causation_id: string | null
          readonly metadata: unknown
          readonly data: unknown
        }>`SELECT correlation_id, causation_id, metadata, data FROM ${sql(events)}
        WHERE aggregate_id = ${org}::uuid ORDER BY stream_version`
        assert.deepStrictEqual(
          rows.map((row) => [row.correlation_id, row.causation_id]),
          [
            [null, null],
            [traced, null],
            [null, traced]
          ]
        )
        assert.deepStrictEqual(rows[1]!.metadata, { correlationId: traced, reason: 'ü "quoted" \\ \u2028' })
        assert.deepStrictEqual(rows[2]!.data, { state: "KA", gstin: "a-2", amount: 2 })
        // And a batch with none at all: the tracing columns are bound as no array.
        yield* store.append(batch(org, user, "b", 2))
        const [untraced] = yield* sql<{ readonly n: number }>`SELECT count(*)::integer AS n FROM ${sql(events)}
        WHERE aggregate_id = ${org}::uuid AND stream_version > 3 AND correlation_id IS NULL AND causation_id IS NULL`
        assert.strictEqual(untraced!.n, 2)
        const report = yield* integrity.verifyAggregate("organization", org)
        assert.isTrue(report.verified, JSON.stringify(report.finding))
      })
  )
})
