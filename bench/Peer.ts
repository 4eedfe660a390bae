/**
 * The peer comparison of the benchmark issue: Annal's `EventStore` against Emmett's PostgreSQL event store
 * (`@event-driven-io/emmett-postgresql`) on the same server, with the same payload, contenders alternating over
 * rounds. Emmett is the baseline of every ratio; the issue's target is Annal at 1.5× Emmett or better on every append
 * mode. Emmett is a bench-only dependency: it lives in `bench/peer` with a lockfile of its own, installed there on
 * first use, and is never seen by the root workspace. `node bench/Peer.ts [--quick]` runs this comparison alone.
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../packages/core/src/EventRegistry.ts"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as Migrations from "../packages/core/src/Migrations.ts"
import { compare, type Contender, dropSchemaAtEnd, type Result } from "./Harness.ts"

/** One table of the comparison, as `record` in bench/run.ts takes it: Emmett first, as the baseline. */
export interface PeerTable {
  readonly section: string
  readonly results: ReadonlyArray<Result>
  readonly unit: string
  readonly target?: { readonly contender: string; readonly atLeast: number }
}

/** How the comparison runs: rounds per table (at least 3), the short version, and the server. */
export interface PeerOptions {
  readonly rounds: number
  readonly quick: boolean
  readonly url: string
}

/** A failure of the comparison itself: Emmett missing or misbehaving, or a contender that read the wrong count. */
export class PeerError extends Schema.TaggedError<PeerError>("@annal/bench/PeerError")("PeerError", {
  reason: Schema.String
}) {
  override get message(): string {
    return this.reason
  }
}

const annal = "Annal EventStore"
const emmett = "Emmett (emmett-postgresql 0.42.0)"
const eventType = "organization.gst.added"

const GstAdded = EventDefinition.make(eventType, {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String })
})
const Events = EventRegistry.make(GstAdded)

// ---------------------------------------------------------------------------------------------------------------
// Emmett: the small surface used here, typed by hand (its own types live in bench/peer/node_modules, which the
// root typecheck does not see) and checked when the module is loaded.
// ---------------------------------------------------------------------------------------------------------------

/** An event as Emmett takes it: the same type and data as Annal's, the user id in metadata. */
interface EmmettEvent {
  readonly type: string
  readonly data: { readonly gstin: string; readonly state: string }
  readonly metadata: { readonly userId: string }
}

/** A dumbo connection pool (Emmett's SQL layer over node-postgres). */
interface DumboPool {
  readonly execute: unknown
  readonly close: () => Promise<void>
}

interface EmmettStore {
  readonly appendToStream: (
    streamName: string,
    events: Array<EmmettEvent>,
    options: { readonly expectedStreamVersion: bigint }
  ) => Promise<{ readonly nextExpectedStreamVersion: bigint }>
  readonly readStream: (streamName: string) => Promise<{ readonly events: ReadonlyArray<unknown> }>
  readonly schema: { readonly migrate: () => Promise<unknown> }
  readonly close: () => Promise<void>
}

interface Emmett {
  readonly getPostgreSQLEventStore: (
    connectionString: string,
    options: { readonly connectionOptions: { readonly dumbo: DumboPool } }
  ) => EmmettStore
  readonly readMessagesBatch: (
    execute: unknown,
    options: { readonly after: bigint; readonly batchSize: number }
  ) => Promise<{
    readonly currentGlobalPosition: bigint
    readonly messages: ReadonlyArray<unknown>
    readonly areMessagesLeft: boolean
  }>
  readonly dumbo: (options: { readonly connectionString: string }) => DumboPool
}

const isEmmett = (module: unknown): module is Emmett =>
  typeof module === "object" &&
  module !== null &&
  "getPostgreSQLEventStore" in module &&
  typeof module.getPostgreSQLEventStore === "function" &&
  "readMessagesBatch" in module &&
  typeof module.readMessagesBatch === "function" &&
  "dumbo" in module &&
  typeof module.dumbo === "function"

const peerDirectory = new URL("./peer/", import.meta.url)
const installHint = "install it with `cd bench/peer && npm ci`"

/** Installs bench/peer's own lockfile when its node_modules is missing, so that `npm run bench` stays one command. */
const ensureInstalled = Effect.gen(function* () {
  const marker = new URL("node_modules/@event-driven-io/emmett-postgresql/package.json", peerDirectory)
  if (existsSync(marker)) return
  yield* Effect.log("bench/peer/node_modules is missing: running `npm ci` in bench/peer")
  const directory = fileURLToPath(peerDirectory)
  yield* Effect.tryPromise({
    try: () =>
      promisify(execFile)("npm", ["ci", "--no-audit", "--no-fund", "--prefix", directory], {
        cwd: directory,
        // Under `npm run bench` the environment carries the root's npm settings (npm_config_local_prefix among
        // them): leave them out so that the install cannot reach the root workspace.
        env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_")))
      }),
    catch: (cause) =>
      new PeerError({ reason: `could not install Emmett for the peer comparison (${cause}); ${installHint}` })
  })
})

/** Emmett's module, loaded from bench/peer through an entry file there, so it resolves bench/peer/node_modules. */
const loadEmmett = Effect.gen(function* () {
  yield* ensureInstalled
  const module: unknown = yield* Effect.tryPromise({
    try: () => import(new URL("emmett.js", peerDirectory).href),
    catch: (cause) => new PeerError({ reason: `could not load Emmett from bench/peer (${cause}); ${installHint}` })
  })
  if (!isEmmett(module)) {
    return yield* new PeerError({ reason: `bench/peer/emmett.js does not export Emmett's API; ${installHint}` })
  }
  return module
})

const promise = <A>(run: () => Promise<A>) => Effect.tryPromise(run)

// ---------------------------------------------------------------------------------------------------------------
// The two stores, each with its own table: Annal in a fresh schema of the database, Emmett (whose tables are fixed
// in `public`) in a fresh database of the same server. Both are dropped when the comparison ends.
// ---------------------------------------------------------------------------------------------------------------

const annalLayer = (url: string, schema: string) =>
  Layer.mergeAll(Migrations.layer({ schema }), EventStore.layer({ schema })).pipe(
    Layer.provideMerge(dropSchemaAtEnd(schema)),
    // The same pool size as Emmett's (node-postgres' default of 10); the calls below are sequential anyway.
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 10 }))
  )

/** A fresh database for Emmett, its schema migrated before anything is timed. */
const openEmmett = (module: Emmett, url: string, database: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.acquireRelease(sql`CREATE DATABASE ${sql(database)}`, () =>
      sql`DROP DATABASE IF EXISTS ${sql(database)} WITH (FORCE)`.pipe(Effect.ignore)
    )
    const target = new URL(url)
    target.pathname = `/${database}`
    const connectionString = target.toString()
    const pool = module.dumbo({ connectionString })
    const store = yield* Effect.acquireRelease(
      Effect.sync(() => module.getPostgreSQLEventStore(connectionString, { connectionOptions: { dumbo: pool } })),
      (store) => promise(() => store.close()).pipe(Effect.ignore)
    )
    yield* promise(() => store.schema.migrate())
    return { store, execute: pool.execute }
  })

// ---------------------------------------------------------------------------------------------------------------
// The measurements.
// ---------------------------------------------------------------------------------------------------------------

const uuid = () => crypto.randomUUID()
/** The payload of the i-th event of a call, the same for both stores. */
const data = (i: number) => ({ gstin: `29ABCDE${String(i).padStart(4, "0")}F1Z5`, state: "KA" })

/** Appends `count` events to a stream at `expected` (0: the stream must not exist yet). */
type Append = (aggregateId: string, count: number, expected: number) => Effect.Effect<unknown, unknown>

/** Alternates the contenders over the rounds after one short untimed run each (connections, JIT, plan caches). */
const measure = (contenders: ReadonlyArray<Contender>, rounds: number, ops: number, warmUp: number) =>
  Effect.andThen(
    Effect.forEach(contenders, (contender) => contender.run(warmUp), { discard: true }),
    compare(contenders, { rounds, ops })
  )

/** Runs every comparison of the peer table and returns its rows, Emmett first in each as the baseline. */
export const peerComparisons = (options: PeerOptions): Effect.Effect<ReadonlyArray<PeerTable>, unknown> =>
  Effect.gen(function* () {
    const { quick } = options
    const rounds = Math.max(3, options.rounds)
    const suffix = `${Date.now().toString(36)}_${Math.floor(Math.random() * 36 ** 4).toString(36)}`
    const module = yield* loadEmmett
    const peer = yield* openEmmett(module, options.url, `annal_bench_emmett_${suffix}`)
    const store = yield* EventStore.EventStore
    const user = uuid()
    const tables: Array<PeerTable> = []
    // Every append goes through these, so both tables hold the same number of events when they are read whole.
    const written = { annal: 0, emmett: 0 }

    const annalAppend: Append = (aggregateId, count, expected) => {
      written.annal += count
      return store.append(
        Array.from({ length: count }, (_, i) => GstAdded.make({ aggregateId, userId: user, data: data(i) })),
        { expectedVersion: expected === 0 ? "no_stream" : expected }
      )
    }
    // Emmett checks the expected version in its append function: 0n makes it insert the stream's row, which fails
    // on the primary key if the stream exists. Its STREAM_DOES_NOT_EXIST constant is passed down as "no check" in
    // this version, so 0n is the equivalent of Annal's "no_stream".
    const emmettAppend: Append = (aggregateId, count, expected) => {
      written.emmett += count
      return promise(() =>
        peer.store.appendToStream(
          `organization-${aggregateId}`,
          Array.from({ length: count }, (_, i) => ({ type: eventType, data: data(i), metadata: { userId: user } })),
          { expectedStreamVersion: BigInt(expected) }
        )
      )
    }
    const table = (section: string, results: ReadonlyArray<Result>, unit: string, target?: number) =>
      Effect.gen(function* () {
        tables.push(
          target === undefined
            ? { section, results, unit }
            : { section, results, unit, target: { contender: annal, atLeast: target } }
        )
        const [baseline, contender] = results
        const ratio =
          baseline === undefined || contender === undefined
            ? ""
            : ` (${(contender.median / baseline.median).toFixed(2)}×)`
        yield* Effect.log(
          `${section}: ${results.map((r) => `${r.name} ${Math.round(r.median)} ${unit}`).join(" | ")}${ratio}`
        )
      })

    // 1. One event per call, each call a new stream.
    {
      const ops = quick ? 400 : 2000
      const results = yield* measure(
        [
          {
            name: emmett,
            run: (n) =>
              Effect.gen(function* () {
                for (let i = 0; i < n; i++) yield* emmettAppend(uuid(), 1, 0)
              })
          },
          {
            name: annal,
            run: (n) =>
              Effect.gen(function* () {
                for (let i = 0; i < n; i++) yield* annalAppend(uuid(), 1, 0)
              })
          }
        ],
        rounds,
        ops,
        50
      )
      yield* table("peer: append 1 event per call, a new stream each call", results, "events/s", 1.5)
    }

    // 2. One event per call onto one stream, the expected version tracked locally.
    {
      const ops = quick ? 400 : 2000
      const oneStream = (append: Append) => (n: number) =>
        Effect.gen(function* () {
          const aggregateId = uuid()
          for (let version = 0; version < n; version++) yield* append(aggregateId, 1, version)
        })
      const results = yield* measure(
        [
          { name: emmett, run: oneStream(emmettAppend) },
          { name: annal, run: oneStream(annalAppend) }
        ],
        rounds,
        ops,
        50
      )
      yield* table("peer: append 1 event per call, one stream (expected version)", results, "events/s", 1.5)
    }

    // 3. Batches: every call a new stream of `size` events.
    for (const size of [100, 1000]) {
      const calls = size === 100 ? (quick ? 20 : 50) : quick ? 5 : 20
      const batches = (append: Append) => (events: number) =>
        Effect.gen(function* () {
          for (let call = 0; call < events / size; call++) yield* append(uuid(), size, 0)
        })
      const results = yield* measure(
        [
          { name: emmett, run: batches(emmettAppend) },
          { name: annal, run: batches(annalAppend) }
        ],
        rounds,
        calls * size,
        size
      )
      yield* table(`peer: append ${size} events per call (new stream)`, results, "events/s", 1.5)
    }

    // 4. Reading a stream of 100 events, over a few streams written beforehand (untimed).
    {
      const streams = Array.from({ length: 20 }, () => uuid())
      for (const id of streams) {
        yield* annalAppend(id, 100, 0)
        yield* emmettAppend(id, 100, 0)
      }
      const expectHundred = (who: string, count: number) =>
        count === 100
          ? Effect.void
          : Effect.fail(new PeerError({ reason: `${who} read ${count} events of a stream of 100` }))
      const results = yield* measure(
        [
          {
            name: `${emmett}, readStream`,
            run: (n) =>
              Effect.gen(function* () {
                for (let i = 0; i < n; i++) {
                  const read = yield* promise(() =>
                    peer.store.readStream(`organization-${streams[i % streams.length]!}`)
                  )
                  yield* expectHundred("Emmett", read.events.length)
                }
              })
          },
          {
            name: `${annal}, getByAggregate (decoded)`,
            run: (n) =>
              Effect.gen(function* () {
                for (let i = 0; i < n; i++) {
                  const events = yield* store.getByAggregate(Events, "organization", streams[i % streams.length]!)
                  yield* expectHundred("Annal", events.length)
                }
              })
          }
        ],
        rounds,
        quick ? 300 : 1000,
        20
      )
      yield* table("peer: read a stream of 100 events", results, "reads/s")
    }

    // 5. Reading every event in order, in pages of 1,000: both tables topped up to the same size first (untimed).
    {
      const size = quick ? 20_000 : 100_000
      while (written.annal < size) yield* annalAppend(uuid(), Math.min(1000, size - written.annal), 0)
      while (written.emmett < size) yield* emmettAppend(uuid(), Math.min(1000, size - written.emmett), 0)
      const total = written.annal
      if (written.emmett !== total) {
        return yield* new PeerError({ reason: `the tables differ: Annal ${total} events, Emmett ${written.emmett}` })
      }
      const expectAll = (who: string, count: number) =>
        count === total
          ? Effect.void
          : Effect.fail(
              new PeerError({
                reason:
                  `${who} read ${count} of ${total} events` +
                  (who === "Emmett"
                    ? ": its reader stops at pg_snapshot_xmin, so a transaction left open elsewhere on the server holds it back"
                    : "")
              })
            )
      // Emmett's read-all is `readMessagesBatch`, the query its consumers pull with: rows below the snapshot's xmin,
      // ordered by (transaction_id, global_position), `batchSize` at a time after a global position.
      const emmettReadAll = Effect.gen(function* () {
        let after = 0n
        let count = 0
        for (;;) {
          const batch = yield* promise(() => module.readMessagesBatch(peer.execute, { after, batchSize: 1000 }))
          count += batch.messages.length
          after = batch.currentGlobalPosition
          if (!batch.areMessagesLeft) break
        }
        yield* expectAll("Emmett", count)
      })
      const annalReadAll = Effect.flatMap(Stream.runCount(store.stream(Events, {}, { batchSize: 1000 })), (count) =>
        expectAll("Annal", count)
      )
      const results = yield* measure(
        [
          { name: `${emmett}, readMessagesBatch pages of 1,000`, run: () => emmettReadAll },
          { name: `${annal}, stream (decoded) pages of 1,000`, run: () => annalReadAll }
        ],
        rounds,
        total,
        total
      )
      yield* table(`peer: read all ${total.toLocaleString("en-US")} events in order`, results, "events/s")
    }
    return tables
  }).pipe(
    Effect.scoped,
    Effect.provide(
      annalLayer(
        options.url,
        `annal_bench_peer_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`
      )
    )
  )

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2))

// `node bench/Peer.ts [--quick]`: the peer comparison alone, printed as a table.
if (import.meta.main) {
  const quick = process.argv.includes("--quick")
  const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
  Effect.gen(function* () {
    const started = performance.now()
    const tables = yield* peerComparisons({ rounds: quick ? 3 : 5, quick, url })
    const lines = [
      "| measurement | contender | median | min–max | ratio | target | met |",
      "|---|---|---|---|---|---|---|"
    ]
    for (const { section, results, unit, target } of tables) {
      const baseline = results[0]!
      for (const result of results) {
        const ratio = result.median / baseline.median
        const isTarget = target !== undefined && result.name === target.contender
        lines.push(
          `| ${section} | ${result.name} | ${fmt(result.median)} ${unit} | ${fmt(result.min)}–${fmt(result.max)} | ` +
            `${result === baseline ? "1.00 (baseline)" : `${ratio.toFixed(2)}×`} | ` +
            `${isTarget ? `≥ ${target.atLeast}×` : ""} | ${isTarget ? (ratio >= target.atLeast ? "yes" : "NO") : ""} |`
        )
      }
    }
    console.log(`\n${lines.join("\n")}\n\n(${((performance.now() - started) / 1000).toFixed(1)} s)`)
  }).pipe(NodeRuntime.runMain)
}
