/**
 * An event id is the identity of one event: appending the same event again is an idempotent duplicate, and
 * anything else under a stored id is refused, naming the id and the stream of the stored event, with nothing of the
 * append written. Before migration 6 the second append of an id to another stream was acknowledged as a duplicate
 * while nothing of it was stored.
 */
import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { EventStore } from "../src/EventStore.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()

const gst = (aggregateId: string, userId: string, gstin: string, eventId?: string) =>
  GstAdded.make({
    aggregateId,
    userId,
    data: { gstin, state: "KA" },
    metadata: { correlationId: "identity" },
    ...(eventId === undefined ? {} : { eventId })
  })

const storedCount = (ids: ReadonlyArray<string>) =>
  SqlClient.SqlClient.use((sql) =>
    sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.events`)}
      WHERE id IN ${sql.in(ids)}`.pipe(Effect.map((rows) => rows[0]!.n))
  )

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(
  `event identity (${TestDatabase.engine})`,
  (it) => {
    it.effect("the same event again is a duplicate, even with another timestamp, and is stored once", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [stream, user, id] = [uuid(), uuid(), uuid()]
        const [first] = yield* store.append([gst(stream, user, "1", id)])
        const later = DateTime.makeUnsafe("2031-01-01T00:00:00Z")
        const [again] = yield* store.append([{ ...gst(stream, user, "1", id), timestamp: later }], {
          expectedVersion: "no_stream"
        })
        assert.isTrue(again!.duplicate)
        assert.strictEqual(again!.globalPosition, first!.globalPosition)
        assert.strictEqual(yield* storedCount([id]), 1)
      })
    )

    it.effect("an id reused in another stream is refused, naming the stored event's stream; nothing is written", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [stream, other, user, id] = [uuid(), uuid(), uuid(), uuid()]
        yield* store.append([gst(stream, user, "1", id)])
        const fresh = uuid()
        const refused = yield* Effect.flip(store.append([gst(other, user, "2", fresh), gst(other, user, "1", id)]))
        assert.strictEqual(refused._tag, "EventIdConflict")
        if (refused._tag !== "EventIdConflict") return
        assert.deepStrictEqual(
          [refused.eventId, refused.aggregateType, refused.aggregateId],
          [id, "organization", stream]
        )
        assert.strictEqual(yield* storedCount([fresh]), 0, "the new event of the refused append was not written")
      })
    )

    it.effect("an id reused for other data, metadata or user is refused", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const [stream, user, id] = [uuid(), uuid(), uuid()]
        yield* store.append([gst(stream, user, "1", id)])
        for (const variant of [
          gst(stream, user, "changed", id),
          { ...gst(stream, user, "1", id), metadata: { correlationId: "another" } },
          gst(stream, uuid(), "1", id)
        ]) {
          const refused = yield* Effect.flip(store.append([variant]))
          assert.strictEqual(refused._tag, "EventIdConflict")
        }
        assert.strictEqual(yield* storedCount([id]), 1)
      })
    )

    it.effect("a timestamp outside the years 0001 to 9999 is an InvalidEvent, not a storage failure", () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        for (const iso of ["+010000-01-01T00:00:00Z", "0000-12-31T23:59:59Z"]) {
          const refused = yield* Effect.flip(
            store.append([{ ...gst(uuid(), uuid(), "1"), timestamp: DateTime.makeUnsafe(iso) }])
          )
          assert.strictEqual(refused._tag, "InvalidEvent")
          if (refused._tag === "InvalidEvent") assert.strictEqual(refused.field, "timestamp")
        }
      })
    )
  }
)
