/**
 * The writer of the process-killed test, run as a child process (Node strips the types) until the test SIGKILLs it.
 * It records orders forever: each order is a business row and one event per line, 1 to 5 of them. It prints
 * `emitting <id>` just before it emits an order's events and `ack <id>` once the order is acknowledged to it, so the
 * test can kill it at random points of `emitMany` and knows what it was told.
 *
 * `ANNAL_WRITER_MODE` picks the writer:
 * - `transaction`, the real one: the business row and `emitMany` in one `sql.withTransaction`, acknowledged after
 *   the commit, the business write first or last at random;
 * - `outside`, broken: the business row committed on its own, then each event emitted on its own;
 * - `early-ack`, broken: acknowledged as soon as its business row is written, before the events and the commit.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventContext from "../../../packages/core/src/EventContext.ts"
import * as EventEmitter from "../../../packages/core/src/EventEmitter.ts"
import * as EventStore from "../../../packages/core/src/EventStore.ts"
import { Mode, OrderLineAdded, ordersTable } from "./Orders.ts"

const settings = Config.all({
  url: Config.Redacted("ANNAL_WRITER_URL"),
  schema: Config.String("ANNAL_WRITER_SCHEMA"),
  mode: Config.schema(Mode, "ANNAL_WRITER_MODE"),
  // The test waits until the server has no session left under this name before it checks the tables.
  applicationName: Config.String("ANNAL_WRITER_APPLICATION")
})

const program = Effect.gen(function* () {
  const { schema, mode } = yield* settings
  const sql = yield* SqlClient.SqlClient
  const emitter = yield* EventEmitter.EventEmitter
  const orders = sql(ordersTable(schema))
  while (true) {
    const orderId = crypto.randomUUID()
    const lines = yield* Random.nextIntBetween(1, 5)
    const events = Array.from({ length: lines }, (_, line) =>
      OrderLineAdded.make({ aggregateId: orderId, data: { line, lines } })
    )
    const business = sql`INSERT INTO ${orders} (id, lines) VALUES (${orderId}::uuid, ${lines})`
    const emitting = Console.log(`emitting ${orderId}`)
    const acknowledge = Console.log(`ack ${orderId}`)
    switch (mode) {
      case "transaction": {
        const emit = Effect.andThen(emitting, emitter.emitMany(events))
        const businessFirst = yield* Random.nextBoolean
        yield* sql.withTransaction(
          businessFirst ? Effect.andThen(business, Effect.asVoid(emit)) : Effect.andThen(emit, Effect.asVoid(business))
        )
        yield* acknowledge
        break
      }
      case "outside": {
        yield* business
        yield* emitting
        yield* Effect.forEach(events, (event) => emitter.emit(event), { discard: true })
        yield* acknowledge
        break
      }
      case "early-ack": {
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* business
            yield* acknowledge
            yield* emitting
            yield* emitter.emitMany(events)
          })
        )
        break
      }
    }
  }
}).pipe(EventContext.provide({ userId: "8d7c2b1e-4f3a-4e5d-9c8b-7a6f5e4d3c2b" }))

const layer = Layer.unwrap(
  Effect.map(settings, ({ url, schema, applicationName }) =>
    EventEmitter.layer.pipe(
      Layer.provideMerge(EventStore.layer({ schema })),
      Layer.provideMerge(PgFeedSignal.layerClient({ url, applicationName, maxConnections: 1 }))
    )
  )
)

program.pipe(Effect.provide(layer), NodeRuntime.runMain)
