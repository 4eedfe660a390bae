/**
 * The relay in a process of its own, for the test that kills it: it relays the events table in `schema` of the
 * PostgreSQL at `url` to the JetStream `stream`, under `prefix`, as the consumer `name`.
 *
 * Usage: node relayProcess.ts <url> <schema> <stream> <prefix> <name>
 */
import { Consumers, EventRegistry, Feed } from "@annal/core"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as JetStreamRelay from "../../src/JetStreamRelay.ts"
import * as Nats from "../../src/Nats.ts"

const [url, schema, stream, prefix, name] = process.argv.slice(2)
if (url === undefined || schema === undefined || stream === undefined || prefix === undefined || name === undefined) {
  throw new Error("usage: relayProcess.ts <url> <schema> <stream> <prefix> <name>")
}

const program = Effect.gen(function* () {
  const consumers = yield* Consumers.Consumers
  const relay = yield* JetStreamRelay.make({
    name,
    registry: EventRegistry.raw,
    stream,
    subjectPrefix: prefix,
    batchSize: 7,
    pollInterval: "100 millis",
    // Long enough that a child starved of the CPU keeps its lease: the parent expires it once the child is dead.
    leaseDuration: "30 seconds",
    acquireInterval: "100 millis"
  })
  yield* Effect.sync(() => process.stdout.write("started\n"))
  return yield* consumers.run(relay)
})

const layer = Layer.mergeAll(
  Consumers.layer.pipe(
    Layer.provideMerge(Feed.layer({ schema })),
    Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 }))
  ),
  Nats.layer({ servers: process.env["NATS_URL"] ?? "127.0.0.1:4222" })
)

Effect.runFork(program.pipe(Effect.provide(layer), Effect.orDie))
