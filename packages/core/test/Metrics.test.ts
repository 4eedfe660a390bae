import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as SqlClient from "effect/sql/SqlClient"
import * as Digest from "../src/Digest.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Metrics from "../src/Metrics.ts"
import { signingKey } from "./support/Chains.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import { GstAdded, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()

const services = Layer.mergeAll(Metrics.layerSampler, Digest.layer({ schema }).pipe(Layer.provide(signingKey))).pipe(
  Layer.provideMerge(FeedDatabase.layerWith(schema)),
  Layer.orDie
)

const count = (metric: Metric.Counter<number>, attributes?: Metric.Metric.Attributes) =>
  Effect.map(Metric.value(attributes === undefined ? metric : Metric.withAttributes(metric, attributes)), (state) =>
    Number(state.count)
  )

const gauge = (metric: Metric.Gauge<number>, attributes?: Metric.Metric.Attributes) =>
  Effect.map(Metric.value(attributes === undefined ? metric : Metric.withAttributes(metric, attributes)), (state) =>
    Number(state.value)
  )

/** Whether the registry holds a series of `id` yet: a gauge nothing has set is not exported at all. */
const registered = (id: string) => Effect.map(Metric.snapshot, (all) => all.some((one) => one.id === id))

const gstEvent = (aggregateId: string, gstin: string, eventId?: string) =>
  GstAdded.make({
    aggregateId,
    userId: uuid(),
    data: { gstin, state: "KA" },
    ...(eventId === undefined ? {} : { eventId })
  })

layer(services)("Metrics", (it) => {
  it.effect(
    "an append counts once, with its latency and its events by type; a duplicate writes and counts nothing",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const appends = yield* count(Metrics.appends)
        const timed = (yield* Metric.value(Metrics.appendDuration)).count
        const created = yield* count(Metrics.eventsAppended, { event_type: "organization.created" })
        const gst = yield* count(Metrics.eventsAppended, { event_type: "organization.gst.added" })

        const aggregateId = uuid()
        const events = [
          { ...FeedDatabase.created(aggregateId), eventId: uuid() },
          gstEvent(aggregateId, "29A", uuid()),
          gstEvent(aggregateId, "29B", uuid())
        ]
        yield* store.append(events)
        assert.strictEqual((yield* count(Metrics.appends)) - appends, 1)
        assert.strictEqual((yield* Metric.value(Metrics.appendDuration)).count - timed, 1)
        assert.strictEqual((yield* count(Metrics.eventsAppended, { event_type: "organization.created" })) - created, 1)
        assert.strictEqual((yield* count(Metrics.eventsAppended, { event_type: "organization.gst.added" })) - gst, 2)

        // The same events again: stored already, so the append succeeds and writes nothing.
        const again = yield* store.append(events)
        assert.isTrue(again.every((one) => one.duplicate))
        assert.strictEqual((yield* count(Metrics.eventsAppended, { event_type: "organization.gst.added" })) - gst, 2)
      })
  )

  it.effect("conflicts are counted by kind: the stream moved, the event id is another event's", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const version = yield* count(Metrics.conflicts, { kind: "version" })
      const eventId = yield* count(Metrics.conflicts, { kind: "event_id" })
      const appends = yield* count(Metrics.appends)

      const aggregateId = uuid()
      const [first] = yield* store.append([FeedDatabase.created(aggregateId)], { expectedVersion: "no_stream" })
      const moved = yield* Effect.flip(store.append([gstEvent(aggregateId, "29A")], { expectedVersion: "no_stream" }))
      assert.strictEqual(moved._tag, "ConcurrencyConflict")
      const taken = yield* Effect.flip(store.append([gstEvent(uuid(), "29B", first!.eventId)]))
      assert.strictEqual(taken._tag, "EventIdConflict")

      assert.strictEqual((yield* count(Metrics.conflicts, { kind: "version" })) - version, 1)
      assert.strictEqual((yield* count(Metrics.conflicts, { kind: "event_id" })) - eventId, 1)
      // Only the append that stored its event counts as one.
      assert.strictEqual((yield* count(Metrics.appends)) - appends, 1)
    })
  )

  it.effect("the database's gauges change when sampled, and only then: consumer lag, fence, last digest", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const store = yield* EventStore
      const sampler = yield* Metrics.Sampler
      const digests = yield* Digest.Digest
      const name = `metrics-${uuid()}`
      // A consumer that has processed nothing: every committed event is behind it.
      yield* sql`INSERT INTO ${sql(`${schema}.events_consumers`)} (name) VALUES (${name})`
      yield* FeedDatabase.appendMany(3)
      yield* sampler.sample
      const behind = yield* gauge(Metrics.consumerLagEvents, { consumer: name })
      const total = (yield* FeedDatabase.committed(schema)).length
      assert.strictEqual(behind, total)
      assert.isAtLeast(yield* gauge(Metrics.consumerLagAge, { consumer: name }), 0)
      assert.strictEqual(yield* gauge(Metrics.fencePending), 0)
      assert.strictEqual(yield* gauge(Metrics.fenceAge), 0)

      // Appended, but not sampled: the gauge still says what the last sample read.
      yield* store.append([FeedDatabase.created()])
      assert.strictEqual(yield* gauge(Metrics.consumerLagEvents, { consumer: name }), behind)
      yield* sampler.sample
      assert.strictEqual(yield* gauge(Metrics.consumerLagEvents, { consumer: name }), behind + 1)

      // No digest yet: no series, rather than an age that means nothing.
      assert.isFalse(yield* registered("annal_digest_age_seconds"))
      yield* FeedDatabase.readable
      yield* digests.create()
      yield* sampler.sample
      assert.isTrue(yield* registered("annal_digest_age_seconds"))
      const age = yield* gauge(Metrics.digestAge)
      assert.isAtLeast(age, 0)
      assert.isBelow(age, 3600)
    })
  )
})

describe("Metrics.conflictKind", () => {
  it("names only conflicts", () => {
    assert.strictEqual(Metrics.conflictKind(new Error("boom")), undefined)
  })
})
