import { assert, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import type * as Event from "../src/Event.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as Feed from "../src/Feed.ts"
import * as Wakeups from "../src/internal/feedWakeups.ts"
import { channelOf } from "../src/internal/feedMigration.ts"
import { OrganizationEvents, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`
const postgres = TestDatabase.engine === "postgres"

/** The ids of the events of a batch or a list of entries. */
const ids = (list: ReadonlyArray<{ readonly eventId: string }>) => list.map((event) => event.eventId)

/** Everything readable after `after`, page by page, without following. */
const readAll = Effect.fnUntraced(function* (after: Checkpoint.Checkpoint, options: Feed.Filter = {}) {
  const feed = yield* Feed.Feed
  return yield* Stream.runCollect(feed.stream(EventRegistry.raw, { ...options, after, live: false, limit: 7 }))
})

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`Feed (${TestDatabase.engine})`, (it) => {
  it.effect("reads every event once, in transaction order, page by page from any checkpoint", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      // Everything committed before is readable, so what follows `start` is this test's own.
      yield* FeedDatabase.readable
      const start = yield* feed.head
      const org = uuid()
      const appended = [
        ...(yield* store.append([FeedDatabase.created(org), FeedDatabase.gst(org, "1")])),
        ...(yield* store.append([FeedDatabase.gst(org, "2")])),
        ...(yield* store.append([FeedDatabase.gst(org, "3"), FeedDatabase.gst(org, "4"), FeedDatabase.gst(org, "5")]))
      ]
      yield* FeedDatabase.readable
      const first = yield* feed.read(EventRegistry.raw, { after: start, limit: 2 })
      assert.deepStrictEqual(ids(first.events), ids(appended).slice(0, 2))
      assert.deepStrictEqual(first.checkpoint, first.entries[1]!.checkpoint)
      // Resuming from the string form, as an SSE client's Last-Event-ID does.
      const second = yield* feed.read(OrganizationEvents, { after: Checkpoint.encode(first.checkpoint), limit: 3 })
      assert.deepStrictEqual(ids(second.events), ids(appended).slice(2, 5))
      assert.strictEqual(second.events[0]!.eventType, "organization.gst.added")
      const rest = yield* feed.read(EventRegistry.raw, { after: second.checkpoint })
      assert.deepStrictEqual(ids(rest.events), ids(appended).slice(5))
      const none = yield* feed.read(EventRegistry.raw, { after: rest.checkpoint })
      assert.deepStrictEqual(none, { events: [], entries: [], checkpoint: rest.checkpoint })
      assert.deepStrictEqual(yield* feed.head, rest.checkpoint)

      const all = yield* readAll(start)
      assert.deepStrictEqual(ids(all.map((entry) => entry.event)), ids(appended))
      const [positions] = [all.map((entry) => entry.checkpoint.globalPosition)]
      assert.deepStrictEqual(
        positions,
        appended.map((event) => event.globalPosition)
      )
    })
  )

  it.effect("filters by type, aggregate, user and correlation id, and passes what does not match", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      // Everything committed before is readable, so what follows `start` is this test's own.
      yield* FeedDatabase.readable
      const start = yield* feed.head
      const [org1, org2] = [uuid(), uuid()]
      const [c1] = yield* store.append([FeedDatabase.created(org1)])
      yield* store.append([FeedDatabase.gst(org1, "1"), FeedDatabase.gst(org1, "2")])
      const [c2] = yield* store.append([FeedDatabase.created(org2)])
      const trailing = yield* store.append([FeedDatabase.gst(org2, "3")])
      yield* FeedDatabase.readable

      const created = yield* feed.read(EventRegistry.raw, { after: start, eventTypes: ["organization.created"] })
      assert.deepStrictEqual(ids(created.events), [c1!.eventId, c2!.eventId])
      // The trailing GST event was looked at: the checkpoint is past it, so it is not scanned again.
      const [last] = yield* readAll(created.checkpoint)
      assert.isUndefined(last)
      const trailingAt = (yield* FeedDatabase.committed(schema)).find((row) => row.eventId === trailing[0]!.eventId)!
      assert.isAtLeast(Checkpoint.compare(created.checkpoint, trailingAt.checkpoint), 0)

      const byAggregate = yield* feed.read(EventRegistry.raw, { after: start, aggregateTypes: ["organization"] })
      assert.strictEqual(byAggregate.events.length, 5)
      const nothing = yield* feed.read(EventRegistry.raw, { after: start, aggregateTypes: ["trade"] })
      assert.deepStrictEqual(nothing.events, [])
      assert.isAtLeast(Checkpoint.compare(nothing.checkpoint, trailingAt.checkpoint), 0)

      const ofOrg1 = yield* feed.read(EventRegistry.raw, { after: start, aggregateId: org1.toUpperCase() })
      assert.deepStrictEqual(
        ofOrg1.events.map((event) => event.aggregateId),
        [org1, org1, org1]
      )
      const c2Event = (yield* feed.read(EventRegistry.raw, { after: start, eventTypes: ["organization.created"] }))
        .events[1]!
      const byUser = yield* feed.read(EventRegistry.raw, { after: start, userId: c2Event.userId })
      assert.deepStrictEqual(ids(byUser.events), [c2!.eventId])
      const [correlated] = yield* store.append([
        { ...FeedDatabase.gst(org2, "4"), metadata: { correlationId: `request-${org2}` } }
      ])
      yield* FeedDatabase.readable
      const byCorrelation = yield* feed.read(EventRegistry.raw, { after: start, correlationId: `request-${org2}` })
      assert.deepStrictEqual(ids(byCorrelation.events), [correlated!.eventId])
    })
  )

  it.effect("refuses malformed options with InvalidQuery or InvalidCursor", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const tags = yield* Effect.all([
        Effect.flip(feed.read(EventRegistry.raw, { limit: 0 })),
        Effect.flip(feed.read(EventRegistry.raw, { eventTypes: [] })),
        Effect.flip(feed.read(EventRegistry.raw, { eventTypes: ["Not A Type"] })),
        Effect.flip(feed.read(EventRegistry.raw, { aggregateTypes: ["a.b"] })),
        Effect.flip(feed.read(EventRegistry.raw, { userId: "not-a-uuid" })),
        Effect.flip(feed.read(EventRegistry.raw, { after: "garbage" })),
        Effect.flip(Stream.runCollect(feed.stream(EventRegistry.raw, { pollInterval: 0 })))
      ])
      assert.deepStrictEqual(
        tags.map((error) => error._tag),
        [
          "InvalidQuery",
          "InvalidQuery",
          "InvalidQuery",
          "InvalidQuery",
          "InvalidQuery",
          "InvalidCursor",
          "InvalidQuery"
        ]
      )
    })
  )

  // PostgreSQL only: PGlite is one session, so its transactions never overlap and commit in the order they insert.
  it.effect.runIf(postgres)(
    "an event inserted first but committed last is read at its commit, after the other, and never skipped",
    () =>
      Effect.gen(function* () {
        const feed = yield* Feed.Feed
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        // Everything committed before is readable, so what follows `start` is this test's own.
        yield* FeedDatabase.readable
        const start = yield* feed.head
        const naiveStart = yield* sql<{ readonly last: string }>`SELECT COALESCE(max(global_position), 0)::text AS last
        FROM ${sql(events)}`
        const inserted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // The slow transaction inserts first, so it has the smaller global position, and commits last.
        const slow = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              const appended = yield* store.append([FeedDatabase.gst(uuid(), "slow")])
              yield* Deferred.succeed(inserted, undefined)
              yield* Deferred.await(release)
              return appended
            })
          )
          .pipe(Effect.forkChild)
        yield* Deferred.await(inserted)
        const fast = yield* store.append([FeedDatabase.gst(uuid(), "fast")])

        // What a reader of global_position > last sees now, and where it would resume.
        const naiveRead = (after: string) =>
          sql<{ readonly id: string; readonly position: string }>`SELECT id, global_position::text AS position
          FROM ${sql(events)} WHERE global_position > ${after}::bigint ORDER BY global_position`
        const naiveFirst = yield* naiveRead(naiveStart[0]!.last)
        // The feed reads the fast one at once: the open transaction has not committed, so it holds nothing back.
        const early = yield* feed.read(EventRegistry.raw, { after: start })
        assert.deepStrictEqual(ids(early.events), [fast[0]!.eventId])

        yield* Deferred.succeed(release, undefined)
        const slowAppended = yield* Fiber.join(slow)
        const naiveSecond = yield* naiveRead(naiveFirst.at(-1)?.position ?? naiveStart[0]!.last)
        const read = yield* feed
          .stream(EventRegistry.raw, { after: start, pollInterval: "20 millis" })
          .pipe(Stream.take(2), Stream.runCollect)

        assert.deepStrictEqual(
          read.map((entry) => entry.event.eventId),
          [fast[0]!.eventId, slowAppended[0]!.eventId]
        )
        assert.isTrue(slowAppended[0]!.globalPosition < fast[0]!.globalPosition)
        // The naive reader skipped the slow event for good: it had passed its position before it committed.
        assert.deepStrictEqual(
          [...naiveFirst, ...naiveSecond].map((row) => row.id),
          [fast[0]!.eventId]
        )
      })
  )

  it.effect("follows live: events committed after the stream started arrive in order", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      // Everything committed before is readable, so what follows `start` is this test's own.
      yield* FeedDatabase.readable
      const start = yield* feed.head
      const reader = yield* feed
        .stream(EventRegistry.raw, { after: start, pollInterval: "200 millis" })
        .pipe(Stream.take(30), Stream.runCollect, Effect.forkChild)
      const appended = yield* FeedDatabase.appendMany(30)
      const read = yield* Fiber.join(reader)
      assert.deepStrictEqual(
        read.map((entry) => entry.event.eventId),
        appended
      )
    })
  )

  /**
   * The feed's own wake-ups, on a listener of this test. Once listening, it wakes everyone once for what committed
   * before; that wake-up is let pass, so that later ones come from notifications only.
   */
  const quietWakeups = Effect.gen(function* () {
    const wakeups = yield* Wakeups.make(channelOf({ schema, table: "events" }))
    yield* Effect.timeoutOption(yield* wakeups.next, "200 millis")
    return wakeups
  })

  it.effect("a commit wakes a waiting reader through LISTEN/NOTIFY", () =>
    Effect.gen(function* () {
      const wakeups = yield* quietWakeups
      assert.isTrue(wakeups.listening)
      const next = yield* wakeups.next
      yield* FeedDatabase.appendMany(1)
      yield* next
    })
  )

  it.effect("an append in a transaction wakes readers after the commit, and a rolled back one not at all", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const store = yield* EventStore
      // Other files' writers share nothing with this table's channel, so any wake-up here is this test's.
      const wakeups = yield* quietWakeups
      const rolledBack = yield* wakeups.next
      yield* sql
        .withTransaction(Effect.andThen(store.append([FeedDatabase.gst()]), Effect.fail("abort" as const)))
        .pipe(Effect.flip)
      assert.isTrue(Option.isNone(yield* Effect.timeoutOption(rolledBack, "300 millis")))
      const committed = yield* wakeups.next
      yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* store.append([FeedDatabase.gst()])
          assert.isTrue(Option.isNone(yield* Effect.timeoutOption(committed, "300 millis")))
        })
      )
      yield* committed
    })
  )

  it.effect("no trigger notifies in the writer's transaction (it would serialize every commit on the server)", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const triggers = yield* sql<{ readonly tgname: string }>`SELECT tgname FROM pg_trigger
        WHERE tgrelid = ${events}::regclass AND NOT tgisinternal ORDER BY tgname`
      assert.deepStrictEqual(
        triggers.map((trigger) => trigger.tgname),
        ["events_mark_commit", "events_refuse_truncate", "events_refuse_update_delete"]
      )
    })
  )

  it.effect("events that wake no one are read at the next poll", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const sql = yield* SqlClient.SqlClient
      // Everything committed before is readable, so what follows `start` is this test's own.
      yield* FeedDatabase.readable
      const start = yield* feed.head
      // Rows written by plain SQL, as by a writer other than the store: no notification at all.
      const written = Array.from({ length: 3 }, () => uuid())
      for (const id of written) {
        yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
          version, data, stream_version)
          VALUES (${id}::uuid, 'organization.gst.added', ${uuid()}::uuid, 'organization', ${uuid()}::uuid, now(), 1,
            '{"gstin":"29A","state":"KA"}'::jsonb, 1)`
      }
      const read = yield* feed
        .stream(EventRegistry.raw, { after: start, pollInterval: "50 millis" })
        .pipe(Stream.take(3), Stream.runCollect)
      assert.deepStrictEqual(
        read.map((entry) => entry.event.eventId),
        written
      )
    })
  )

  it.effect("a slow consumer slows the reads: no more than the page in hand and the next are read ahead", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      // Everything committed before is readable, so what follows `start` is this test's own.
      yield* FeedDatabase.readable
      const start = yield* feed.head
      const store = yield* EventStore
      for (let i = 0; i < 10; i++) {
        yield* store.append(Array.from({ length: 50 }, (_, j) => FeedDatabase.gst(uuid(), String(j))))
      }
      /**
       * Reads 500 events in pages of 10 and stalls after consuming 3; once `settle` is over, returns how many events
       * were read from the database.
       */
      const readAhead = (
        buffer: (self: Stream.Stream<Feed.Entry<Event.RawEvent>, unknown>) => typeof self,
        settle: (decoded: () => number) => Effect.Effect<void>
      ) =>
        Effect.gen(function* () {
          let decoded = 0
          let consumed = 0
          const counting: EventRegistry.EventRegistry<Event.RawEvent, never> = {
            definitions: new Map(),
            decode: (event) => Effect.sync(() => (decoded++, event))
          }
          const stalled = yield* Deferred.make<void>()
          const consumer = yield* feed.stream(counting, { after: start, limit: 10, live: false }).pipe(
            buffer,
            Stream.runForEach(() =>
              ++consumed < 3 ? Effect.void : Effect.andThen(Deferred.succeed(stalled, undefined), Effect.never)
            ),
            Effect.forkChild
          )
          yield* Deferred.await(stalled)
          yield* settle(() => decoded)
          yield* Fiber.interrupt(consumer)
          return decoded
        })
      // The naive reader, behind an unbounded buffer, reads everything while its consumer is stalled.
      const startedAt = yield* Clock.currentTimeMillis
      const unbounded = yield* readAhead(
        (self) => self.pipe(Stream.buffer({ capacity: "unbounded" })),
        (decoded) => Effect.repeat(Effect.sleep("5 millis"), { until: () => decoded() >= 500 })
      )
      const eager = (yield* Clock.currentTimeMillis) - startedAt
      assert.strictEqual(unbounded, 500)
      // Given twice the time the naive one needed to read everything, the feed's own stream reads nothing more.
      const bounded = yield* readAhead(
        (self) => self,
        () => Effect.sleep(Math.max(100, 2 * eager))
      )
      assert.isAtMost(bounded, 20)
    })
  )

  it.effect.runIf(postgres)(
    "a transaction held open after it appended holds no reader back: later commits arrive first, its event at its commit",
    () =>
      Effect.gen(function* () {
        const feed = yield* Feed.Feed
        const consumers = yield* Consumers.Consumers
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        const name = `follower-${uuid()}`
        const seen: Array<string> = []
        const follower = yield* Effect.forkChild(
          consumers.run(
            Consumer.make({
              name,
              registry: EventRegistry.raw,
              pollInterval: "50 millis",
              handle: (batch) => Effect.sync(() => seen.push(...batch.events.map((event) => event.eventId)))
            })
          )
        )
        yield* FeedDatabase.caughtUp(schema, name)
        const before = seen.length

        const inserted = yield* Deferred.make<{ readonly pid: number; readonly eventId: string }>()
        const release = yield* Deferred.make<void>()
        const held = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              const [appended] = yield* store.append([FeedDatabase.gst(uuid(), "held")])
              const [backend] = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`
              yield* Deferred.succeed(inserted, { pid: backend!.pid, eventId: appended!.eventId })
              yield* Deferred.await(release)
            })
          )
          .pipe(Effect.forkChild)
        const holder = yield* Deferred.await(inserted)
        const after = yield* FeedDatabase.appendMany(5)
        // The five that committed after the open transaction's append are delivered while it stays open.
        yield* FeedDatabase.caughtUp(schema, name)
        assert.deepStrictEqual(seen.slice(before), after)
        const status = yield* feed.status
        assert.strictEqual(status.pending, 0)
        assert.isFalse(status.committing.some((transaction) => transaction.pid === holder.pid))
        const lag = yield* FeedDatabase.lagOf(name)
        assert.strictEqual(lag.eventsBehind, 0)

        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(held)
        yield* FeedDatabase.caughtUp(schema, name)
        yield* Fiber.interrupt(follower)
        // The held event comes at its commit, after the five: the order is the commits'.
        assert.deepStrictEqual(seen.slice(before), [...after, holder.eventId])
      }),
    30_000
  )

  // PGlite is one connection: a transaction held open holds it, so every reader and writer waits for its end, and
  // no status can be read meanwhile. What remains to check is that nothing is lost and the order is the commits'.
  it.effect.runIf(!postgres)("a transaction held open on PGlite delays everyone, and the feed loses nothing", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      yield* FeedDatabase.readable
      const start = yield* feed.head
      const inserted = yield* Deferred.make<string>()
      const release = yield* Deferred.make<void>()
      const held = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const [appended] = yield* store.append([FeedDatabase.gst(uuid(), "held")])
            yield* Deferred.succeed(inserted, appended!.eventId)
            yield* Deferred.await(release)
          })
        )
        .pipe(Effect.forkChild)
      const heldId = yield* Deferred.await(inserted)
      const writer = yield* Effect.forkChild(FeedDatabase.appendMany(5))
      const reader = yield* feed
        .stream(EventRegistry.raw, { after: start, pollInterval: "50 millis" })
        .pipe(Stream.take(6), Stream.runCollect, Effect.forkChild)
      yield* Effect.sleep("1 second")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(held)
      const after = yield* Fiber.join(writer)
      const read = yield* Fiber.join(reader)
      assert.deepStrictEqual(
        read.map((entry) => entry.event.eventId),
        [heldId, ...after]
      )
      const status = yield* feed.status
      assert.strictEqual(status.pending, 0)
    })
  )

  it.effect("status: the head, and nothing pending when no transaction is open", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const appended = yield* FeedDatabase.appendMany(2)
      yield* FeedDatabase.readable
      const status = yield* feed.status
      const last = (yield* FeedDatabase.committed(schema)).at(-1)
      assert.strictEqual(last?.eventId, appended[1])
      assert.deepStrictEqual(status.head, last!.checkpoint)
      assert.isTrue(status.fence >= status.head.commitSequence)
      if (!postgres) {
        // PGlite is one session: while this runs no other transaction can be open.
        assert.strictEqual(status.pending, 0)
        assert.isTrue(Option.isNone(status.oldestPendingAge))
      }
    })
  )
})
