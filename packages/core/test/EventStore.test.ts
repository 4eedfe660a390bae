import { assert, describe, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Feed from "../src/Feed.ts"
import { GstAdded, OrganizationCreated, OrganizationEvents, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()

const created = (aggregateId: string, userId: string, name = "Acme") =>
  OrganizationCreated.make({
    aggregateId,
    userId,
    data: { name, type: "corporation", email: "a@acme.test", country: "IN" }
  })

const at = (iso: string) => DateTime.makeUnsafe(iso)

const gst = (aggregateId: string, userId: string, gstin: string) =>
  GstAdded.make({ aggregateId, userId, data: { gstin, state: "KA" } })

layer(FeedDatabase.layerWith(schema))(`EventStore (${TestDatabase.engine})`, (it) => {
  describe("append", () => {
    it.effect("stores events with contiguous stream versions and reads them back decoded", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        const first = yield* store.append([created(org, user)], { expectedVersion: "no_stream" })
        const more = yield* store.append([gst(org, user, "29A"), gst(org, user, "29B")], { expectedVersion: 1 })
        assert.deepStrictEqual(
          [...first, ...more].map((a) => [a.streamVersion, a.duplicate]),
          [
            [1, false],
            [2, false],
            [3, false]
          ]
        )
        assert.isTrue(more[0]!.globalPosition > first[0]!.globalPosition)
        assert.isTrue(more[1]!.globalPosition > more[0]!.globalPosition)

        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.deepStrictEqual(
          history.map((event) => [event.eventType, event.streamVersion, event.userId]),
          [
            ["organization.created", 1, user],
            ["organization.gst.added", 2, user],
            ["organization.gst.added", 3, user]
          ]
        )
        const [event] = history
        assert.strictEqual(event!.eventId, first[0]!.eventId)
        assert.strictEqual(event!.globalPosition, first[0]!.globalPosition)
        assert.isTrue(event!.transactionId > 0n)
        if (event!.eventType === "organization.created") {
          // The union narrows: data is the current organization payload.
          assert.strictEqual(event!.data.country, "IN")
          assert.strictEqual(event!.version, 2)
        } else {
          assert.fail(`expected organization.created, got ${event!.eventType}`)
        }
      })
    )

    it.effect("generates UUIDv7 event ids that sort by time", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        const appended = yield* store.append([created(org, user), gst(org, user, "1"), gst(org, user, "2")])
        const ids = appended.map((a) => a.eventId)
        for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        assert.deepStrictEqual(ids.toSorted(), ids)
      })
    )

    it.effect("a wrong expected version is a ConcurrencyConflict that names the stream and both versions", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        yield* store.append([created(org, user)], { expectedVersion: "no_stream" })
        const error = yield* Effect.flip(store.append([gst(org, user, "x")], { expectedVersion: 5 }))
        assert.strictEqual(error._tag, "ConcurrencyConflict")
        if (error._tag !== "ConcurrencyConflict") return
        assert.deepStrictEqual(
          [error.aggregateType, error.aggregateId, error.expectedVersion, error.actualVersion],
          ["organization", org, 5, 1]
        )
        const again = yield* Effect.flip(store.append([created(org, user)], { expectedVersion: "no_stream" }))
        assert.strictEqual(again._tag, "ConcurrencyConflict")
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(history.length, 1)
      })
    )

    it.effect("appending an event id that is stored already stores nothing and says so", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user, eventId] = [uuid(), uuid(), uuid()]
        const event = OrganizationCreated.make({
          aggregateId: org,
          userId: user,
          eventId,
          data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }
        })
        const [first] = yield* store.append([event], { expectedVersion: "no_stream" })
        // A retry with the same expected version is answered as the original, not as a conflict.
        const [retry] = yield* store.append([event], { expectedVersion: "no_stream" })
        const [anyRetry] = yield* store.append([event])
        assert.isFalse(first!.duplicate)
        assert.isTrue(retry!.duplicate)
        assert.isTrue(anyRetry!.duplicate)
        assert.strictEqual(retry!.globalPosition, first!.globalPosition)
        assert.strictEqual(retry!.streamVersion, 1)
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(history.length, 1)
      })
    )

    it.effect("a retried batch whose events are partly stored appends only the new ones, without gaps", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        const first = created(org, user)
        const second = { ...gst(org, user, "2"), eventId: uuid() }
        yield* store.append([{ ...first, eventId: uuid() }])
        const stored = yield* store.append([second])
        const retried = yield* store.append([gst(org, user, "3"), second])
        assert.deepStrictEqual(
          retried.map((a) => [a.streamVersion, a.duplicate]),
          [
            [3, false],
            [2, true]
          ]
        )
        assert.strictEqual(retried[1]!.globalPosition, stored[0]!.globalPosition)
      })
    )

    it.effect("16 fibers racing on one aggregate: versions contiguous, none lost, every loser a conflict", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        yield* store.append([created(org, user)])
        const perFiber = 5
        let conflicts = 0
        const writer = (fiber: number) =>
          Effect.gen(function* () {
            for (let written = 0; written < perFiber;) {
              const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
              const result = yield* store
                .append([gst(org, user, `${fiber}-${written}`)], { expectedVersion: history.length })
                .pipe(Effect.result)
              if (result._tag === "Success") {
                written++
              } else {
                assert.strictEqual(result.failure._tag, "ConcurrencyConflict")
                conflicts++
              }
            }
          })
        yield* Effect.forEach(
          Array.from({ length: 16 }, (_, i) => i),
          writer,
          { concurrency: "unbounded" }
        )
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.deepStrictEqual(
          history.map((e) => e.streamVersion),
          Array.from({ length: 1 + 16 * perFiber }, (_, i) => i + 1)
        )
        const written = history.flatMap((e) => (e.eventType === "organization.gst.added" ? [e.data.gstin] : []))
        assert.strictEqual(new Set(written).size, 16 * perFiber)
        // Every read-then-append that lost the race must have been told so.
        assert.isTrue(conflicts > 0, "the race produced no conflict, so the test did not race")
      })
    )

    it.effect("the same race with expectedVersion any lets stale writers through: the check is what stops them", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        yield* store.append([created(org, user)])
        const results = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, i) => i),
          (fiber) =>
            Effect.gen(function* () {
              const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
              yield* Effect.yieldNow
              const [appended] = yield* store.append([gst(org, user, `${fiber}`)])
              return appended!.streamVersion - history.length
            }),
          { concurrency: "unbounded" }
        )
        // A writer that read version n and stored at n + k > n + 1 wrote on top of events it never saw.
        assert.isTrue(results.some((gap) => gap > 1))
        const history = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.deepStrictEqual(
          history.map((e) => e.streamVersion),
          Array.from({ length: 17 }, (_, i) => i + 1)
        )
      })
    )

    it.effect("an append that spans streams is atomic: all of it is stored, or none of it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore
        const [a, b, user] = [uuid(), uuid(), uuid()]
        const streamOf = (id: string) =>
          Effect.map(store.getByAggregate(OrganizationEvents, "organization", id), (events) =>
            events.map((e) => [e.eventId, e.streamVersion])
          )
        const appended = yield* store.append([created(a, user), created(b, user), gst(a, user, "1")])
        assert.deepStrictEqual(
          appended.map((x) => [x.aggregateId, x.streamVersion]),
          [
            [a, 1],
            [b, 1],
            [a, 2]
          ]
        )
        // Every event of the batch is stored, where the append said.
        const before = { a: yield* streamOf(a), b: yield* streamOf(b) }
        assert.deepStrictEqual(before, {
          a: [
            [appended[0]!.eventId, 1],
            [appended[2]!.eventId, 2]
          ],
          b: [[appended[1]!.eventId, 1]]
        })

        const refused = yield* Effect.flip(store.append([gst(a, user, "2"), gst(b, user, "2")], { expectedVersion: 2 }))
        assert.deepStrictEqual(
          [refused._tag, "field" in refused ? refused.field : undefined],
          ["InvalidEvent", "expectedVersion"]
        )

        // Each failing batch is written by a user of its own, so that "none of it" is a count of that user's events.
        const [late, failing, conflicting] = [uuid(), uuid(), uuid()]
        const c = uuid()
        // An invalid event at the end of the batch refuses the events before it.
        const invalid = yield* Effect.flip(
          store.append([gst(a, late, "late-1"), created(c, late), { ...gst(b, late, "late-2"), aggregateId: "x" }])
        )
        assert.deepStrictEqual(
          [invalid._tag, "field" in invalid ? invalid.field : undefined],
          ["InvalidEvent", "aggregateId"]
        )

        // The database refuses the last event of a batch, after the others were sent with it: a trigger of this
        // test's, on this file's own table, that fails the insert of one marked event.
        const marker = uuid()
        const events = `${schema}.events`
        yield* sql.unsafe(`CREATE FUNCTION ${schema}.refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN RAISE EXCEPTION 'refused by the test: %', NEW.data->>'gstin'; END $$`)
        yield* sql.unsafe(`CREATE TRIGGER refuse_marked BEFORE INSERT ON ${events} FOR EACH ROW
          WHEN (NEW.data->>'gstin' = '${marker}') EXECUTE FUNCTION ${schema}.refuse_marked()`)
        const storage = yield* Effect.flip(
          store.append([gst(a, failing, "f-1"), created(c, failing), gst(b, failing, "f-2"), gst(a, failing, marker)])
        ).pipe(Effect.ensuring(sql.unsafe(`DROP TRIGGER refuse_marked ON ${events}`).pipe(Effect.orDie)))
        assert.strictEqual(storage._tag, "StorageError")
        assert.include(storage.message, `refused by the test: ${marker}`)

        // A stale expected version on a batch of one stream.
        const conflict = yield* Effect.flip(
          store.append([gst(a, conflicting, "c-1"), gst(a, conflicting, "c-2")], { expectedVersion: 1 })
        )
        assert.strictEqual(conflict._tag, "ConcurrencyConflict")

        // None of the failed batches left an event, and the streams' heads are where they were.
        for (const writer of [late, failing, conflicting]) assert.strictEqual(yield* store.count({ userId: writer }), 0)
        assert.deepStrictEqual({ a: yield* streamOf(a), b: yield* streamOf(b) }, before)
        assert.deepStrictEqual(yield* streamOf(c), [])
        const next = yield* store.append([gst(a, user, "3")], { expectedVersion: 2 })
        assert.strictEqual(next[0]!.streamVersion, 3)
        const fresh = yield* store.append([created(c, user)], { expectedVersion: "no_stream" })
        assert.strictEqual(fresh[0]!.streamVersion, 1)
      })
    )
  })

  describe("versions", () => {
    it.effect("v1 rows inserted by SQL read back as v2", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore
        const [org, user, eventId] = [uuid(), uuid(), uuid()]
        yield* sql`INSERT INTO ${sql(`${schema}.events`)}
          (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
          VALUES (${eventId}::uuid, 'organization.created', ${org}::uuid, 'organization', ${user}::uuid, now(), 1,
            ${JSON.stringify({ name: "Old Co", type: "firm", email: "old@co.test" })}::jsonb, 1)`
        const [event] = yield* store.getByAggregate(OrganizationEvents, "organization", org)
        assert.strictEqual(event!.eventType, "organization.created")
        if (event!.eventType !== "organization.created") return
        assert.deepStrictEqual(event!.data, { name: "Old Co", type: "firm", email: "old@co.test", country: "IN" })
        assert.strictEqual(event!.version, 2)
        const [raw] = yield* store.getByAggregate(EventRegistry.raw, "organization", org)
        assert.strictEqual(raw!.version, 1)
        assert.deepStrictEqual(raw!.data, { name: "Old Co", type: "firm", email: "old@co.test" })
      })
    )

    it.effect("a stored version or type that is not registered is a typed error naming it, unless read raw", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore
        const [org, user, v9, unknownType] = [uuid(), uuid(), uuid(), uuid()]
        yield* sql`INSERT INTO ${sql(`${schema}.events`)}
          (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
          VALUES (${v9}::uuid, 'organization.created', ${org}::uuid, 'organization', ${user}::uuid, now(), 9,
            '{}'::jsonb, 1)`
        const versionError = yield* Effect.flip(store.getByAggregate(OrganizationEvents, "organization", org))
        assert.strictEqual(versionError._tag, "UnknownEventVersion")
        if (versionError._tag === "UnknownEventVersion") {
          assert.deepStrictEqual([versionError.eventId, versionError.version], [v9, 9])
        }
        const other = uuid()
        yield* sql`INSERT INTO ${sql(`${schema}.events`)}
          (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
          VALUES (${unknownType}::uuid, 'organization.merged', ${other}::uuid, 'organization', ${user}::uuid, now(), 1,
            '{}'::jsonb, 1)`
        const typeError = yield* Effect.flip(store.getByAggregate(OrganizationEvents, "organization", other))
        assert.strictEqual(typeError._tag, "UnknownEventType")
        if (typeError._tag === "UnknownEventType") assert.strictEqual(typeError.eventType, "organization.merged")
        const raw = yield* store.getByAggregate(EventRegistry.raw, "organization", other)
        assert.strictEqual(raw[0]!.eventType, "organization.merged")
      })
    )

    it.effect("a stored payload that no longer fits its schema is an EventDecodeError", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        yield* sql`INSERT INTO ${sql(`${schema}.events`)}
          (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
          VALUES (${uuid()}::uuid, 'organization.created', ${org}::uuid, 'organization', ${user}::uuid, now(), 1,
            ${JSON.stringify({ name: "", type: "firm", email: "x" })}::jsonb, 1)`
        const error = yield* Effect.flip(store.getByAggregate(OrganizationEvents, "organization", org))
        assert.strictEqual(error._tag, "EventDecodeError")
      })
    )
  })

  describe("queries", () => {
    it.effect("filters combine and keyset pages cover every event exactly once, in both directions", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [alice, bob] = [uuid(), uuid()]
        const orgs = Array.from({ length: 7 }, () => uuid())
        for (const org of orgs) {
          yield* store.append([created(org, alice), gst(org, bob, `${org}-1`), gst(org, alice, `${org}-2`)])
        }
        const aliceGst = yield* store.getByType(OrganizationEvents, "organization.gst.added", { userId: alice })
        assert.strictEqual(aliceGst.events.length, 7)
        assert.isTrue(aliceGst.events.every((e) => e.userId === alice && e.eventType === "organization.gst.added"))

        const collect = (direction: "forward" | "backward") =>
          Effect.gen(function* () {
            const seen: Array<bigint> = []
            let cursor: string | undefined
            for (let pages = 0; pages < 100; pages++) {
              const page = yield* store.getByUser(OrganizationEvents, alice, {
                limit: 3,
                direction,
                ...(cursor === undefined ? {} : { cursor })
              })
              seen.push(...page.events.map((e) => e.globalPosition))
              if (Option.isNone(page.nextCursor)) break
              cursor = page.nextCursor.value
            }
            return seen
          })
        const forward = yield* collect("forward")
        const backward = yield* collect("backward")
        assert.strictEqual(forward.length, 14)
        assert.strictEqual(new Set(forward).size, 14)
        assert.deepStrictEqual(
          forward.toSorted((a, b) => (a < b ? -1 : 1)),
          forward
        )
        assert.deepStrictEqual(backward.toReversed(), forward)

        const streamed = yield* Stream.runCollect(store.stream(OrganizationEvents, { userId: alice }, { batchSize: 4 }))
        assert.deepStrictEqual(
          streamed.map((e) => e.globalPosition),
          forward
        )
        assert.strictEqual(yield* store.count({ userId: alice }), 14)
        assert.strictEqual(yield* store.count({ userId: alice, eventTypes: ["organization.created"] }), 7)
      })
    )

    it.effect("getByTimeRange is [from, to) on the event's timestamp", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [org, user] = [uuid(), uuid()]
        yield* store.append([
          { ...created(org, user), timestamp: at("2026-01-01T00:00:00Z") },
          { ...gst(org, user, "1"), timestamp: at("2026-01-02T00:00:00Z") },
          { ...gst(org, user, "2"), timestamp: at("2026-01-03T00:00:00Z") }
        ])
        const page = yield* store.getByTimeRange(
          OrganizationEvents,
          at("2026-01-01T00:00:00Z"),
          at("2026-01-03T00:00:00Z"),
          { aggregateId: org }
        )
        assert.deepStrictEqual(
          page.events.map((e) => DateTime.formatIso(e.timestamp)),
          ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"]
        )
      })
    )

    it.effect("bad query input is a typed error", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const user = uuid()
        const cursor = yield* Effect.flip(store.getByUser(OrganizationEvents, user, { cursor: "not-a-cursor" }))
        assert.strictEqual(cursor._tag, "InvalidCursor")
        const forged = yield* Effect.flip(
          store.getByUser(OrganizationEvents, user, { cursor: Buffer.from("annal.v1:-1").toString("base64url") })
        )
        assert.strictEqual(forged._tag, "InvalidCursor")
        const limit = yield* Effect.flip(store.getByUser(OrganizationEvents, user, { limit: 1_000_000_000 }))
        assert.strictEqual(limit._tag, "InvalidQuery")
        const id = yield* Effect.flip(store.getByUser(OrganizationEvents, "not-a-uuid"))
        assert.strictEqual(id._tag, "InvalidQuery")
        const range = yield* Effect.flip(
          store.getByTimeRange(
            OrganizationEvents,
            DateTime.makeUnsafe("2026-02-01T00:00:00Z"),
            DateTime.makeUnsafe("2026-01-01T00:00:00Z")
          )
        )
        assert.strictEqual(range._tag, "InvalidQuery")
      })
    )

    it.effect("filters the database cannot take are InvalidQuery naming the field, not a StorageError", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const feed = yield* Feed.Feed
        // PostgreSQL refuses NUL in text, and instants outside its timestamp range: before, both reached the server.
        const nul = yield* Effect.flip(store.query(OrganizationEvents, { correlationId: "a\u0000b" }))
        assert.deepStrictEqual([nul._tag, "field" in nul ? nul.field : undefined], ["InvalidQuery", "correlationId"])
        const feedNul = yield* Effect.flip(feed.read(OrganizationEvents, { correlationId: "a\u0000b" }))
        assert.deepStrictEqual(
          [feedNul._tag, "field" in feedNul ? feedNul.field : undefined],
          ["InvalidQuery", "correlationId"]
        )
        for (const [field, instant] of [
          ["from", "-271821-04-20T00:00:00Z"],
          ["from", "0000-06-01T00:00:00Z"],
          ["to", "+275760-09-13T00:00:00Z"],
          ["to", "+010000-01-01T00:00:00Z"]
        ] as const) {
          const error = yield* Effect.flip(store.query(OrganizationEvents, { [field]: DateTime.makeUnsafe(instant) }))
          assert.deepStrictEqual([error._tag, "field" in error ? error.field : undefined], ["InvalidQuery", field])
        }
        // The widest range accepted still reads.
        const wide = yield* store.query(OrganizationEvents, {
          from: DateTime.makeUnsafe("0001-01-01T00:00:00Z"),
          to: DateTime.makeUnsafe("9999-12-31T23:59:59.999Z")
        })
        assert.isArray(wide.events)
      })
    )
  })
})
