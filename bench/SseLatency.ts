/**
 * SSE commit-to-client latency at a steady 100 events/s: how long after an append's commit returns the event
 * reaches a client of `GET /events/stream`, against a floor measured in the same run.
 *
 * A fresh PostgreSQL database, dropped at the end whatever happens, with the Organization app serving it in this
 * process. A writer with its own `PgClient` appends one event per call (each append its own transaction) at a steady
 * rate, and notes the time the append returned, after its commit. Two clients take turns, over rounds:
 *
 * - the floor, `LISTEN + keyset SELECT`: a hand-written reader on a connection of its own, woken by the same
 *   notification the store sends after each commit, that reads `global_position > last`, whole rows. It is what
 *   noticing a commit and fetching the row costs on this machine, with nothing of Annal's feed in between.
 * - `GET /events/stream`: the auditor's stream, read by a raw `node:http` client that parses the messages itself and
 *   notes when the message carrying each event (matched by `eventId`) was parsed. It opens without `Last-Event-ID`,
 *   so at the feed's head.
 *
 * The latency of an event is the time it was received less the time its append returned; every clock is this
 * process's `performance.now()`. Each client must receive every event written while it listened, exactly once and
 * in order: anything else is a bug, and is reported as one.
 *
 * `export const sseLatency` is what `bench/run.ts` calls; `node bench/SseLatency.ts [--quick]` runs it on its own
 * (`DATABASE_URL` names the server and the database to create the bench database from).
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as http from "node:http"
import * as EventStore from "../packages/core/src/EventStore.ts"
import * as App from "../examples/organization/src/App.ts"
import * as DemoUsers from "../examples/organization/src/DemoUsers.ts"
import { OrganizationUpdated } from "../examples/organization/src/Events.ts"
import { percentile, type Row } from "./Harness.ts"

/** How to run the benchmark. */
export interface Options {
  /** 10 seconds of writes per client instead of 30. */
  readonly quick: boolean
  /** A database on the server to benchmark; the bench creates its own database next to it, and drops it after. */
  readonly url: string
  /** Events per second (default 100). */
  readonly rate?: number | undefined
  /** The limits of the app's event stream (the defaults otherwise, as in production). */
  readonly eventStream?: App.EventStreamLimits | undefined
}

/** The figures of one client. */
export interface LatencyRow {
  readonly section: string
  readonly contender: string
  /** Milliseconds from the append's return to the client's receipt, over the events received. */
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly received: number
  readonly written: number
  /** Events received more than once, or out of commit order: both must be 0. */
  readonly duplicated: number
  readonly outOfOrder: number
  /** Every latency, in milliseconds, for `recordLatency`-style summaries. */
  readonly values: ReadonlyArray<number>
}

/** What the benchmark found. */
export interface SseLatencyResult {
  /** The floor first, then the SSE stream. */
  readonly rows: ReadonlyArray<LatencyRow>
  /** The same as lines of `bench/run.ts`'s table: `rows.push(...result.table)`. */
  readonly table: ReadonlyArray<Row>
  /** Whether every client received every event, once each, in order. */
  readonly complete: boolean
  /** What the run was: rate achieved, how the append itself took. */
  readonly notes: ReadonlyArray<string>
}

/** The stream could not be opened, or the run lost events. */
export class SseBenchError extends Schema.TaggedError<SseBenchError>("@annal/bench/SseBenchError")("SseBenchError", {
  message: Schema.String
}) {}

const sectionOf = (rate: number) => `SSE commit-to-client latency, ${rate} events/s`
const floorName = "LISTEN + keyset SELECT (floor)"
const sseName = "GET /events/stream (SSE)"
/** How long the clients may take to receive the last events once writing stops: past the feed's 1 s poll. */
const drainTimeout = Duration.seconds(5)

/** The URL of database `name` on the server of `url`. */
const databaseUrl = (url: string, name: string): string => {
  const next = new URL(url)
  next.pathname = `/${name}`
  return next.toString()
}

/** Runs `statement` on a connection of its own to `url`. */
const admin = (url: string, statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* statement(sql)
  }).pipe(Effect.provide(PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections: 1 })))

/** A database of its own for the scope, dropped with any connection left when the scope closes, even on failure. */
const benchDatabase = (url: string): Effect.Effect<string, unknown, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const name = `annal_bench_sse_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
      yield* admin(url, (sql) => sql`CREATE DATABASE ${sql(name)}`)
      return name
    }),
    (name) =>
      admin(url, (sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).pipe(
        Effect.catchCause((cause) => Effect.logError(`could not drop the bench database ${name}`, cause))
      )
  )

/** What one client received, by event id, with the time of its receipt. */
class Arrivals {
  readonly at = new Map<string, number>()
  readonly order: Array<string> = []
  duplicated = 0
  /** Messages whose data was not an event's JSON. */
  malformed = 0
  record(eventId: string, now: number) {
    if (this.at.has(eventId)) this.duplicated++
    else this.at.set(eventId, now)
    this.order.push(eventId)
  }
}

/** A client that receives events into `arrivals` for as long as the scope lasts. */
type Client = (arrivals: Arrivals) => Effect.Effect<void, unknown, Scope.Scope>

const EventData = Schema.fromJsonString(Schema.Struct({ eventId: Schema.String }))
const decodeEventData = Schema.decodeUnknownOption(EventData)

/** The `data:` of every complete Server-Sent Events message at the front of `text`, and what is left. */
const parseMessages = (text: string): { readonly data: ReadonlyArray<string>; readonly rest: string } => {
  const data: Array<string> = []
  let rest = text
  for (let end = rest.indexOf("\n\n"); end >= 0; end = rest.indexOf("\n\n")) {
    const lines = rest
      .slice(0, end)
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
    rest = rest.slice(end + 2)
    if (lines.length > 0) data.push(lines.join("\n"))
  }
  return { data, rest }
}

/**
 * The auditor's `GET /events/stream` from `base`, read with `node:http`: each message's event id is recorded when
 * the message is parsed. Ready once the response's headers arrive, by which time the server has taken the feed's
 * head to start from.
 */
const sseClient =
  (base: string): Client =>
  (arrivals) =>
    Effect.gen(function* () {
      const headers = { authorization: `Bearer ${DemoUsers.user("dana").token}` }
      const { response } = yield* Effect.acquireRelease(
        Effect.callback<
          { readonly request: http.ClientRequest; readonly response: http.IncomingMessage },
          SseBenchError
        >((resume) => {
          const request = http.get(`${base}/events/stream`, { headers, agent: false }, (response) =>
            resume(Effect.succeed({ request, response }))
          )
          request.on("error", (error) =>
            resume(Effect.fail(new SseBenchError({ message: `GET /events/stream failed: ${error.message}` })))
          )
        }),
        ({ request }) => Effect.sync(() => request.destroy())
      )
      if (response.statusCode !== 200) {
        return yield* new SseBenchError({ message: `GET /events/stream answered ${response.statusCode}` })
      }
      let pending = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        const parsed = parseMessages(pending + chunk)
        pending = parsed.rest
        for (const data of parsed.data) {
          const event = decodeEventData(data)
          if (Option.isSome(event)) arrivals.record(event.value.eventId, performance.now())
          else arrivals.malformed++
        }
      })
    })

/**
 * The floor: `LISTEN` on the store's channel on a connection of its own, and at each notification (or each second,
 * as the feed polls) the rows after the last one seen, whole, a page of 1000 at a time. Ready once `LISTEN` is
 * confirmed and the last position read.
 */
const floorClient =
  (pg: PgClient.PgClient): Client =>
  (arrivals) =>
    Effect.gen(function* () {
      const notifications = yield* pg.listen(channel)
      const [head] = yield* pg<{ readonly p: string }>`SELECT coalesce(max(global_position), 0)::text AS p FROM events`
      let last = head?.p ?? "0"
      const readNew = Effect.gen(function* () {
        for (;;) {
          // Every column an event has, as the store reads them; `SELECT *` would fetch `transaction_id` (xid8) in a form
          // @effect/sql-pg 4.0.5 decodes as text, which fails on some ids.
          const rows = yield* pg<{ readonly id: string; readonly position: string }>`SELECT id, event_type,
            aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata, stream_version,
            global_position::text AS position, transaction_id::text AS transaction_id, recorded_at
            FROM events WHERE global_position > ${last}::bigint ORDER BY global_position LIMIT 1000`
          const now = performance.now()
          for (const row of rows) arrivals.record(row.id, now)
          const end = rows.at(-1)
          if (end !== undefined) last = end.position
          if (rows.length < 1000) return
        }
      })
      yield* Queue.takeAll(notifications).pipe(
        Effect.timeoutOption("1 second"),
        Effect.andThen(readNew),
        Effect.forever,
        Effect.catchCause((cause) => Effect.logError("the floor's reader stopped", cause)),
        Effect.forkScoped
      )
    })

/** The store's notification channel for the app's `public.events` table. */
const channel = "annal.public.events"

/** One written event: its id, and when its append returned. */
interface Written {
  readonly eventId: string
  readonly committedAt: number
  /** How long the append took. */
  readonly appendMillis: number
}

/**
 * Appends one event every `1000 / rate` ms for `seconds`. After a late append the next one follows at once and the
 * pace resumes from there: the writes missed are not made up in a burst, which would measure a burst instead.
 */
const writeSteadily = (store: EventStore.EventStore["Service"], rate: number, seconds: number) =>
  Effect.gen(function* () {
    const interval = 1000 / rate
    const count = Math.round(rate * seconds)
    const aggregates = Array.from({ length: 100 }, () => crypto.randomUUID())
    const userId = DemoUsers.user("alice").userId
    const written: Array<Written> = []
    const started = performance.now()
    let next = started
    for (let i = 0; i < count; i++) {
      const wait = next - performance.now()
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
      const before = performance.now()
      const [appended] = yield* store.append([
        OrganizationUpdated.make({
          aggregateId: aggregates[i % aggregates.length]!,
          userId,
          data: { changes: { name: { old: `Bench Traders ${i}`, new: `Bench Traders ${i + 1}` } } }
        })
      ])
      const committedAt = performance.now()
      written.push({ eventId: appended!.eventId, committedAt, appendMillis: committedAt - before })
      next = Math.max(next + interval, committedAt - interval)
    }
    return { written, seconds: (performance.now() - started) / 1000 }
  })

/** What one client saw of one round's writes. */
interface Sample {
  readonly latencies: ReadonlyArray<number>
  readonly received: number
  readonly written: number
  readonly duplicated: number
  readonly outOfOrder: number
  readonly others: number
  readonly malformed: number
  readonly appendMillis: ReadonlyArray<number>
  readonly achievedRate: number
}

/** Opens `client`, writes for `seconds`, waits for the client to receive everything (or `drainTimeout`). */
const round = (client: Client, store: EventStore.EventStore["Service"], rate: number, seconds: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const arrivals = new Arrivals()
      yield* client(arrivals)
      const { written, seconds: took } = yield* writeSteadily(store, rate, seconds)
      const deadline = performance.now() + Duration.toMillis(drainTimeout)
      while (written.some((w) => !arrivals.at.has(w.eventId)) && performance.now() < deadline) {
        yield* Effect.sleep("20 millis")
      }
      const index = new Map(written.map((w, i) => [w.eventId, i]))
      const latencies: Array<number> = []
      for (const w of written) {
        const at = arrivals.at.get(w.eventId)
        if (at !== undefined) latencies.push(at - w.committedAt)
      }
      let outOfOrder = 0
      let previous = -1
      let others = 0
      for (const eventId of arrivals.order) {
        const i = index.get(eventId)
        if (i === undefined) others++
        else if (i < previous) outOfOrder++
        else previous = i
      }
      return {
        latencies,
        received: latencies.length,
        written: written.length,
        duplicated: arrivals.duplicated,
        outOfOrder,
        others,
        malformed: arrivals.malformed,
        appendMillis: written.map((w) => w.appendMillis),
        achievedRate: written.length / took
      } satisfies Sample
    })
  )

const ms = (n: number) => n.toFixed(2)

/** Summarises the rounds of one client. */
const summarise = (section: string, contender: string, samples: ReadonlyArray<Sample>): LatencyRow => {
  const values = samples.flatMap((s) => s.latencies)
  const sum = (f: (s: Sample) => number) => samples.reduce((total, s) => total + f(s), 0)
  return {
    section,
    contender,
    p50: values.length === 0 ? Number.NaN : percentile(values, 50),
    p99: values.length === 0 ? Number.NaN : percentile(values, 99),
    max: values.length === 0 ? Number.NaN : Math.max(...values),
    received: sum((s) => s.received),
    written: sum((s) => s.written),
    duplicated: sum((s) => s.duplicated),
    outOfOrder: sum((s) => s.outOfOrder),
    values
  }
}

const isComplete = (row: LatencyRow) => row.received === row.written && row.duplicated === 0 && row.outOfOrder === 0

/** The rows as lines of `bench/run.ts`'s table: ratios of p50 and p99 to the floor's. */
const toTable = (rows: ReadonlyArray<LatencyRow>): ReadonlyArray<Row> => {
  const floor = rows[0]!
  return rows.map((row) => ({
    section: row.section,
    contender: row.contender,
    value: `${ms(row.p50)} / ${ms(row.p99)} ms (p50 / p99)`,
    range: `max ${ms(row.max)} ms, ${row.received}/${row.written} received`,
    ratio:
      row === floor ? "1.00 (baseline)" : `${(row.p50 / floor.p50).toFixed(2)}× / ${(row.p99 / floor.p99).toFixed(2)}×`,
    target: "every event, once, in order",
    met: isComplete(row)
      ? "yes"
      : `NO: ${row.written - row.received} missing, ${row.duplicated} twice, ${row.outOfOrder} out of order`
  }))
}

/**
 * Runs the benchmark: a fresh database, the Organization app on it, then rounds in which the floor and the SSE
 * stream take turns receiving the same steady writes. Missing, duplicated or reordered events are logged as errors
 * and show as `NO` in the table; they do not fail the effect.
 */
export const sseLatency = (options: Options): Effect.Effect<SseLatencyResult, unknown> =>
  Effect.scoped(
    Effect.gen(function* () {
      const rate = options.rate ?? 100
      const seconds = options.quick ? 10 : 30
      const rounds = options.quick ? 2 : 3
      const url = databaseUrl(options.url, yield* benchDatabase(options.url))
      const pgLayer = (maxConnections: number) => PgFeedSignal.layerClient({ url: Redacted.make(url), maxConnections })

      const tokens = yield* DemoUsers.tokenEntries
      const app = yield* Layer.build(
        App.layer({
          port: 0,
          host: "127.0.0.1",
          tokens,
          ...(options.eventStream === undefined ? {} : { eventStream: options.eventStream })
        }).pipe(Layer.provide(pgLayer(10)))
      )
      const base = HttpServer.formatAddress(Context.get(app, HttpServer.HttpServer).address)
      // Built after the app, whose migrations create the events table.
      const store = Context.get(
        yield* Layer.build(EventStore.layer().pipe(Layer.provide(pgLayer(4)))),
        EventStore.EventStore
      )
      const pg = Context.get(yield* Layer.build(pgLayer(2)), PgClient.PgClient)

      const contenders = [
        { name: floorName, client: floorClient(pg) },
        { name: sseName, client: sseClient(base) }
      ] as const
      // Warming up: connections, the JIT, the server's first request; not counted.
      for (const contender of contenders) yield* round(contender.client, store, rate, 1)

      const samples: Array<Array<Sample>> = contenders.map(() => [])
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < contenders.length; k++) {
          const index = (k + r) % contenders.length
          const sample = yield* round(contenders[index]!.client, store, rate, seconds / rounds)
          samples[index]!.push(sample)
          yield* Effect.logDebug(`${contenders[index]!.name}: ${sample.received}/${sample.written} received`)
        }
      }

      const rows = contenders.map((contender, index) => summarise(sectionOf(rate), contender.name, samples[index]!))
      const all = samples.flat()
      const append = all.flatMap((s) => s.appendMillis)
      const notes = [
        `${rate} events/s asked, ${Math.min(...all.map((s) => s.achievedRate)).toFixed(1)}–` +
          `${Math.max(...all.map((s) => s.achievedRate)).toFixed(1)} achieved; ${seconds} s per client over ` +
          `${rounds} rounds, alternating`,
        `append (one event, its own transaction): p50 ${ms(percentile(append, 50))} ms, p99 ${ms(percentile(append, 99))} ms`,
        `event stream options: ${JSON.stringify(options.eventStream ?? {})} (pollInterval 1 s unless set)`
      ]
      const others = all.reduce((total, s) => total + s.others, 0)
      if (others > 0) notes.push(`${others} events received that this run did not write`)
      const malformed = all.reduce((total, s) => total + s.malformed, 0)
      if (malformed > 0) {
        yield* Effect.logError(`BUG: ${malformed} stream messages whose data was not an event's JSON`)
        notes.push(`${malformed} stream messages whose data was not an event's JSON`)
      }
      for (const row of rows) {
        if (!isComplete(row)) {
          yield* Effect.logError(
            `BUG: ${row.contender} received ${row.received} of ${row.written} events written while it listened ` +
              `(${row.written - row.received} missing), ${row.duplicated} more than once, ${row.outOfOrder} out of order`
          )
        }
      }
      const complete = rows.every(isComplete) && malformed === 0
      return { rows, table: toTable(rows), complete, notes } satisfies SseLatencyResult
    })
  )

/** `node bench/SseLatency.ts [--quick]`: prints the figures; exits with a failure when an event went missing. */
const main = Effect.gen(function* () {
  const quick = process.argv.slice(2).includes("--quick")
  const url = process.env["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
  const result = yield* sseLatency({ quick, url })
  const floor = result.rows[0]!
  yield* Console.log(`\n${floor.section} (${quick ? "quick" : "full"})`)
  for (const note of result.notes) yield* Console.log(`  ${note}`)
  for (const row of result.rows) {
    const ratio =
      row === floor ? "baseline" : `${(row.p50 / floor.p50).toFixed(2)}× / ${(row.p99 / floor.p99).toFixed(2)}×`
    yield* Console.log(
      `  ${row.contender.padEnd(32)} p50 ${ms(row.p50).padStart(7)} ms  p99 ${ms(row.p99).padStart(7)} ms  ` +
        `max ${ms(row.max).padStart(7)} ms  received ${row.received}/${row.written}  ` +
        `duplicated ${row.duplicated}  out of order ${row.outOfOrder}  (${ratio})`
    )
  }
  if (!result.complete) return yield* new SseBenchError({ message: "events were missing, duplicated or out of order" })
})

if (import.meta.main) main.pipe(NodeRuntime.runMain)
