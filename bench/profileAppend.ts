/**
 * `node --cpu-prof --conditions=@annal/source bench/profileAppend.ts [hand|append|hand-tx|emit-tx|many] [ops] [callers]`:
 * one write path of the append and audit sections alone, over a fresh table, printing throughput and the client's
 * CPU per operation (which the shared machine disturbs much less than wall time), for a CPU profile of it without the
 * other contenders in it. `hand` and `hand-tx` are the hand-written baselines of `bench/run.ts`; `many` is
 * `emitMany` of 1,000 events, a new stream each call, as in the batches section (an op is one event).
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventEmitter from "../packages/core/src/EventEmitter.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as Migrations from "../packages/core/src/Migrations.ts"
import { dropSchemaAtEnd, parallel } from "./Harness.ts"
import * as Workload from "./Workload.ts"

const [which = "append", opsText = "5000", callersText = "1"] = process.argv.slice(2)
const ops = Number(opsText)
const callers = Number(callersText)
const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const schema = `annal_prof_${Date.now().toString(36)}`
const table = `${schema}.events`

const uuid = () => crypto.randomUUID()

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const store = yield* EventStore.EventStore
  const emitter = yield* EventEmitter.EventEmitter
  const { ids, update } = yield* Workload.makeAccounts(sql, schema)
  const user = uuid()
  const insertOne = (aggregateId: string, version: number, gstin: string) =>
    Workload.insertOne(sql, table, aggregateId, user, version, gstin)
  const run = (): Effect.Effect<void, unknown> => {
    const streams = Array.from({ length: callers }, () => ({ id: uuid(), version: 0 }))
    switch (which) {
      case "hand":
        return parallel(ops, callers, (worker, i) => {
          const stream = streams[worker]!
          stream.version++
          return insertOne(stream.id, stream.version, `${i}`)
        })
      case "hand-tx":
        return parallel(ops, callers, (_, i) =>
          sql.withTransaction(Effect.andThen(update(i), insertOne(uuid(), 1, `${i}`)))
        )
      case "emit-tx":
        return parallel(ops, callers, (_, i) =>
          sql.withTransaction(
            Effect.andThen(
              update(i),
              emitter.emit(
                Workload.GstAdded.make({
                  aggregateId: ids[i % 100]!,
                  userId: user,
                  data: { gstin: `${i}`, state: "KA" }
                })
              )
            )
          )
        )
      case "many":
        return parallel(ops / 1000, callers, () => {
          const aggregateId = uuid()
          return emitter.emitMany(
            Array.from({ length: 1000 }, (_, i) =>
              Workload.GstAdded.make({ aggregateId, userId: user, data: { gstin: `${i}`, state: "KA" } })
            )
          )
        })
      default:
        return parallel(ops, callers, (worker, i) => {
          const stream = streams[worker]!
          const expectedVersion = stream.version === 0 ? ("no_stream" as const) : stream.version
          stream.version++
          return store.append(
            [Workload.GstAdded.make({ aggregateId: stream.id, userId: user, data: { gstin: `${i}`, state: "KA" } })],
            { expectedVersion }
          )
        })
    }
  }
  for (let round = 0; round < 3; round++) {
    const start = performance.now()
    const cpu = process.cpuUsage()
    yield* run()
    const used = process.cpuUsage(cpu)
    const seconds = (performance.now() - start) / 1000
    yield* Effect.log(
      `${which} c=${callers}: ${Math.round(ops / seconds).toLocaleString("en-US")} ops/s, client CPU ${((used.user + used.system) / ops).toFixed(0)} µs an op`
    )
  }
})

const Sql = PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 20 })

const Annal = EventEmitter.layer.pipe(
  Layer.provideMerge(EventStore.layer({ schema })),
  Layer.provideMerge(Migrations.layer({ schema })),
  Layer.provideMerge(dropSchemaAtEnd(schema)),
  Layer.provideMerge(Sql)
)

program.pipe(Effect.provide(Annal), NodeRuntime.runMain)
