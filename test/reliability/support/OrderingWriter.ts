/**
 * A writer of the commit-order proof, run as a child process. It appends to a few streams that every writer shares,
 * in transactions that sleep at random inside, write a business row first or last, append to several streams at
 * once in a random interleaving, and roll back one time in ten. After each transaction ends it prints what it
 * wrote, in the order it appended it:
 *
 *   commit <event id>,<event id>,...
 *   rollback <event id>,...
 *   error <tag> <message>
 *   done
 *
 * Usage: ANNAL_WRITER_URL=... ANNAL_WRITER_SCHEMA=... ANNAL_WRITER_STREAMS=<id>,<id>,... ANNAL_WRITER_EVENTS=n
 *   node OrderingWriter.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventStore from "../../../packages/core/src/EventStore.ts"
import { businessTable, EntryAdded } from "./Ledger.ts"

class Rollback extends Schema.TaggedError<Rollback>()("Rollback", {}) {}

const settings = Config.all({
  url: Config.Redacted("ANNAL_WRITER_URL"),
  schema: Config.String("ANNAL_WRITER_SCHEMA"),
  streams: Config.String("ANNAL_WRITER_STREAMS"),
  events: Config.Int("ANNAL_WRITER_EVENTS"),
  writer: Config.Int("ANNAL_WRITER_INDEX"),
  maxSleepMillis: Config.Int("ANNAL_WRITER_MAX_SLEEP").pipe(Config.withDefault(6))
})

const sleepAtRandom = (max: number) =>
  Effect.flatMap(Random.nextIntBetween(0, max), (millis) => (millis === 0 ? Effect.void : Effect.sleep(millis)))

const program = Effect.gen(function* () {
  const { schema, streams: streamList, events: target, writer, maxSleepMillis } = yield* settings
  const streams = streamList.split(",")
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  const business = sql(businessTable(schema))
  let n = 0
  let committed = 0
  while (committed < target) {
    // 1 to 3 of the shared streams, 1 to 3 events each, interleaved at random.
    const chosen = (yield* Random.shuffle(streams)).slice(0, yield* Random.nextIntBetween(1, 3))
    const planned: Array<string> = []
    for (const stream of chosen) {
      for (let i = yield* Random.nextIntBetween(1, 3); i > 0; i--) planned.push(stream)
    }
    const order = yield* Random.shuffle(planned)
    const pending = order.map((stream) =>
      EntryAdded.make({ aggregateId: stream, userId: stream, data: { writer, n: n++ } })
    )
    const businessFirst = yield* Random.nextBoolean
    const rollback = (yield* Random.next) < 0.1
    // A second append, to a stream this transaction already holds, after the first.
    const extra = (yield* Random.nextBoolean)
      ? [EntryAdded.make({ aggregateId: order[0]!, userId: order[0]!, data: { writer, n: n++ } })]
      : []
    const ids: Array<string> = []
    const exit = yield* sql
      .withTransaction(
        Effect.gen(function* () {
          if (businessFirst) yield* sql`INSERT INTO ${business} (writer, n) VALUES (${writer}, ${n})`
          yield* sleepAtRandom(maxSleepMillis)
          ids.push(...(yield* store.append(pending)).map((event) => event.eventId))
          yield* sleepAtRandom(maxSleepMillis)
          if (extra.length > 0) ids.push(...(yield* store.append(extra)).map((event) => event.eventId))
          if (!businessFirst) yield* sql`INSERT INTO ${business} (writer, n) VALUES (${writer}, ${n})`
          yield* sleepAtRandom(maxSleepMillis)
          if (rollback) return yield* new Rollback()
        })
      )
      .pipe(Effect.exit)
    if (exit._tag === "Success") {
      committed += ids.length
      yield* Console.log(`commit ${ids.join(",")}`)
    } else if (rollback && ids.length === pending.length + extra.length) {
      yield* Console.log(`rollback ${ids.join(",")}`)
    } else {
      const error = exit.cause.toString().split("\n")[0] ?? ""
      yield* Console.log(`error ${error.replaceAll("\n", " ")}`)
      // What a failed transaction appended was rolled back with it.
      if (ids.length > 0) yield* Console.log(`rollback ${ids.join(",")}`)
    }
  }
  yield* Console.log("done")
})

const Live = Layer.unwrap(
  Effect.map(settings, ({ url, schema }) =>
    EventStore.layer({ schema }).pipe(
      Layer.provideMerge(
        PgFeedSignal.layerClient({ url, maxConnections: 2, applicationName: `annal-ordering-${schema}` })
      )
    )
  )
)

program.pipe(Effect.provide(Live), NodeRuntime.runMain)
