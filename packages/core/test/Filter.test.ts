import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as EventRegistry from "../src/EventRegistry.ts"
import * as EventStore from "../src/EventStore.ts"
import * as Feed from "../src/Feed.ts"
import type * as Filter from "../src/Filter.ts"
import * as AuditService from "../src/AuditService.ts"
import * as Consumer from "../src/Consumer.ts"
import * as Integrity from "../src/Integrity.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const at = (iso: string) => DateTime.makeUnsafe(iso)

/** Filters no stored event can match, and the field each must be refused for. */
const refused: ReadonlyArray<readonly [Filter.Filter, string]> = [
  [{ eventTypes: [] }, "eventTypes"],
  [{ eventTypes: ["Not A Type"] }, "eventTypes"],
  [{ aggregateType: "a.b" }, "aggregateType"],
  [{ aggregateId: "not-a-uuid" }, "aggregateId"],
  [{ userId: "x" }, "userId"],
  [{ correlationId: "a\u0000b" }, "correlationId"],
  [{ from: at("2024-02-01T00:00:00Z"), to: at("2024-01-01T00:00:00Z") }, "from"],
  [{ to: DateTime.makeUnsafe(Date.parse("+010000-01-01T00:00:00Z")) }, "to"],
  // A field that is not one (the feed's old list of aggregate types): refused, not dropped to read every event.
  [{ aggregateTypes: ["organization"] } as Filter.Filter, "aggregateTypes"]
]

layer(FeedDatabase.layerWith(schema), { timeout: 60_000 })(`Filter (${TestDatabase.engine})`, (it) => {
  it.effect("one filter, one set of rules: the store, its count, the audit service and the feed refuse alike", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const audit = yield* AuditService.AuditService
      const feed = yield* Feed.Feed
      for (const [filter, field] of refused) {
        const errors = yield* Effect.all([
          Effect.flip(store.query(EventRegistry.raw, filter)),
          Effect.flip(store.count(filter)),
          Effect.flip(audit.getChangeCount(filter)),
          Effect.flip(feed.read(EventRegistry.raw, filter))
        ])
        assert.deepStrictEqual(
          errors.map((error) => [error._tag, "field" in error ? error.field : undefined]),
          Array.from({ length: 4 }, () => ["InvalidQuery", field]),
          JSON.stringify(filter)
        )
      }
    })
  )

  it.effect("the same filter selects the same events from the store and from the feed, time range included", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const feed = yield* Feed.Feed
      const start = yield* feed.head
      const [org, user] = [uuid(), uuid()]
      const times = ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z"]
      const appended = yield* store.append(
        times.map((time, index) =>
          GstAdded.make({
            aggregateId: index === 3 ? uuid() : org,
            userId: user,
            timestamp: at(time),
            data: { gstin: `${index}`, state: "KA" }
          })
        )
      )
      const ids = appended.map((event) => event.eventId)
      const cases: ReadonlyArray<readonly [Filter.Filter, ReadonlyArray<string>]> = [
        [{ from: at(times[1]!), to: at(times[3]!) }, [ids[1]!, ids[2]!]],
        [{ aggregateId: org.toUpperCase(), to: at(times[2]!) }, [ids[0]!, ids[1]!]],
        [{ userId: user, aggregateType: "organization", from: at(times[3]!) }, [ids[3]!]],
        [{ userId: user, eventTypes: ["organization.created"] }, []]
      ]
      for (const [filter, expected] of cases) {
        const fromStore = yield* store.query(EventRegistry.raw, { ...filter, userId: filter.userId ?? user })
        const fromFeed = yield* feed.read(EventRegistry.raw, { ...filter, userId: filter.userId ?? user, after: start })
        const counted = yield* store.count({ ...filter, userId: filter.userId ?? user })
        assert.deepStrictEqual(
          fromStore.events.map((event) => event.eventId),
          expected,
          `store: ${JSON.stringify(filter)}`
        )
        assert.deepStrictEqual(
          fromFeed.events.map((event) => event.eventId),
          expected,
          `feed: ${JSON.stringify(filter)}`
        )
        assert.strictEqual(counted, expected.length)
      }
    })
  )

  it.effect("a consumer with an option that is not one is a defect at once; asOf and aggregate types are checked", () =>
    Effect.gen(function* () {
      assert.throws(
        () =>
          Consumer.make({
            name: "typo",
            registry: EventRegistry.raw,
            handle: () => Effect.void,
            aggregateTypes: ["organization"]
          } as Parameters<typeof Consumer.make>[0]),
        /aggregateTypes is not an option/
      )
      const audit = yield* AuditService.AuditService
      const [org, user] = [uuid(), uuid()]
      yield* (yield* EventStore.EventStore).append([
        GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } })
      ])
      const late = DateTime.makeUnsafe(Date.parse("+010000-01-01T00:00:00Z"))
      const refusedAsOf = yield* Effect.flip(
        audit.getEntityHistory(EventRegistry.raw, "organization", org, { asOf: late })
      )
      assert.deepStrictEqual([refusedAsOf._tag, "field" in refusedAsOf && refusedAsOf.field], ["InvalidQuery", "asOf"])
      // The last instant an event may carry is a valid asOf, which takes the whole history.
      const last = DateTime.makeUnsafe("9999-12-31T23:59:59.999Z")
      const all = yield* audit.getEntityHistory(EventRegistry.raw, "organization", org, { asOf: last })
      assert.strictEqual(all.events.length, 1)

      const integrity = yield* Integrity.make({ schema })
      const typo = yield* Effect.flip(integrity.verifyAggregate("Organization", org))
      assert.deepStrictEqual([typo._tag, "field" in typo && typo.field], ["InvalidQuery", "aggregateType"])
      assert.isTrue((yield* integrity.verifyAggregate("organization", org)).verified)
    })
  )
})
