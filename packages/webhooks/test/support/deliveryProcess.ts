/**
 * The webhook delivery in a process of its own, for the test that kills it: it runs every active subscription of
 * the events table in `schema` of the PostgreSQL at `url`, with loopback allowed, until it is killed.
 *
 * Usage: node deliveryProcess.ts <url> <schema>
 */
import { Consumers, EventEmitter, EventStore, Feed } from "@annal/core"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Webhooks from "../../src/Webhooks.ts"
import { testOptions } from "./Deliveries.ts"

const [url, schema] = process.argv.slice(2)
if (url === undefined || schema === undefined) throw new Error("usage: deliveryProcess.ts <url> <schema>")

const program = Effect.gen(function* () {
  const webhooks = yield* Webhooks.Webhooks
  return yield* webhooks.run
})

const layer = Webhooks.layer({
  ...testOptions,
  // Long enough that a child starved of the CPU keeps its lease: the parent expires it once the child is dead.
  leaseDuration: "30 seconds"
}).pipe(
  Layer.provideMerge(Layer.mergeAll(Consumers.layer, EventEmitter.layer)),
  Layer.provideMerge(Layer.mergeAll(Feed.layer({ schema }), EventStore.layer({ schema }))),
  Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 }))
)

Effect.runFork(program.pipe(Effect.provide(layer), Effect.orDie))
