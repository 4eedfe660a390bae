/**
 * `npm run bench:verify`: how long `Integrity.verify` takes over an untampered log of 100k events (the bar is
 * under 10 s), on PostgreSQL and on PGlite, against the floor of reading the same rows in the same pages without
 * hashing them; and the fast path, `verifyAggregate`, per aggregate. `--events=N` sets the log's size, `--engine=postgres`
 * or `--engine=pglite` runs one engine only. Each figure is the median of three runs.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import { makeReadPage, positionOf, type Position } from "../packages/core/src/internal/integrity/read.ts"
import { PgliteClient } from "@annal/sql-pglite"
import { integritySetup, median } from "./Harness.ts"

const args = process.argv.slice(2)
const eventsArg = args.find((arg) => arg.startsWith("--events="))
const total = eventsArg === undefined ? 100_000 : Number(eventsArg.slice("--events=".length))
const engineArg = args.find((arg) => arg.startsWith("--engine="))?.slice("--engine=".length)
const engines: ReadonlyArray<"postgres" | "pglite"> =
  engineArg === "postgres" || engineArg === "pglite" ? [engineArg] : ["postgres", "pglite"]
const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const perStream = 10
const batch = 1000

const Updated = EventDefinition.make("organization.updated", {
  aggregateType: "organization",
  schema: Schema.Struct({
    name: Schema.String,
    email: Schema.String,
    changes: Schema.Record(Schema.String, Schema.Struct({ old: Schema.String, new: Schema.String }))
  })
})

const now = () => performance.now()

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const start = now()
    const value = yield* effect
    return [now() - start, value] as const
  })

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

const benchEngine = (engine: "postgres" | "pglite") =>
  Effect.gen(function* () {
    const { sql, schema, store, integrity, key, digest } = yield* integritySetup("annal_bench_verify")

    // Streams of `perStream` events, appended `batch` events per statement: each statement starts and chains a
    // hundred streams.
    const streams = Array.from({ length: Math.ceil(total / perStream) }, () => crypto.randomUUID())
    const user = crypto.randomUUID()
    const [appendMs] = yield* timed(
      Effect.gen(function* () {
        for (let offset = 0; offset < total; offset += batch) {
          const events = []
          for (let n = offset; n < Math.min(total, offset + batch); n++) {
            const aggregateId = streams[Math.floor(n / perStream)]!
            events.push(
              Updated.make({
                aggregateId,
                userId: user,
                data: {
                  name: `Organization ${n}`,
                  email: `contact-${n}@example.com`,
                  changes: { email: { old: `old-${n}@example.com`, new: `contact-${n}@example.com` } }
                },
                metadata: { correlationId: `request-${n}`, ipAddress: "10.1.2.3", extras: { tenant: "acme" } }
              })
            )
          }
          yield* store.append(events)
        }
      })
    )
    const document = yield* digest.create()

    // The floor: the verifier's own read, the same pages and rows, without a hash computed.
    const readPage = makeReadPage(sql, sql(`${schema}.events`))
    const readAll = Effect.gen(function* () {
      let after: Position | undefined
      let rows = 0
      while (true) {
        const page = yield* readPage(after, 2000, sql`false`)
        rows += page.length
        const last = page.at(-1)
        if (last === undefined) return rows
        after = positionOf(last.event)
      }
    })

    const reads: Array<number> = []
    const verifies: Array<number> = []
    const withDigest: Array<number> = []
    for (let round = 0; round < 3; round++) {
      const [readMs, rows] = yield* timed(readAll)
      if (rows !== total) return yield* Effect.die(new Error(`read ${rows} rows of ${total}`))
      reads.push(readMs)
      const [verifyMs, report] = yield* timed(integrity.verify())
      if (!report.ok || report.events !== total)
        return yield* Effect.die(new Error("the untampered log did not verify"))
      verifies.push(verifyMs)
      const [digestMs, checked] = yield* timed(integrity.verify({ digest: { document, publicKey: key.publicKey } }))
      if (!checked.ok || checked.digest?.verified !== true) {
        return yield* Effect.die(new Error("the untampered log did not match its digest"))
      }
      withDigest.push(digestMs)
    }
    const aggregates: Array<number> = []
    for (const aggregateId of streams.slice(0, 200)) {
      const [ms, report] = yield* timed(integrity.verifyAggregate("organization", aggregateId))
      if (!report.verified) return yield* Effect.die(new Error("an untampered aggregate did not verify"))
      aggregates.push(ms)
    }

    const verifyMedian = median(verifies)
    console.log(
      `\n${engine}: ${total.toLocaleString("en-US")} events in ${streams.length.toLocaleString("en-US")} streams`
    )
    console.log(
      `  append, ${batch} events a statement:        ${seconds(appendMs)} (${Math.round((total * 1000) / appendMs).toLocaleString("en-US")} events/s)`
    )
    console.log(`  read the rows, no hashing (floor):        ${seconds(median(reads))}`)
    console.log(
      `  verify every chain:                       ${seconds(verifyMedian)} (${(verifyMedian / median(reads)).toFixed(2)}x the floor) ${verifyMedian < 10_000 ? "under" : "OVER"} 10 s`
    )
    console.log(`  verify every chain and a signed digest:   ${seconds(median(withDigest))}`)
    console.log(`  verifyAggregate (${perStream} events), median of 200:   ${median(aggregates).toFixed(2)} ms`)
  }).pipe(Effect.scoped)

const program = Effect.gen(function* () {
  console.log(`Integrity.verify over an untampered log (median of 3 runs; Node ${process.version})`)
  for (const engine of engines) {
    const client: Layer.Layer<SqlClient.SqlClient, unknown> =
      engine === "postgres" ? PgClient.layer({ url: Redacted.make(url) }) : PgliteClient.layer({})
    yield* benchEngine(engine).pipe(Effect.provide(client))
  }
})

program.pipe(NodeRuntime.runMain)
