/**
 * What the webhook tests share: the service's settings for tests (loopback allowed, retries in milliseconds), events
 * to deliver, their feed order, and a wait for what a receiver has seen.
 */
import { EventContext, EventRegistry, EventStore } from "@annal/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { uuid } from "../../../core/test/support/Fixtures.ts"
import * as FeedDatabase from "../../../core/test/support/FeedDatabase.ts"
import * as TestDatabase from "../../../core/test/support/TestDatabase.ts"
import * as Webhooks from "../../src/Webhooks.ts"

/** The settings of the tests: loopback allowed, retries in milliseconds. */
export const testOptions = {
  registry: EventRegistry.raw,
  allow: ["127.0.0.0/8"],
  baseDelay: "5 millis",
  maxDelay: "50 millis",
  refreshInterval: "50 millis",
  pollInterval: "100 millis",
  timeout: "30 seconds"
} as const

/** Waits until `check` holds, looking every 20 ms. */
export const until = (check: () => boolean) =>
  Effect.sync(check).pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (done) => done }))

/** The ids of the events of `aggregateIds`, in feed order. */
export const feedOrder = (schema: string, aggregateIds: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly id: string }>`SELECT e.id::text AS id
      FROM ${sql(`${schema}.events_commits`)} c JOIN ${sql(`${schema}.events`)} e ON e.transaction_id = c.transaction_id
      WHERE e.aggregate_id IN ${sql.in(aggregateIds)}
      ORDER BY c.commit_sequence, e.global_position`
    return rows.map((row) => row.id)
  })

/** Appends `count` events to new organizations, one to three per transaction; returns the organizations' ids. */
export const appendSome = (count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const ids: Array<string> = []
    let left = count
    while (left > 0) {
      const id = uuid()
      ids.push(id)
      const size = Math.min(left, 1 + Math.floor(Math.random() * 3))
      const events = [FeedDatabase.created(id, `Org ${left}`), FeedDatabase.gst(id, "29A"), FeedDatabase.gst(id, "29B")]
      yield* store.append(events.slice(0, size))
      left -= size
    }
    return ids
  })

/** Runs a test over an events table of its own, with the webhooks service over it. */
export const withDatabase = <A, E, R>(test: (schema: string) => Effect.Effect<A, E, R>) => {
  const schema = TestDatabase.uniqueSchema()
  return Effect.scoped(test(schema)).pipe(
    (effect) => EventContext.provide(effect, { userId: uuid() }),
    Effect.provide(Webhooks.layer(testOptions).pipe(Layer.provideMerge(FeedDatabase.layerWith(schema))))
  )
}
