/**
 * `node --cpu-prof --conditions=@annal/source bench/profileReads.ts [feed|stream|aggregate|hand-rest|explain] [events]`: one read path
 * alone over a fresh table, for a CPU profile of it without the load or the other sections in it. `hand-rest` is the
 * feed's in-commit page statement written by hand, `explain` its plan.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../packages/core/src/EventRegistry.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as Feed from "../packages/core/src/Feed.ts"
import * as Migrations from "../packages/core/src/Migrations.ts"
import { dropSchemaAtEnd } from "./Harness.ts"

const [which = "feed", eventsText = "100000"] = process.argv.slice(2)
const events = Number(eventsText)
const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = `annal_prof_${Date.now().toString(36)}`
const table = `${schema}.events`

const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String })
})
const Events = EventRegistry.make(GstAdded)

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  const feed = yield* Feed.Feed
  // 100 events per aggregate, so that a stream of 100 exists for `aggregate`.
  yield* sql`INSERT INTO ${sql(table)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version,
    data, metadata, stream_version)
    SELECT gen_random_uuid(), 'organization.gst.added', md5('a' || (i / 100))::uuid, 'organization',
      md5('u' || (i % 1000))::uuid, now(), 1, jsonb_build_object('gstin', i::text, 'state', 'KA'), '{}'::jsonb,
      i % 100 + 1
    FROM generate_series(0::bigint, ${events - 1}::bigint) AS i`
  yield* sql.unsafe(`VACUUM ANALYZE ${table}`)
  const [first] = yield* sql<{ readonly id: string }>`SELECT md5('a0')::uuid::text AS id`
  const handRest = Effect.gen(function* () {
    let after = "0"
    for (;;) {
      const page = yield* sql<{
        readonly global_position: string
      }>`SELECT e.id, e.event_type, e.aggregate_id, e.aggregate_type, e.user_id, e."timestamp", e.version, e.data, e.metadata,
  e.stream_version, e.global_position::text AS global_position, e.transaction_id::text AS transaction_id,
  e.recorded_at FROM ${sql(table)} e
WHERE e.transaction_id = (SELECT c.transaction_id FROM ${sql(`${table}_commits`)} c
        WHERE c.commit_sequence = ${"1"}::bigint) AND e.global_position > ${after}::bigint ORDER BY e.global_position LIMIT ${1000}`
        .withoutTransform
      if (page.length === 0) break
      after = page.at(-1)!.global_position
    }
  })
  const read: Effect.Effect<unknown, unknown> =
    which === "feed"
      ? Stream.runDrain(feed.stream(Events, { live: false, limit: 1000 }))
      : which === "hand-rest"
        ? handRest
        : which === "stream"
          ? Stream.runDrain(store.stream(Events, {}, { batchSize: 1000 }))
          : Effect.repeat(store.getByAggregate(Events, "organization", first!.id), { times: events / 100 - 1 })
  for (let round = 0; round < 5; round++) {
    const start = performance.now()
    const cpu = process.cpuUsage()
    yield* read
    const used = process.cpuUsage(cpu)
    const seconds = (performance.now() - start) / 1000
    yield* Effect.log(
      `${which}: ${Math.round(events / seconds).toLocaleString("en-US")} events/s, client CPU ${((used.user + used.system) / 1000).toFixed(0)} ms of ${(seconds * 1000).toFixed(0)} ms`
    )
  }
})

const Sql = PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 4 })
const Annal = Feed.layer({ schema }).pipe(
  Layer.provideMerge(EventStore.layer({ schema })),
  Layer.provideMerge(Migrations.layer({ schema })),
  Layer.provideMerge(dropSchemaAtEnd(schema)),
  Layer.provideMerge(Sql)
)

program.pipe(Effect.provide(Annal), NodeRuntime.runMain)
