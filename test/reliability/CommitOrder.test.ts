/**
 * Commit order under load: 8 writer processes (`support/OrderingWriter.ts`) append to 4 shared streams in
 * transactions that sleep inside, write a business row first or last, append to several streams at once, and roll
 * back one time in ten, until they have committed over 20,000 events. Meanwhile 3 consumers and a raw `feed.stream`
 * reader follow the feed. Each of them must deliver every committed event once and no rolled-back one, every stream
 * in version order, and every transaction's events together and in the order they were appended.
 *
 * The control runs in the same window: a reader of `global_position > last` skips events, and a transaction held open
 * by the test until that reader has passed its event makes sure it skips at least one.
 */
import { NodeServices } from "@effect/platform-node"
import { describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Checkpoint from "../../packages/core/src/Checkpoint.ts"
import * as Consumer from "../../packages/core/src/Consumer.ts"
import * as Consumers from "../../packages/core/src/Consumers.ts"
import type * as Event from "../../packages/core/src/Event.ts"
import * as EventRegistry from "../../packages/core/src/EventRegistry.ts"
import * as EventStore from "../../packages/core/src/EventStore.ts"
import * as Feed from "../../packages/core/src/Feed.ts"
import { expectNone, Failures } from "./support/Battery.ts"
import { businessTable, EntryAdded } from "./support/Ledger.ts"
import * as Stores from "./support/Stores.ts"

const writerPath = fileURLToPath(new URL("./support/OrderingWriter.ts", import.meta.url))
const writers = 8
const eventsPerWriter = 2_600

/** What one writer process reported. */
interface WriterReport {
  readonly committed: ReadonlyArray<ReadonlyArray<string>>
  readonly rolledBack: ReadonlyArray<string>
  readonly errors: ReadonlyArray<string>
}

const runWriter = (schema: string, streams: ReadonlyArray<string>, index: number) =>
  Effect.gen(function* () {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const handle = yield* spawner.spawn(
      ChildProcess.make(process.execPath, [writerPath], {
        env: {
          ANNAL_WRITER_URL: Stores.postgresUrl,
          ANNAL_WRITER_SCHEMA: schema,
          ANNAL_WRITER_STREAMS: streams.join(","),
          ANNAL_WRITER_EVENTS: String(eventsPerWriter),
          ANNAL_WRITER_INDEX: String(index),
          NODE_COMPILE_CACHE: join(tmpdir(), "annal-reliability-compile-cache")
        },
        extendEnv: true
      })
    )
    const committed: Array<ReadonlyArray<string>> = []
    const rolledBack: Array<string> = []
    const errors: Array<string> = []
    let done = false
    const stderr = yield* Effect.forkScoped(Stream.mkString(Stream.decodeText(handle.stderr)))
    yield* handle.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.runForEach((line) =>
        Effect.sync(() => {
          const space = line.indexOf(" ")
          const [word, rest] = space < 0 ? [line, ""] : [line.slice(0, space), line.slice(space + 1)]
          if (word === "commit") committed.push(rest.split(","))
          else if (word === "rollback") rolledBack.push(...rest.split(","))
          else if (word === "error") errors.push(rest)
          else if (word === "done") done = true
        })
      )
    )
    if (!done) errors.push(`writer ${index} ended without finishing: ${yield* Fiber.join(stderr)}`)
    return { committed, rolledBack, errors } satisfies WriterReport
  }).pipe(Effect.scoped)

/** One delivery, as a reader saw it. */
interface Seen {
  readonly eventId: string
  readonly aggregateId: string
  readonly streamVersion: number
}

const seenOf = (event: Event.Event): Seen => ({
  eventId: event.eventId,
  aggregateId: event.aggregateId,
  streamVersion: event.streamVersion
})

/** Checks one reader's deliveries against what the writers committed and rolled back. */
const check = (
  reader: string,
  seen: ReadonlyArray<Seen>,
  committed: ReadonlyArray<ReadonlyArray<string>>,
  rolledBack: ReadonlySet<string>,
  failures: Failures
) => {
  const index = new Map<string, number>()
  const lastVersion = new Map<string, number>()
  for (const [at, event] of seen.entries()) {
    if (index.has(event.eventId)) failures.add("delivered twice", `${reader}: ${event.eventId}`)
    index.set(event.eventId, at)
    if (rolledBack.has(event.eventId)) failures.add("rolled-back event delivered", `${reader}: ${event.eventId}`)
    const last = lastVersion.get(event.aggregateId) ?? 0
    if (event.streamVersion !== last + 1) {
      failures.add(
        event.streamVersion <= last ? "per-stream inversion" : "stream version skipped",
        `${reader}: ${event.aggregateId} v${event.streamVersion} after v${last}`
      )
    }
    lastVersion.set(event.aggregateId, Math.max(last, event.streamVersion))
  }
  for (const transaction of committed) {
    const positions = transaction.map((id) => index.get(id))
    if (positions.some((position) => position === undefined)) {
      for (const id of transaction) if (!index.has(id)) failures.add("skipped", `${reader}: ${id}`)
      continue
    }
    if (positions.some((position, i) => i > 0 && position !== positions[i - 1]! + 1)) {
      failures.add("transaction split or out of input order", `${reader}: ${transaction.join(",")}`)
    }
  }
}

describe("reliability: commit order", () => {
  it.live(
    `${writers} writer processes, late commits, rollbacks, 4 shared streams: every reader in commit order`,
    (ctx) => {
      const schema = Stores.uniqueSchema()
      const services = Layer.mergeAll(Consumers.layer).pipe(
        Layer.provideMerge(Feed.layer({ schema })),
        Layer.provideMerge(Stores.layer(schema, Stores.postgres({ maxConnections: 12 }))),
        Layer.provideMerge(NodeServices.layer)
      )
      return Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EventStore.EventStore
        const feed = yield* Feed.Feed
        const consumers = yield* Consumers.Consumers
        yield* sql`CREATE TABLE ${sql(businessTable(schema))} (writer integer NOT NULL, n integer NOT NULL)`
        const streams = Array.from({ length: 4 }, () => crypto.randomUUID())

        // The readers: three consumers with different batch sizes, and the feed's own stream.
        const readers = new Map<string, Array<Seen>>()
        const follow = (name: string, batchSize: number) => {
          const seen: Array<Seen> = []
          readers.set(name, seen)
          return consumers
            .run(
              Consumer.make({
                name,
                registry: EventRegistry.raw,
                batchSize,
                pollInterval: "200 millis",
                handle: (batch) => Effect.sync(() => seen.push(...batch.events.map(seenOf)))
              })
            )
            .pipe(Effect.forkScoped)
        }
        yield* follow("consumer-1", 100)
        yield* follow("consumer-2", 37)
        yield* follow("consumer-3", 500)
        const raw: Array<Seen> = []
        readers.set("feed.stream", raw)
        yield* feed.stream(EventRegistry.raw, { pollInterval: "200 millis" }).pipe(
          Stream.runForEach((entry) => Effect.sync(() => raw.push(seenOf(entry.event)))),
          Effect.forkScoped
        )

        // The control: global_position > last, as fast as it can.
        const naive: Array<string> = []
        let naiveLast = 0n
        const naiveRead = Effect.gen(function* () {
          const rows = yield* sql<{ readonly id: string; readonly position: string }>`SELECT id::text AS id,
            global_position::text AS position FROM ${sql(`${schema}.events`)}
            WHERE global_position > ${naiveLast.toString()}::bigint ORDER BY global_position LIMIT 1000`
            .withoutTransform
          for (const row of rows) naive.push(row.id)
          const last = rows.at(-1)
          if (last !== undefined) naiveLast = BigInt(last.position)
        })
        const naiveFiber = yield* naiveRead.pipe(Effect.repeat(Schedule.spaced("2 millis")), Effect.forkScoped)

        // The writers.
        const writing = yield* Effect.forEach(
          Array.from({ length: writers }, (_, i) => i),
          (i) => runWriter(schema, streams, i),
          { concurrency: "unbounded" }
        ).pipe(Effect.forkChild)

        // The straggler: inserted before another transaction's event, committed after the naive reader passed that.
        const straggler = yield* sql.withTransaction(
          Effect.gen(function* () {
            const [mine] = yield* store.append([
              EntryAdded.make({ aggregateId: crypto.randomUUID(), userId: streams[0]!, data: { writer: -1, n: 0 } })
            ])
            // In a transaction of its own, on another connection, committed while this one stays open.
            const [later] = yield* store
              .append([
                EntryAdded.make({ aggregateId: crypto.randomUUID(), userId: streams[0]!, data: { writer: -1, n: 1 } })
              ])
              .pipe(
                Effect.updateContext((context: Context.Context<never>) => Context.omit(sql.transactionService)(context))
              )
            yield* Effect.suspend(() =>
              naiveLast >= later!.globalPosition ? Effect.void : Effect.fail("behind")
            ).pipe(Effect.retry(Schedule.spaced("5 millis")))
            return [[mine!.eventId], [later!.eventId]] as const
          })
        )
        const reports = yield* Fiber.join(writing)

        const committed = [...straggler, ...reports.flatMap((report) => report.committed)]
        const rolledBack = new Set(reports.flatMap((report) => report.rolledBack))
        const total = committed.reduce((sum, transaction) => sum + transaction.length, 0)
        const failures = new Failures()
        for (const report of reports) for (const error of report.errors) failures.add("writer error", error)

        // Everything that committed is readable now; wait until every reader has it all.
        const head = yield* feed.head
        const allIds = committed.flat()
        const caughtUp = (seen: ReadonlyArray<Seen>) => seen.length >= allIds.length
        yield* Effect.suspend(() => ([...readers.values()].every(caughtUp) ? Effect.void : Effect.fail("behind"))).pipe(
          Effect.retry(Schedule.spaced("100 millis")),
          Effect.timeoutOrElse({
            duration: "120 seconds",
            orElse: () => Effect.sync(() => failures.add("not caught up", `head ${Checkpoint.encode(head)}`))
          })
        )
        yield* Fiber.interrupt(naiveFiber)
        yield* naiveRead

        for (const [name, seen] of readers) check(name, seen, committed, rolledBack, failures)
        const naiveSeen = new Set(naive)
        const naiveSkipped = allIds.filter((id) => !naiveSeen.has(id)).length
        if (naiveSkipped === 0) failures.add("control: the naive reader skipped nothing", "")
        yield* expectNone(
          ctx,
          total * readers.size,
          failures,
          `${total} events in ${committed.length} transactions, ${rolledBack.size} rolled back, ` +
            `${readers.size} readers; global_position > last skipped ${naiveSkipped}`
        )
      }).pipe(Effect.provide(services), Effect.scoped)
    },
    { timeout: 300_000 }
  )
})
