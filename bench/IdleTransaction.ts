/**
 * Delivery latency to a live reader while a psql session sits idle in a transaction that took an id, for 10 s: the
 * case where a server-wide fence (`pg_snapshot_xmin`) holds every reader back until the session ends, and a fence
 * that waits only for committing transactions holds nothing back.
 *
 * A fresh schema on the server `DATABASE_URL` names (the local `test` database by default), dropped at the end. A
 * `Feed.stream` follows the table; `psql` opens a transaction, takes an id and waits; a writer appends one event
 * per call at 20 events/s for 10 s and notes when each append returned; then psql ends. The latency of an event is
 * the time the reader received it less the time its append returned. Every event must arrive: one that does not
 * within 30 s of the end is reported.
 *
 * It uses only what the feed offered before the commit order too (`Feed.stream`, `EventStore.append`), so that the
 * same script measures the code before and after: `node bench/IdleTransaction.ts` in each checkout.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../packages/core/src/EventRegistry.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as Feed from "../packages/core/src/Feed.ts"
import * as Migrations from "../packages/core/src/Migrations.ts"
import { percentile } from "./Harness.ts"

const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = `annal_bench_idle_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
const application = `annal-idle-${schema}`
const rate = 20
const seconds = 10

const Ticked = EventDefinition.make("bench.ticked", {
  aggregateType: "bench",
  schema: Schema.Struct({ n: Schema.Number })
})

class NotYet extends Schema.TaggedError<NotYet>()("NotYet", {}) {}

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  const feed = yield* Feed.Feed
  const received = new Map<string, number>()
  yield* feed.stream(EventRegistry.raw).pipe(
    Stream.runForEach((entry) => Effect.sync(() => received.set(entry.event.eventId, performance.now()))),
    Effect.forkScoped
  )

  // The idle session: a transaction with an id, as `BEGIN; SELECT pg_current_xact_id();` typed into psql leaves it.
  const psql = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn("psql", [url, "-q", "-v", "ON_ERROR_STOP=1"], {
        stdio: ["pipe", "ignore", "inherit"],
        env: { ...process.env, PGAPPNAME: application }
      })
      child.stdin.write("BEGIN;\nSELECT pg_current_xact_id();\n")
      return child
    }),
    (child) => Effect.sync(() => child.kill())
  )
  yield* sql`SELECT 1 FROM pg_stat_activity WHERE application_name = ${application}
    AND state = 'idle in transaction' AND backend_xid IS NOT NULL`.pipe(
    Effect.flatMap((rows) => (rows.length === 1 ? Effect.void : Effect.fail(new NotYet()))),
    Effect.retry(Schedule.spaced("20 millis"))
  )

  const appended = new Map<string, number>()
  const stream = crypto.randomUUID()
  for (let n = 0; n < rate * seconds; n++) {
    const [event] = yield* store.append([Ticked.make({ aggregateId: stream, userId: stream, data: { n } })])
    appended.set(event!.eventId, performance.now())
    yield* Effect.sleep(1000 / rate)
  }
  psql.stdin.end()

  yield* Effect.suspend(() =>
    [...appended.keys()].every((id) => received.has(id)) ? Effect.void : Effect.fail(new NotYet())
  ).pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 600 }), Effect.ignore)
  const latencies = [...appended].flatMap(([id, at]) => {
    const got = received.get(id)
    return got === undefined ? [] : [got - at]
  })
  yield* Console.log(
    `idle transaction open for ${seconds} s, ${appended.size} events at ${rate}/s: ` +
      `${latencies.length} delivered, p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`
  )
})

const Live = Layer.mergeAll(Feed.layer({ schema }), EventStore.layer({ schema })).pipe(
  Layer.provideMerge(Migrations.layer({ schema })),
  Layer.provideMerge(
    Layer.effectDiscard(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE SCHEMA ${sql(schema)}`
        yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
      })
    )
  ),
  Layer.provideMerge(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 }))
)

program.pipe(Effect.scoped, Effect.provide(Live), NodeRuntime.runMain)
