import { PgClient } from "@effect/sql-pg"
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import type * as Event from "../src/Event.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as Feed from "../src/Feed.ts"
import type * as Filter from "../src/Filter.ts"
import { channelOf } from "../src/internal/feed/migration.ts"
import { OrganizationEvents, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`
const postgres = TestDatabase.engine === "postgres"

/** The ids of the events of a batch or a list of entries. */
const ids = (list: ReadonlyArray<{ readonly eventId: string }>) => list.map((event) => event.eventId)

/** How long a test waits for what must come: only a guard against a hang, sized for a loaded machine. */
const hangGuard = "20 seconds"

/** Everything readable after `after`, page by page, without following. */
const readAll = Effect.fnUntraced(function* (after: Checkpoint.Checkpoint, options: Filter.Filter = {}) {
  const feed = yield* Feed.Feed
  return yield* Stream.runCollect(feed.stream(EventRegistry.raw, { ...options, after, live: false, limit: 7 }))
})

/** A live reader after `after`, for the test's scope: `next` is the id of the next event it delivers. */
const follow = Effect.fnUntraced(function* (after: Checkpoint.Checkpoint, pollInterval: Duration.Input) {
  const feed = yield* Feed.Feed
  const delivered = yield* Queue.unbounded<string>()
  yield* feed.stream(EventRegistry.raw, { after, pollInterval }).pipe(
    Stream.runForEach((entry) => Queue.offer(delivered, entry.event.eventId)),
    Effect.forkChild
  )
  return { next: Effect.timeout(Queue.take(delivered), hangGuard) }
})

/** Inserts an event by plain SQL, as a writer other than the store does: it sends no notification. */
const insertUnnotified = Effect.fnUntraced(function* (id: string) {
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
    version, data, stream_version)
    VALUES (${id}::uuid, 'organization.gst.added', ${uuid()}::uuid, 'organization', ${uuid()}::uuid, now(), 1,
      '{"gstin":"29A","state":"KA"}'::jsonb, 1)`
})

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`Feed (${TestDatabase.engine})`, (it) => {
  it.effect("reads every event once, in transaction order, page by page from any checkpoint", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      // The head covers everything committed before it, so what follows `start` is this test's own.
      const start = yield* feed.head
      const org = uuid()
      const appended = [
        ...(yield* store.append([FeedDatabase.created(org), FeedDatabase.gst(org, "1")])),
        ...(yield* store.append([FeedDatabase.gst(org, "2")])),
        ...(yield* store.append([FeedDatabase.gst(org, "3"), FeedDatabase.gst(org, "4"), FeedDatabase.gst(org, "5")]))
      ]
      // A read sees everything that committed before it: no waiting first.
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

  it.effect(
    "a page from any checkpoint, of any size, filtered or not, is the next committed events, across commits",
    () =>
      Effect.gen(function* () {
        const feed = yield* Feed.Feed
        const store = yield* EventStore
        const start = yield* feed.head
        const [org1, org2] = [uuid(), uuid()]
        // Commits of 3, 1, 4 and 2 events: pages start inside a commit, at its end, and run on into the next ones.
        const appended = [
          ...(yield* store.append([
            FeedDatabase.created(org1),
            FeedDatabase.gst(org1, "1"),
            FeedDatabase.gst(org1, "2")
          ])),
          ...(yield* store.append([FeedDatabase.created(org2)])),
          ...(yield* store.append([
            FeedDatabase.gst(org2, "3"),
            FeedDatabase.gst(org1, "4"),
            FeedDatabase.gst(org2, "5"),
            FeedDatabase.gst(org1, "6")
          ])),
          ...(yield* store.append([FeedDatabase.gst(org2, "7"), FeedDatabase.gst(org2, "8")]))
        ]
        // The created events are the first and the fourth; the rest add GST numbers.
        const created = new Set([appended[0]!.eventId, appended[3]!.eventId])
        const committed = (yield* FeedDatabase.committed(schema)).filter(
          (row) => Checkpoint.compare(row.checkpoint, start) > 0
        )
        assert.deepStrictEqual(ids(committed), ids(appended))
        const filters: ReadonlyArray<readonly [Filter.Filter, (eventId: string) => boolean]> = [
          [{}, () => true],
          [{ eventTypes: ["organization.gst.added"] }, (id) => !created.has(id)],
          [{ aggregateId: org1 }, (id) => appended.find((event) => event.eventId === id)!.aggregateId === org1]
        ]
        for (const [filter, matches] of filters) {
          for (let from = 0; from <= committed.length; from++) {
            const after = from === 0 ? start : committed[from - 1]!.checkpoint
            const expected = committed.slice(from).filter((row) => matches(row.eventId))
            for (const limit of [1, 2, 3, 5, 20]) {
              const page = yield* feed.read(EventRegistry.raw, { ...filter, after, limit })
              const label = `from event ${from}, limit ${limit}, filter ${JSON.stringify(filter)}`
              assert.deepStrictEqual(ids(page.events), ids(expected.slice(0, limit)), label)
              assert.deepStrictEqual(
                page.entries.map((entry) => entry.checkpoint),
                expected.slice(0, limit).map((row) => row.checkpoint),
                label
              )
            }
          }
        }
      })
  )

  it.effect("filters by type, aggregate, user and correlation id, and passes what does not match", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      // The head covers everything committed before it, so what follows `start` is this test's own.
      const start = yield* feed.head
      const [org1, org2] = [uuid(), uuid()]
      const [c1] = yield* store.append([FeedDatabase.created(org1)])
      yield* store.append([FeedDatabase.gst(org1, "1"), FeedDatabase.gst(org1, "2")])
      const [c2] = yield* store.append([FeedDatabase.created(org2)])
      const trailing = yield* store.append([FeedDatabase.gst(org2, "3")])

      const created = yield* feed.read(EventRegistry.raw, { after: start, eventTypes: ["organization.created"] })
      assert.deepStrictEqual(ids(created.events), [c1!.eventId, c2!.eventId])
      // The trailing GST event was looked at: the checkpoint is past it, so it is not scanned again.
      const [last] = yield* readAll(created.checkpoint)
      assert.isUndefined(last)
      const trailingAt = (yield* FeedDatabase.committed(schema)).find((row) => row.eventId === trailing[0]!.eventId)!
      assert.isAtLeast(Checkpoint.compare(created.checkpoint, trailingAt.checkpoint), 0)

      const byAggregate = yield* feed.read(EventRegistry.raw, { after: start, aggregateType: "organization" })
      assert.strictEqual(byAggregate.events.length, 5)
      const nothing = yield* feed.read(EventRegistry.raw, { after: start, aggregateType: "trade" })
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
        Effect.flip(feed.read(EventRegistry.raw, { aggregateType: "a.b" })),
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
        // The head covers everything committed before it, so what follows `start` is this test's own.
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
      // The head covers everything committed before it, so what follows `start` is this test's own.
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

  it.effect("a commit wakes a waiting reader, and an append in a transaction wakes it at its commit", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const start = yield* feed.head
      // The first event sends no notification, so once it is delivered the reader waits; and it polls once an hour,
      // so from then on only the store's notifications can bring it anything.
      const first = uuid()
      yield* insertUnnotified(first)
      const reader = yield* follow(start, "1 hour")
      assert.strictEqual(yield* reader.next, first)
      const [committed] = yield* FeedDatabase.appendMany(1)
      assert.strictEqual(yield* reader.next, committed)

      const appended = yield* Deferred.make<string>()
      const commit = yield* Deferred.make<void>()
      const transaction = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const [event] = yield* store.append([FeedDatabase.gst()])
            yield* Deferred.succeed(appended, event!.eventId)
            // PGlite is one session: another append would wait for this transaction, so it commits at once there.
            if (postgres) yield* Deferred.await(commit)
          })
        )
        .pipe(Effect.forkChild)
      const inTransaction = yield* Deferred.await(appended)
      if (postgres) {
        // While it is open, a commit after its append is delivered, so the reader is awake and reading.
        const [outside] = yield* FeedDatabase.appendMany(1)
        assert.strictEqual(yield* reader.next, outside)
        yield* Deferred.succeed(commit, undefined)
      }
      yield* Fiber.join(transaction)
      // Nothing that happened before the commit can bring its event: a notification sent before it would have woken
      // the reader to an event not yet readable, and left it waiting for the next hour's poll.
      assert.strictEqual(yield* reader.next, inTransaction)
    })
  )

  // PostgreSQL only: on PGlite every statement is the one session's, the store's own notification too.
  it.effect.runIf(postgres)(
    "nothing in the writer's transaction notifies (it would serialize every commit on the server)",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const pg = yield* PgClient.PgClient
        const store = yield* EventStore
        const channel = channelOf({ schema, table: "events" })
        // The writer's session is reserved before the LISTEN, so that nothing it sent for others reaches this
        // listener; and the store's own notification, sent while the session is still reserved, comes from another.
        const writer = yield* sql.reserve
        const onWriter = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.provideService(effect, sql.transactionService, [writer, 0])
        const notifications = yield* pg.listen(channel)
        const [session] = yield* onWriter(sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`)
        yield* onWriter(
          Effect.gen(function* () {
            yield* sql`BEGIN`
            // Both append paths: one event in one statement, and several behind their streams' locks.
            yield* store.append([FeedDatabase.gst()])
            yield* store.append([FeedDatabase.gst(), FeedDatabase.gst()])
            yield* sql`COMMIT`
          }).pipe(Effect.onError(() => Effect.ignore(sql`ROLLBACK`)))
        )
        // A listener gets notifications in commit order: one sent in the transaction would come before this one.
        yield* onWriter(sql`SELECT pg_notify(${channel}, 'control')`)
        const seen: Array<{ readonly processId: number; readonly payload: string }> = []
        const control = (n: (typeof seen)[number]) => n.processId === session!.pid && n.payload === "control"
        const fromElsewhere = (n: (typeof seen)[number]) => n.processId !== session!.pid && n.payload === ""
        while (!(seen.some(control) && seen.some(fromElsewhere))) {
          seen.push(yield* Effect.timeout(Queue.take(notifications), hangGuard))
        }
        assert.deepStrictEqual(
          seen.filter((n) => n.processId === session!.pid).map((n) => n.payload),
          ["control"]
        )
      })
  )

  it.effect("events that wake no one are read at the next poll, once the reader waits", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const start = yield* feed.head
      // Rows written by plain SQL, as by a writer other than the store: no notification at all. Once the reader has
      // delivered the first it waits, so the others, inserted after, can only be found by polling.
      const [first, ...later] = Array.from({ length: 4 }, () => uuid())
      yield* insertUnnotified(first!)
      const reader = yield* follow(start, "50 millis")
      assert.strictEqual(yield* reader.next, first)
      for (const id of later) yield* insertUnnotified(id)
      const read: Array<string> = []
      for (const _ of later) read.push(yield* reader.next)
      assert.deepStrictEqual(read, later)
    })
  )

  it.effect("a slow consumer slows the reads: no more than the page in hand and the next are read ahead", () =>
    Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const store = yield* EventStore
      const start = yield* feed.head
      for (let i = 0; i < 4; i++) {
        yield* store.append(Array.from({ length: 50 }, (_, j) => FeedDatabase.gst(uuid(), String(j))))
      }
      /** Reads the 200 events in pages of 10 and stalls after consuming 3; `read()` is how many it has read. */
      const stalledReader = (buffer: (self: Stream.Stream<Feed.Entry<Event.RawEvent>, unknown>) => typeof self) =>
        Effect.gen(function* () {
          let decoded = 0
          let consumed = 0
          const counting: EventRegistry.EventRegistry<Event.RawEvent, never> = {
            definitions: new Map(),
            decode: (event) => Effect.sync(() => (decoded++, event))
          }
          const stalled = yield* Deferred.make<void>()
          yield* feed.stream(counting, { after: start, limit: 10, live: false }).pipe(
            buffer,
            Stream.runForEach(() =>
              ++consumed < 3 ? Effect.void : Effect.andThen(Deferred.succeed(stalled, undefined), Effect.never)
            ),
            Effect.forkChild
          )
          yield* Deferred.await(stalled)
          return () => decoded
        })
      const bounded = yield* stalledReader((self) => self)
      // The control, in the same window: a naive reader behind an unbounded buffer, stalled the same way after the
      // feed's own, reads all 200 meanwhile; the feed's own has had as long, and read nothing more.
      const unbounded = yield* stalledReader((self) => self.pipe(Stream.buffer({ capacity: "unbounded" })))
      yield* Effect.sync(unbounded).pipe(
        Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (decoded) => decoded >= 200 }),
        Effect.timeout(hangGuard)
      )
      assert.strictEqual(unbounded(), 200)
      assert.isAtMost(bounded(), 20)
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
      const start = yield* feed.head
      const held = yield* FeedDatabase.openAppend(FeedDatabase.gst(uuid(), "held"))
      const heldId = held.eventId
      const [writing, reading] = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const writer = yield* Effect.forkChild(
        Effect.andThen(Deferred.succeed(writing, undefined), FeedDatabase.appendMany(5))
      )
      const reader = yield* Effect.andThen(
        Deferred.succeed(reading, undefined),
        feed
          .stream(EventRegistry.raw, { after: start, pollInterval: "50 millis" })
          .pipe(Stream.take(6), Stream.runCollect)
      ).pipe(Effect.forkChild)
      // Both have started while the transaction holds the one connection, so their first statements wait for it.
      yield* Deferred.await(writing)
      yield* Deferred.await(reading)
      yield* held.commit
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
