/**
 * Hostile payloads: 10,000 payloads, a named corpus and the rest generated with fast-check (`support/Payloads.ts`),
 * appended one event each through `EventStore.append` and read back. Each is stored and read back as the same JSON
 * value, or refused with a typed `InvalidEvent` before anything is written: no raw SQL error escapes, the database
 * never has to refuse what validation let through, and a refused event leaves no row. Every chunk of 250 carries
 * cases on either side of the documented limits, big strings and deep values in data and in metadata: those within
 * are stored, those beyond are refused as `InvalidEvent` for that limit ("nesting deeper than 512", "larger than
 * 5242880 bytes"), with nothing written. The heap after a full GC stays within a bound of where it was after the
 * first chunk, and the process's peak RSS stays under a ceiling.
 *
 * It runs on PostgreSQL, and the first 1,000 cases on PGlite. The checker is shown to catch an appender whose payload
 * check is turned off (a plain INSERT of `JSON.stringify(data)`), and a store that keeps every payload it appended,
 * on the first 2,000 cases of the same workload.
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import fc from "fast-check"
import { inspect } from "node:util"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as AnnalError from "../../packages/core/src/AnnalError.ts"
import * as EventDefinition from "../../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../../packages/core/src/EventRegistry.ts"
import * as EventStore from "../../packages/core/src/EventStore.ts"
import { PgliteClient } from "@annal/sql-pglite"
import { answer, expectCaught, expectNone, Failures } from "./support/Battery.ts"
import {
  corpus,
  documentedMaxBytes,
  documentedMaxDepth,
  type Expectation,
  limitCases,
  type Payload,
  payload,
  sameJson
} from "./support/Payloads.ts"
import * as Stores from "./support/Stores.ts"

/** Any payload at all: the store's own checks are what is under test, not a schema's. */
const PayloadSent = EventDefinition.make("payload.sent", { aggregateType: "payload", schema: Schema.Unknown })

type Appender = (
  event: EventDefinition.Pending
) => Effect.Effect<ReadonlyArray<EventStore.Appended>, unknown, EventStore.EventStore | SqlClient.SqlClient>

const storeAppender: Appender = (event) => EventStore.EventStore.use((store) => store.append([event]))

// A full GC is not exposed to tests by default; V8 can be told so at run time, and `gc` then lives in new contexts.
// Without it the heap figures would be noise, so the file refuses to load.
setFlagsFromString("--expose-gc")
const gc: unknown = runInNewContext("gc")
if (typeof gc !== "function") throw new Error("V8 did not expose gc")
const collectGarbage = (): void => {
  gc()
}

const megabytes = (bytes: number): number => Math.round(bytes / 1_048_576)

/**
 * How far the heap after a full GC may grow past where it stood after the first chunk. What the run sends adds up to
 * more than this (its big strings alone are tens of MB), so a store that kept what it was given would exceed it.
 */
const heapGrowthBound = 32 * 1_048_576
/** The process's RSS must stay under this, PGlite's WebAssembly memory and the 5 MB payloads included. */
const rssCeiling = 2_048 * 1_048_576

const preview = (value: unknown): string =>
  inspect(value, { depth: 3, maxStringLength: 40, maxArrayLength: 5, breakLength: Infinity })

/** How many cases run between two measurements of the heap. */
const chunkSize = 250

/**
 * Chunk `chunk` of a run: the corpus first in the first one, then generated payloads with the cases around the
 * documented limits spread among them. The same for the same seed, whichever appender the run is checking.
 */
const workload = (seed: number, chunk: number, size: number): ReadonlyArray<Payload> => {
  const head = chunk === 0 ? corpus : []
  const limits = limitCases(seed + chunk)
  const generated = fc.sample(payload, { numRuns: Math.max(0, size - head.length - limits.length), seed: seed + chunk })
  const every = Math.max(1, Math.floor(generated.length / (limits.length + 1)))
  const spread: Array<Payload> = []
  let next = 0
  for (const [index, one] of generated.entries()) {
    spread.push(one)
    if ((index + 1) % every === 0 && next < limits.length) spread.push(limits[next++]!)
  }
  spread.push(...limits.slice(next))
  return [...head, ...spread]
}

/** The refusal a case beyond a documented limit must get: an `InvalidEvent` whose reason names that limit. */
const refusals: Readonly<Record<Exclude<Expectation, "stored">, RegExp>> = {
  "too deep": new RegExp(`nesting deeper than ${documentedMaxDepth} levels`),
  "too large": new RegExp(`larger than ${documentedMaxBytes} bytes`)
}

/** Appends and reads back `cases` payloads, the corpus first, `concurrency` at a time, and checks them. */
const run = (options: {
  readonly schema: string
  readonly cases: number
  readonly seed: number
  readonly concurrency: number
  readonly appender: Appender
}) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const sql = yield* SqlClient.SqlClient
    const failures = new Failures()
    const refused = new Set<string>()
    const figures = { stored: 0, refused: 0, baseline: 0, maxHeap: 0, maxRss: 0 }
    const limits = { stored: 0, "too deep": 0, "too large": 0 }
    const userId = crypto.randomUUID()

    const one = (sent: Payload) =>
      Effect.gen(function* () {
        const aggregateId = crypto.randomUUID()
        const event = PayloadSent.make({
          aggregateId,
          userId,
          data: sent.data,
          ...(sent.metadata === undefined ? {} : { metadata: sent.metadata })
        })
        const appended = yield* answer(options.appender(event))
        if (appended._tag !== "Value") {
          refused.add(aggregateId)
          if (appended._tag === "Untyped")
            failures.add("raw error escaped", `${appended.description} for ${preview(sent.data)}`)
          else if (appended.error instanceof AnnalError.InvalidEvent) {
            figures.refused++
            if (sent.expect === "stored") {
              failures.add("refused within the documented limits", appended.error.message)
            } else if (sent.expect !== undefined) {
              if (refusals[sent.expect].test(appended.error.reason)) limits[sent.expect]++
              else failures.add(`${sent.expect} but refused for another reason`, appended.error.message)
            }
          } else
            failures.add(
              "refused by the database, not by validation",
              `${appended.error.message} for ${preview(sent.data)}`
            )
          return
        }
        figures.stored++
        if (sent.expect === "stored") limits.stored++
        else if (sent.expect !== undefined) failures.add(`${sent.expect} but stored`, preview(sent.data))
        const read = yield* answer(store.getByAggregate(EventRegistry.raw, "payload", aggregateId))
        if (read._tag !== "Value") {
          failures.add(
            read._tag === "Typed" ? "stored but not readable" : "raw error escaped",
            `${read._tag === "Typed" ? read.error.message : read.description} for ${preview(sent.data)}`
          )
        } else if (read.value.length !== 1) {
          failures.add("not stored exactly once", `${read.value.length} rows for ${preview(sent.data)}`)
        } else if (!sameJson(sent.data, read.value[0]!.data)) {
          failures.add("read back different", `sent ${preview(sent.data)}, read ${preview(read.value[0]!.data)}`)
        } else if (sent.metadata !== undefined && !sameJson(sent.metadata, read.value[0]!.metadata)) {
          failures.add(
            "metadata read back different",
            `sent ${preview(sent.metadata)}, read ${preview(read.value[0]!.metadata)}`
          )
        }
      })

    for (let done = 0, chunk = 0; done < options.cases; chunk++) {
      const cases = workload(options.seed, chunk, Math.min(chunkSize, options.cases - done))
      yield* Effect.forEach(cases, one, { concurrency: options.concurrency, discard: true })
      done += cases.length
      collectGarbage()
      const { heapUsed, rss } = process.memoryUsage()
      // Measured from the end of the first chunk, once the client, its statement cache and the runtime are warm.
      if (chunk === 0) figures.baseline = heapUsed
      figures.maxHeap = Math.max(figures.maxHeap, heapUsed)
      figures.maxRss = Math.max(figures.maxRss, rss)
    }
    if (figures.maxHeap - figures.baseline > heapGrowthBound) {
      failures.add(
        "memory grew",
        `heap after GC went from ${megabytes(figures.baseline)} MB to ${megabytes(figures.maxHeap)} MB`
      )
    }
    if (figures.maxRss > rssCeiling) failures.add("memory unbounded", `peak RSS ${megabytes(figures.maxRss)} MB`)
    // Each chunk has cases of each kind: a run that refused none for a limit did not test that limit.
    for (const [kind, count] of Object.entries(limits)) {
      if (count === 0) failures.add("a documented limit was never reached", `no case ${kind} as it must be`)
    }

    const rows = yield* sql<{ readonly id: string }>`SELECT DISTINCT aggregate_id::text AS id
      FROM ${sql(`${options.schema}.events`)}`.withoutTransform
    for (const row of rows) if (refused.has(row.id)) failures.add("refused payload was written", row.id)

    return {
      failures,
      note: [
        `${figures.stored} stored and read back, ${figures.refused} refused as InvalidEvent`,
        `at the limits: ${limits.stored} stored, ${limits["too deep"]} refused as too deep, ${limits["too large"]} as too large`,
        `heap after GC ${megabytes(figures.baseline)} → max ${megabytes(figures.maxHeap)} MB`,
        `peak RSS ${megabytes(figures.maxRss)} MB`
      ].join("; ")
    }
  })

const seed = Number(process.env["ANNAL_RELIABILITY_SEED"] ?? 20_240_601)

const onPostgres = <A, E>(f: (schema: string) => Effect.Effect<A, E, EventStore.EventStore | SqlClient.SqlClient>) => {
  const schema = Stores.uniqueSchema()
  return f(schema).pipe(Effect.provide(Stores.layer(schema, Stores.postgres({ maxConnections: 8 }))))
}

const onPglite = <A, E>(f: (schema: string) => Effect.Effect<A, E, EventStore.EventStore | SqlClient.SqlClient>) => {
  const schema = Stores.uniqueSchema()
  return f(schema).pipe(Effect.provide(Stores.layer(schema, PgliteClient.layer({}))))
}

describe("reliability: hostile payloads", () => {
  it.live(`10,000 generated payloads on PostgreSQL (seed ${seed})`, (ctx) =>
    onPostgres((schema) =>
      Effect.gen(function* () {
        const { failures, note } = yield* run({ schema, cases: 10_000, seed, concurrency: 8, appender: storeAppender })
        yield* expectNone(ctx, 10_000, failures, note)
      })
    )
  )

  // PGlite is one session inside this process, several times slower per append: the same corpus and the first
  // 1,000 of the same generated payloads.
  it.live(`1,000 of them on PGlite (seed ${seed})`, (ctx) =>
    onPglite((schema) =>
      Effect.gen(function* () {
        const { failures, note } = yield* run({ schema, cases: 1_000, seed, concurrency: 1, appender: storeAppender })
        yield* expectNone(ctx, 1_000, failures, note)
      })
    )
  )

  it.live("broken variant caught: an appender whose payload check is turned off", (ctx) =>
    onPostgres((schema) =>
      Effect.gen(function* () {
        const unchecked: Appender = (event) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const [row] = yield* sql<{ readonly global_position: string }>`INSERT INTO ${sql(`${schema}.events`)}
              (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata, stream_version)
              VALUES (${crypto.randomUUID()}::uuid, ${event.eventType}, ${event.aggregateId}::uuid, ${event.aggregateType},
                ${event.userId!}::uuid, now(), ${event.version}, ${JSON.stringify(event.data) ?? "null"}::jsonb,
                ${JSON.stringify(event.metadata ?? {})}::jsonb, 1)
              RETURNING global_position::text AS global_position`.withoutTransform
            return [
              {
                eventId: "",
                aggregateType: event.aggregateType,
                aggregateId: event.aggregateId,
                streamVersion: 1,
                globalPosition: BigInt(row!.global_position),
                duplicate: false
              }
            ]
          })
        const { failures } = yield* run({ schema, cases: 500, seed, concurrency: 4, appender: unchecked })
        yield* expectCaught(ctx, 500, failures, ["raw error escaped", "read back different", "stored but not readable"])
      })
    )
  )

  it.live("broken variant caught: a store that keeps every payload it appended", (ctx) =>
    onPostgres((schema) =>
      Effect.gen(function* () {
        const kept: Array<EventDefinition.Pending> = []
        const keeping: Appender = (event) =>
          Effect.andThen(
            Effect.sync(() => kept.push(event)),
            storeAppender(event)
          )
        // The real run's workload, chunks and concurrency, its first 2,000 cases: the big strings of seven chunks
        // after the first add up to well over the heap's bound.
        const { failures, note } = yield* run({ schema, cases: 2_000, seed, concurrency: 8, appender: keeping })
        yield* expectCaught(ctx, 2_000, failures, ["memory grew"], note)
      })
    )
  )
})
