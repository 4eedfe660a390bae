/**
 * Streams every event of a bench table through `EventStore.stream` in a process of its own, and prints the peak
 * resident set size seen while doing it (sampled every 10 ms), so that the figure is the stream's and not the
 * rest of the benchmark's; also the resident size before streaming and the heap left after it (run with
 * `--expose-gc`, so that both are measured after a full collection). Run by `bench/run.ts` with `ANNAL_BENCH_SCHEMA` naming the table's schema.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../packages/core/src/EventRegistry.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"

const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String })
})
const Events = EventRegistry.make(GstAdded)

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  // What the process holds before streaming, once connected: Node, the TypeScript it loaded, Effect, the driver.
  yield* Stream.runDrain(store.stream(Events, {}, { batchSize: 1 }).pipe(Stream.take(1)))
  globalThis.gc?.()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 10)
  const count = yield* Stream.runFold(
    store.stream(Events, {}, { batchSize: 1000 }),
    () => 0,
    (n) => n + 1
  )
  clearInterval(timer)
  peak = Math.max(peak, process.memoryUsage().rss)
  // What streaming left behind: the heap after a full collection, which would grow with the events if any were kept.
  globalThis.gc?.()
  const { heapUsed } = process.memoryUsage()
  console.log(JSON.stringify({ events: count, peakRss: peak, baselineRss: baseline, heapUsedAfter: heapUsed }))
})

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
program.pipe(
  Effect.provide(
    EventStore.layer({ schema: process.env["ANNAL_BENCH_SCHEMA"] ?? "public" }).pipe(
      Layer.provide(PgFeedSignal.layerClient({ url: Redacted.make(url) }))
    )
  ),
  NodeRuntime.runMain
)
