/**
 * The feed under concurrent writers: 8 writers commit batches of events after a random delay, a tenth of them roll
 * back, while 3 consumers follow the feed and a naive reader follows `global_position > last`. Every consumer must
 * see every committed event once, in the same order; the naive reader is there to show the failure the feed's
 * order prevents. On PGlite the transactions are serialized, so the naive reader cannot skip there, and the test
 * checks that it does not: the engines differ in this, and the difference is PGlite's single session.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as Feed from "../src/Feed.ts"
import { uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const postgres = TestDatabase.engine === "postgres"

/** 20k events on PostgreSQL; PGlite runs the writers one after the other, so it gets fewer. */
const target = postgres ? 20_000 : 2_000
const writers = 8
const maxDelayMillis = postgres ? 8 : 1

class Rollback extends Schema.TaggedError<Rollback>()("Rollback", {}) {}

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(
  `Feed under load (${TestDatabase.engine})`,
  (it) => {
    it.effect(
      `${target} events from ${writers} writers with late commits and rollbacks: consumers skip none, double none`,
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const store = yield* EventStore
          const consumers = yield* Consumers.Consumers
          const seenTable = `${schema}.seen`
          yield* sql`CREATE TABLE ${sql(seenTable)} (seq bigserial PRIMARY KEY, consumer text NOT NULL, event_id uuid NOT NULL)`

          // Writers: each transaction appends 1 to 12 events, waits, then commits or (one in ten) rolls back.
          const committed: Array<string> = []
          let rolledBack = 0
          const writer = Effect.gen(function* () {
            while (committed.length < target) {
              const count = yield* Random.nextIntBetween(1, 12)
              const delay = yield* Random.nextIntBetween(0, maxDelayMillis)
              const rollback = (yield* Random.next) < 0.1
              const org = uuid()
              const appended = yield* sql
                .withTransaction(
                  Effect.gen(function* () {
                    const appended = yield* store.append(
                      Array.from({ length: count }, (_, i) => FeedDatabase.gst(org, String(i)))
                    )
                    yield* Effect.sleep(delay)
                    if (rollback) return yield* new Rollback()
                    return appended
                  })
                )
                .pipe(Effect.catchTag("Rollback", () => Effect.sync(() => (rolledBack++, []))))
              committed.push(...appended.map((event) => event.eventId))
            }
          })

          // Consumers: two transactional ones that record in a table, with different batch sizes, and one
          // at-least-once one that records in memory.
          const record = (consumer: string) => (batch: Feed.Batch<{ readonly eventId: string }>) =>
            sql`INSERT INTO ${sql(seenTable)} (consumer, event_id)
            SELECT ${consumer}, value::uuid FROM jsonb_array_elements_text(${JSON.stringify(
              batch.events.map((event) => event.eventId)
            )}::jsonb) WITH ORDINALITY ORDER BY ordinality`
          const inMemory: Array<string> = []
          const settings = { registry: EventRegistry.raw, pollInterval: "50 millis" } as const
          const followers = [
            Consumer.make({
              ...settings,
              name: "large",
              delivery: "transactional",
              batchSize: 200,
              handle: record("large")
            }),
            Consumer.make({
              ...settings,
              name: "small",
              delivery: "transactional",
              batchSize: 37,
              handle: record("small")
            }),
            Consumer.make({
              ...settings,
              name: "memory",
              batchSize: 100,
              handle: (batch) => Effect.sync(() => inMemory.push(...batch.events.map((event) => event.eventId)))
            })
          ]
          const running = yield* Effect.forEach(followers, (consumer) => Effect.forkChild(consumers.run(consumer)))

          // The naive reader: resumes after the largest global position it has seen.
          const naive: Array<string> = []
          let last = "0"
          const naiveRead = Effect.gen(function* () {
            const rows = yield* sql<{ readonly id: string; readonly position: string }>`SELECT id,
            global_position::text AS position FROM ${sql(`${schema}.events`)}
            WHERE global_position > ${last}::bigint ORDER BY global_position LIMIT 500`
            naive.push(...rows.map((row) => row.id))
            last = rows.at(-1)?.position ?? last
            return rows.length
          })
          const naiveReader = yield* Effect.forkChild(
            Effect.forever(Effect.andThen(naiveRead, Effect.sleep("5 millis")))
          )

          yield* Effect.all(
            Array.from({ length: writers }, () => writer),
            { concurrency: "unbounded" }
          )
          const final = yield* FeedDatabase.lastCommitted(schema)
          yield* Effect.forEach(followers, (consumer) =>
            Effect.gen(function* () {
              const lag = yield* consumers.lag
              return lag.find((row) => row.name === consumer.name)
            }).pipe(
              Effect.repeat({
                schedule: Schedule.spaced("50 millis"),
                until: (lag) => lag !== undefined && Checkpoint.compare(lag.checkpoint, final) >= 0
              })
            )
          )
          yield* Effect.forEach(running, Fiber.interrupt)
          yield* Fiber.interrupt(naiveReader)
          // The naive reader's last look, after every writer is done: what it skipped, it skipped for good.
          while ((yield* naiveRead) > 0) {}

          const inFeedOrder = (yield* FeedDatabase.committed(schema)).map((event) => event.eventId)
          assert.isAtLeast(committed.length, target)
          assert.isAbove(rolledBack, 0)
          assert.deepStrictEqual(
            inFeedOrder.toSorted(),
            committed.toSorted(),
            "the table holds exactly the committed events"
          )
          const seenBy = (consumer: string) =>
            Effect.map(
              sql<{ readonly event_id: string }>`SELECT event_id FROM ${sql(seenTable)}
              WHERE consumer = ${consumer} ORDER BY seq`,
              (rows) => rows.map((row) => row.event_id)
            )
          for (const [name, seen] of [
            ["large", yield* seenBy("large")],
            ["small", yield* seenBy("small")],
            ["memory", inMemory]
          ] as const) {
            assert.strictEqual(new Set(seen).size, seen.length, `${name}: no event twice`)
            const seenSet = new Set(seen)
            assert.strictEqual(inFeedOrder.filter((id) => !seenSet.has(id)).length, 0, `${name}: no event skipped`)
            assert.deepStrictEqual(seen, inFeedOrder, `${name}: in feed order`)
          }

          const naiveSeen = new Set(naive)
          const skipped = inFeedOrder.filter((id) => !naiveSeen.has(id)).length
          yield* Effect.logInfo(
            `feed under load: ${committed.length} events committed, ${rolledBack} transactions rolled back; ` +
              `the naive reader skipped ${skipped}`
          )
          if (postgres) assert.isAbove(skipped, 0, "the naive reader skips events whose transaction committed late")
          else
            assert.strictEqual(skipped, 0, "on PGlite transactions never overlap, so even the naive reader skips none")
        }),
      180_000
    )
  }
)
