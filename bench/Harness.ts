/**
 * Measuring contenders side by side: every round runs each contender once, in an order that rotates between
 * rounds, so that drift in the machine's state (caches, autovacuum, other load) falls on all of them alike.
 * Results are medians over the rounds, with min and max, and ratios are taken between medians of the same run.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as Digest from "../packages/core/src/Digest.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as Integrity from "../packages/core/src/Integrity.ts"
import * as Migrations from "../packages/core/src/Migrations.ts"

/** One way of doing the measured work: `run` does `ops` operations. */
export interface Contender {
  readonly name: string
  readonly run: (ops: number) => Effect.Effect<void, unknown>
}

/** Throughput samples of one contender, in operations per second. */
export interface Result {
  readonly name: string
  readonly samples: ReadonlyArray<number>
  readonly median: number
  readonly min: number
  readonly max: number
}

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.toSorted((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** The value below which `p` percent of the samples fall (nearest rank). */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

const now = () => performance.now()

/** Runs every contender `rounds` times, alternating, `ops` operations each time. */
export const compare = (
  contenders: ReadonlyArray<Contender>,
  options: { readonly rounds: number; readonly ops: number }
): Effect.Effect<ReadonlyArray<Result>, unknown> =>
  Effect.gen(function* () {
    const samples = contenders.map(() => [] as Array<number>)
    for (let round = 0; round < options.rounds; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const index = (k + round) % contenders.length
        const start = now()
        yield* contenders[index]!.run(options.ops)
        samples[index]!.push((options.ops * 1000) / (now() - start))
      }
    }
    return contenders.map((contender, index) => {
      const values = samples[index]!
      return {
        name: contender.name,
        samples: values,
        median: median(values),
        min: Math.min(...values),
        max: Math.max(...values)
      }
    })
  })

/** Latencies of `count` calls of `call(i)`, in milliseconds. */
export const latencies = <E, R>(
  count: number,
  call: (i: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<ReadonlyArray<number>, E, R> =>
  Effect.gen(function* () {
    const values: Array<number> = []
    for (let i = 0; i < count; i++) {
      const start = now()
      yield* call(i)
      values.push(now() - start)
    }
    return values
  })

/** Runs `work(worker, i)` for `ops` operations split over `concurrency` workers. */
export const parallel = <E, R>(
  ops: number,
  concurrency: number,
  work: (worker: number, i: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, E, R> =>
  Effect.forEach(
    Array.from({ length: concurrency }, (_, worker) => worker),
    (worker) =>
      Effect.gen(function* () {
        for (let i = worker; i < ops; i += concurrency) yield* work(worker, i)
      }),
    { concurrency: "unbounded", discard: true }
  )

/** One line of the results table, formatted. */
export interface Row {
  readonly section: string
  readonly contender: string
  readonly value: string
  readonly range: string
  readonly ratio: string
  readonly target: string
  readonly met: string
}

/** Nothing, but drops `schema` (a bench table's) when the layer's scope closes. */
export const dropSchemaAtEnd = (schema: string): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    })
  )

/**
 * A fresh schema with its tables, dropped when the scope closes, and the store, integrity service, signing key and
 * digest service over it: what the verification benchmarks start from.
 */
export const integritySetup = (prefix: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const schema = `${prefix}_${Date.now().toString(36)}`
    yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    yield* Migrations.run({ schema })
    const store = yield* EventStore.make({ schema })
    const integrity = yield* Integrity.make({ schema })
    const key = yield* Effect.flatMap(Digest.generateSigningKey, (generated) =>
      Digest.parseSigningKey(generated.privateKeyPem)
    )
    const digest = yield* Digest.make({ schema }).pipe(Effect.provideService(Digest.SigningKey, key))
    return { sql, schema, store, integrity, key, digest }
  })
