/**
 * A consumer in a process of its own, for the tests that kill one: it runs the transactional consumer `name` over
 * the events table in `schema` of the PostgreSQL at `url`, and records each event it handles in `schema.handled`
 * with its process id, slowly, so that it is killed in the middle of a batch.
 *
 * Usage: node consumerProcess.ts <url> <schema> <name>
 */
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as Consumer from "../../src/Consumer.ts"
import * as Consumers from "../../src/Consumers.ts"
import * as EventRegistry from "../../src/EventRegistry.ts"
import * as Feed from "../../src/Feed.ts"

const [url, schema, name] = process.argv.slice(2)
if (url === undefined || schema === undefined || name === undefined) {
  throw new Error("usage: consumerProcess.ts <url> <schema> <name>")
}

/** The consumer: it records every event it handles, with who handled it. */
const handledBy = (sql: SqlClient.SqlClient, table: string, handler: string) =>
  Consumer.make({
    name: name,
    registry: EventRegistry.raw,
    delivery: "transactional",
    batchSize: 5,
    pollInterval: "100 millis",
    // Long enough that a child starved of the CPU keeps its lease: the parent expires it in the database once the
    // child is dead, rather than waiting for it to run out.
    leaseDuration: "30 seconds",
    acquireInterval: "100 millis",
    handle: (batch) =>
      Effect.gen(function* () {
        for (const event of batch.events) {
          yield* sql`INSERT INTO ${sql(table)} (event_id, handler) VALUES (${event.eventId}::uuid, ${handler})`
          // Slow enough that a kill lands inside a batch's transaction.
          yield* Effect.sleep("10 millis")
        }
      })
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const consumers = yield* Consumers.Consumers
  yield* Effect.sync(() => process.stdout.write("started\n"))
  return yield* consumers.run(handledBy(sql, `${schema}.handled`, `child-${process.pid}`))
})

const layer = Consumers.layer.pipe(
  Layer.provideMerge(Feed.layer({ schema })),
  Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 }))
)

Effect.runFork(program.pipe(Effect.provide(layer), Effect.orDie))
