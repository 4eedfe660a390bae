/**
 * `EventStore.stream`, and so every export, is a snapshot of the log as the stream began: every matching event whose
 * transaction had committed by then, and none whose transaction committed after. Positions are handed out at insert,
 * not at commit, so a stream that only walks positions would return a transaction that took a low position early and
 * committed mid-stream either in part, or not at all while returning what committed after it: a silent gap in an
 * audit export. Each test is shown against that naive reader.
 */
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import type * as EventDefinition from "../src/EventDefinition.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import { qualify } from "../src/EventTable.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const postgres = TestDatabase.engine === "postgres"

/** A GST event by `userId`, the filter each test streams by, so that tests sharing the table stay apart. */
const byUser = (userId: string, gstin: string) =>
  GstAdded.make({ aggregateId: uuid(), userId, data: { gstin, state: "KA" } })

/** Appends each event in a transaction of its own; returns their ids. */
const appendEach = (events: ReadonlyArray<EventDefinition.Pending>) =>
  EventStore.use((store) =>
    Effect.forEach(events, (event) => Effect.map(store.append([event]), ([appended]) => appended!.eventId))
  )

/**
 * The ids of the events by `userId` that the stream returns, read two to a page, running `during` once, as soon as
 * the first page has been read.
 */
const streamWhile = <A, E, R>(userId: string, during: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const ran = yield* Ref.make(false)
    const events = yield* store.stream(EventRegistry.raw, { userId }, { batchSize: 2 }).pipe(
      Stream.tap(() =>
        Effect.flatMap(Ref.getAndSet(ran, true), (done) => (done ? Effect.void : Effect.asVoid(during)))
      ),
      Stream.runCollect
    )
    assert.isTrue(yield* Ref.get(ran))
    return events.map((event) => event.eventId)
  })

layer(TestDatabase.layer(), { excludeTestServices: true })(
  `EventStore.stream snapshot (${TestDatabase.engine})`,
  (it) => {
    it.effect("events committed after the stream began are not in it", () =>
      Effect.gen(function* () {
        const user = uuid()
        const before = yield* appendEach([byUser(user, "1"), byUser(user, "2"), byUser(user, "3")])
        // The naive reader returns the late event: its position is above every one read so far.
        const streamed = yield* streamWhile(user, appendEach([byUser(user, "late")]))
        assert.deepStrictEqual(streamed, before)
      })
    )

    it.effect("the last page stops at the last position stored when the stream began", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore
        const user = uuid()
        const before = yield* appendEach([byUser(user, "1"), byUser(user, "2"), byUser(user, "3")])
        const later = 50
        // The rows this transaction's statements have read from the events table and its indexes, by any plan.
        const rowsRead = sql<{ readonly n: string }>`SELECT (pg_stat_get_xact_tuples_returned(c.oid)
    + pg_stat_get_xact_tuples_fetched(c.oid)
    + COALESCE((SELECT sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) FROM pg_index i
      WHERE i.indrelid = c.oid), 0))::text AS n
  FROM pg_class c WHERE c.oid = ${qualify(store.table, store.table.table)}::regclass`.pipe(
          Effect.map((rows) => Number(rows[0]!.n))
        )
        // In one transaction, so that the counts are this connection's: after the first page, the transaction
        // appends `later` events by the same user, which the fence keeps out of the stream; the counts are taken
        // after those appends, so that they hold only the last page's reads. Without the position bound that page
        // walks every one of them and refuses each by its commit.
        const counted = yield* Ref.make(0)
        const streamed = yield* sql.withTransaction(
          Effect.gen(function* () {
            const ids = yield* streamWhile(
              user,
              Effect.gen(function* () {
                yield* store.append(Array.from({ length: later }, (_, i) => byUser(user, `later ${i}`)))
                yield* Ref.set(counted, yield* rowsRead)
              })
            )
            const read = (yield* rowsRead) - (yield* Ref.get(counted))
            return { ids, read }
          })
        )
        assert.deepStrictEqual(streamed.ids, before)
        assert.isBelow(streamed.read, later / 5)
      })
    )

    // PGlite has one connection: no transaction can stay open beside the stream.
    it.effect.runIf(postgres)(
      "a transaction that commits mid-stream is left out, whatever its position, and so is all that commits after it",
      () =>
        Effect.gen(function* () {
          const store = yield* EventStore
          const user = uuid()
          const [first] = yield* appendEach([byUser(user, "first")])
          // T1 takes the next position and stays open.
          const t1 = yield* FeedDatabase.openAppend(byUser(user, "T1"))
          // T2's transactions commit events at higher positions.
          const [a, b] = yield* appendEach([byUser(user, "a"), byUser(user, "b")])
          // T4 takes a position after the first page and stays open too.
          const t4 = yield* FeedDatabase.openAppend(byUser(user, "T4"))
          const [c, d] = yield* appendEach([byUser(user, "c"), byUser(user, "d")])
          const t2 = [a!, b!, c!, d!]
          // The first page is [first, a]: past T1's position and before T4's when they commit; T3 commits after both.
          const late = yield* Deferred.make<readonly [string, string, string]>()
          const commitThenT3 = Effect.gen(function* () {
            yield* t1.commit
            yield* t4.commit
            const [t3] = yield* appendEach([byUser(user, "T3")])
            yield* Deferred.succeed(late, [t1.eventId, t4.eventId, t3!])
          })
          const streamed = yield* streamWhile(user, commitThenT3)
          const [t1Event, t4Event, t3Event] = yield* Deferred.await(late)
          // The rule: every event whose transaction had committed when the stream began, in position order; T1, T4
          // and T3 committed after, so none of them is in it. The naive reader skipped T1, whose position it had
          // passed, yet returned T4 and T3, which committed after T1: a silent gap.
          assert.deepStrictEqual(streamed, [first!, ...t2])
          // A stream begun now has them all, each in its position.
          const now = yield* Stream.runCollect(store.stream(EventRegistry.raw, { userId: user }, { batchSize: 2 }))
          assert.deepStrictEqual(
            now.map((event) => event.eventId),
            [first!, t1Event, a!, b!, t4Event, c!, d!, t3Event]
          )
        })
    )
  }
)
