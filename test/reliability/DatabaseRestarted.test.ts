/**
 * Database restarted: writers append continuously to a throwaway cluster of the test's own (`support/Cluster.ts`)
 * while it is stopped with `-m immediate` and started again, 5 times, in one process with one pool. While the server
 * is down every append fails with a typed error and none hangs (a hang guard far beyond any timeout the client has
 * says so), and every writer appends again once the server is back. A writer retries an unacknowledged append with
 * the same event id until it is acknowledged (appends are idempotent by event id), so afterwards every acknowledged
 * append is stored where it was acknowledged, and no append is stored twice.
 *
 * The checker is shown to catch writers that retry with fresh event ids (an append whose commit survived the crash
 * but whose answer did not is stored twice), a server that acknowledges commits before their WAL is on disk
 * (`synchronous_commit = off`: acknowledged appends vanish in the crash) and an appender whose errors are raw
 * driver errors. A second group shows that an append to a server that accepts connections and never answers fails
 * with the connect timeout's own error (a typed `StorageError` of reason `ConnectionError`, "Connection timed out"),
 * not by hanging, and that without a connect timeout it hangs, which the checker reports. How soon it fails is not
 * asserted: that is the timer's business, and on a loaded machine it is late; that it fails by the connect timeout,
 * and not by anything else or never, is the claim.
 */
import { describe, it, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { createServer, type Socket } from "node:net"
import * as AnnalError from "../../packages/core/src/AnnalError.ts"
import * as EventDefinition from "../../packages/core/src/EventDefinition.ts"
import * as EventStore from "../../packages/core/src/EventStore.ts"
import { answer, expectCaught, expectNone, Failures, type TypedError } from "./support/Battery.ts"
import { Cluster, layer as clusterLayer } from "./support/Cluster.ts"
import * as Stores from "./support/Stores.ts"

const Ticked = EventDefinition.make("meter.ticked", {
  aggregateType: "meter",
  schema: Schema.Struct({ writer: Schema.Int, seq: Schema.Int })
})

/** The connect timeout the clients are configured with. */
const connectTimeout = Duration.seconds(2)

/**
 * Only a hang guard: an append that has not answered by then hangs. Fifteen times the connect timeout, which is what
 * ends an append to a server that does not answer, so that a loaded machine's late timers never reach it.
 */
const hangGuard = Duration.seconds(30)

const writers = 6

const maxAttempts = 2_000

type Appender = (
  event: EventDefinition.Pending
) => Effect.Effect<EventStore.Appended, unknown, EventStore.EventStore | SqlClient.SqlClient>

const storeAppender: Appender = (event) =>
  EventStore.EventStore.use((store) => Effect.map(store.append([event]), (appended) => appended[0]!))

interface Acknowledged {
  readonly writer: number
  readonly seq: number
  readonly eventId: string
  readonly globalPosition: bigint
}

/** Polls `condition` every 20 ms; after `polls` polls it reports `what` as a failure and gives up waiting. */
const waitUntil = (condition: () => boolean, failures: Failures, what: string, polls = 3_000) =>
  Effect.gen(function* () {
    for (let poll = 0; poll < polls; poll++) {
      if (condition()) return true
      yield* Effect.sleep("20 millis")
    }
    failures.add(what, `after ${polls} polls`)
    return false
  })

/** Checks the table against what the writers were told. */
const check = (schema: string, acknowledged: ReadonlyArray<Acknowledged>) =>
  Effect.gen(function* () {
    const failures = new Failures()
    const rows = yield* Stores.storedRows(schema)
    const decode = Schema.decodeUnknownSync(Ticked.schema)
    const byId = new Map(rows.map((row) => [row.id, row]))
    const appends = new Set<string>()
    for (const row of rows) {
      const { writer, seq } = decode(row.data)
      const key = `${writer}/${seq}`
      if (appends.has(key)) failures.add("append stored twice", `writer ${writer} append ${seq}`)
      appends.add(key)
    }
    for (const ack of acknowledged) {
      const row = byId.get(ack.eventId)
      if (row === undefined || row.global_position !== ack.globalPosition.toString()) {
        failures.add("acknowledged append lost", `writer ${ack.writer} append ${ack.seq} at ${ack.globalPosition}`)
      }
    }
    return failures
  })

/**
 * Runs the writers and crashes and restarts the cluster under them, `restarts` times, or until `caught` says the
 * table already shows the fault a broken variant is about.
 */
const crashAndRestart = (options: {
  readonly schema: string
  readonly restarts: number
  readonly appender: Appender
  readonly freshIdOnRetry: boolean
  readonly caught?: (failures: Failures) => boolean
}) =>
  Effect.gen(function* () {
    const cluster = yield* Cluster
    const failures = new Failures()
    const acknowledged: Array<Acknowledged> = []
    const state = { down: false, stopping: false, abandon: false, acks: 0, errors: 0, recovered: new Set<number>() }
    const figures = { typedWhileDown: 0, answeredDuplicate: 0, restarts: 0 }
    const userId = crypto.randomUUID()

    const writer = Effect.fnUntraced(function* (writer: number) {
      const stream = crypto.randomUUID()
      for (let seq = 0; !state.stopping; seq++) {
        let eventId = crypto.randomUUID()
        for (let attempt = 0; ; attempt++) {
          // A broken variant that has been caught stops at once, whatever it was doing.
          if (state.abandon) return
          // Far more attempts than a restart takes: an append still refused after them never will be accepted.
          if (attempt === maxAttempts) {
            failures.add("append never acknowledged", `writer ${writer} append ${seq}`)
            break
          }
          const event = Ticked.make({ aggregateId: stream, userId, eventId, data: { writer, seq } })
          const result = yield* answer(Effect.timeoutOption(options.appender(event), hangGuard))
          if (result._tag === "Value" && Option.isSome(result.value)) {
            const appended = result.value.value
            acknowledged.push({ writer, seq, eventId, globalPosition: appended.globalPosition })
            // A retry answered as a duplicate is an append whose commit survived the crash but whose answer did not.
            if (appended.duplicate) figures.answeredDuplicate++
            state.acks++
            state.recovered.add(writer)
            break
          }
          state.errors++
          if (result._tag === "Value") {
            failures.add("append hung", `writer ${writer} append ${seq}`)
          } else if (result._tag === "Untyped") {
            failures.add("untyped error", result.description)
          } else if (state.down) {
            figures.typedWhileDown++
          }
          if (options.freshIdOnRetry) eventId = crypto.randomUUID()
          yield* Effect.sleep("25 millis")
        }
      }
    })

    const running = yield* Effect.forkChild(
      Effect.forEach(
        Array.from({ length: writers }, (_, index) => index),
        writer,
        { concurrency: "unbounded", discard: true }
      )
    )

    // A broken variant whose fault already shows in what the writers saw need not wait for anything more.
    const shown = () => options.caught !== undefined && options.caught(failures)
    for (let restart = 0; restart < options.restarts; restart++) {
      const before = state.acks
      yield* waitUntil(
        () => state.acks >= before + 100 || shown(),
        failures,
        "writers made no progress before the crash"
      )
      yield* cluster.crash
      state.down = true
      const errorsBefore = state.errors
      yield* waitUntil(
        () => state.errors >= errorsBefore + 2 * writers || shown(),
        failures,
        "appends did not fail while the server was down"
      )
      state.recovered.clear()
      yield* cluster.start
      state.down = false
      figures.restarts++
      yield* waitUntil(
        () => state.recovered.size === writers || shown(),
        failures,
        "writers did not recover after the restart"
      )
      if (options.caught !== undefined) {
        const found = yield* check(options.schema, acknowledged)
        found.addAll(failures)
        if (options.caught(found)) {
          state.abandon = true
          break
        }
      }
    }
    state.stopping = true
    yield* Fiber.join(running)
    failures.addAll(yield* check(options.schema, acknowledged))
    return {
      failures,
      restarts: figures.restarts,
      note: [
        `${acknowledged.length} appends acknowledged`,
        `${figures.typedWhileDown} typed errors while down`,
        `${figures.answeredDuplicate} retried appends already stored (commit survived the crash, its answer did not)`
      ].join("; ")
    }
  })

/** The core's services over a fresh events table on the cluster, through one pool for the whole test. */
const withClusterStore = <A, E>(
  f: (schema: string) => Effect.Effect<A, E, EventStore.EventStore | SqlClient.SqlClient | Cluster>,
  options: Partial<PgClient.PgPoolConfig> = {}
) => {
  const schema = Stores.uniqueSchema()
  const client = Layer.unwrap(
    Cluster.useSync((cluster) =>
      PgClient.layer({ url: Redacted.make(cluster.url), connectTimeout, maxConnections: writers, ...options })
    )
  )
  return f(schema).pipe(Effect.provide(Stores.layer(schema, client)))
}

layer(clusterLayer, { excludeTestServices: true })("reliability: database restarted", (it) => {
  it.effect("PostgreSQL stopped with -m immediate and restarted under write load, 5 times", (ctx) =>
    withClusterStore((schema) =>
      Effect.gen(function* () {
        const { failures, restarts, note } = yield* crashAndRestart({
          schema,
          restarts: 5,
          appender: storeAppender,
          freshIdOnRetry: false
        })
        yield* expectNone(ctx, restarts, failures, note)
      })
    )
  )

  it.effect("broken variant caught: retrying unacknowledged appends with fresh event ids", (ctx) =>
    withClusterStore((schema) =>
      Effect.gen(function* () {
        const kinds = ["append stored twice"]
        // It needs a crash that lands between a commit and its answer: about one restart in two has one.
        const { failures, restarts, note } = yield* crashAndRestart({
          schema,
          restarts: 20,
          appender: storeAppender,
          freshIdOnRetry: true,
          caught: (found) => found.count("append stored twice") > 0
        })
        yield* expectCaught(ctx, restarts, failures, kinds, note)
      })
    )
  )

  it.effect("broken variant caught: a server that acknowledges commits before the WAL is on disk", (ctx) =>
    withClusterStore(
      (schema) =>
        Effect.gen(function* () {
          const kinds = ["acknowledged append lost"]
          const { failures, restarts, note } = yield* crashAndRestart({
            schema,
            restarts: 10,
            appender: storeAppender,
            freshIdOnRetry: false,
            caught: (found) => found.count("acknowledged append lost") > 0
          })
          yield* expectCaught(ctx, restarts, failures, kinds, note)
        }),
      { startupParameters: { synchronous_commit: "off" } }
    )
  )

  it.effect("broken variant caught: an appender whose errors are raw driver errors", (ctx) =>
    withClusterStore((schema) =>
      Effect.gen(function* () {
        const raw: Appender = (event) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const [row] = yield* sql<{ readonly global_position: string }>`INSERT INTO ${sql(`${schema}.events`)}
              (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
              SELECT ${event.eventId!}::uuid, ${event.eventType}, ${event.aggregateId}::uuid, ${event.aggregateType},
                ${event.userId!}::uuid, now(), ${event.version}, ${JSON.stringify(yield* event.encode)}::jsonb,
                COALESCE(max(stream_version), 0) + 1
              FROM ${sql(`${schema}.events`)} WHERE aggregate_id = ${event.aggregateId}::uuid
              RETURNING global_position::text AS global_position`.withoutTransform
            return {
              eventId: event.eventId!,
              aggregateType: event.aggregateType,
              aggregateId: event.aggregateId,
              streamVersion: 0,
              globalPosition: BigInt(row!.global_position),
              duplicate: false
            }
          })
        const kinds = ["untyped error"]
        const { failures, restarts } = yield* crashAndRestart({
          schema,
          restarts: 1,
          appender: raw,
          freshIdOnRetry: false,
          caught: (found) => found.count("untyped error") > 0
        })
        yield* expectCaught(ctx, restarts, failures, kinds)
      })
    )
  )
})

/** A server that accepts TCP connections and never says a word, as a frozen or half-partitioned one does. */
const unresponsiveServer = Effect.acquireRelease(
  Effect.callback<{ readonly port: number; readonly close: () => void }>((resume) => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resume(
        Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        })
      )
    })
  }),
  (server) => Effect.sync(server.close)
)

/** The error the connect timeout ends an append with, as the store reports it. */
const isConnectTimeout = (error: TypedError): boolean =>
  error instanceof AnnalError.StorageError &&
  error.reason._tag === "ConnectionError" &&
  /connection timed out/i.test(error.detail)

/** Sends `appends` appends at once to the unresponsive server through a client with the given connect timeout. */
const appendToUnresponsive = (appends: number, timeout: Duration.Input) =>
  Effect.gen(function* () {
    const server = yield* unresponsiveServer
    const client = PgClient.layer({
      url: Redacted.make(`postgres://postgres@127.0.0.1:${server.port}/postgres`),
      connectTimeout: timeout,
      maxConnections: appends
    })
    const failures = new Failures()
    const userId = crypto.randomUUID()
    const send = Effect.forEach(
      Array.from({ length: appends }, (_, seq) => seq),
      (seq) =>
        Effect.gen(function* () {
          const event = Ticked.make({ aggregateId: crypto.randomUUID(), userId, data: { writer: 0, seq } })
          const result = yield* answer(Effect.timeoutOption(storeAppender(event), hangGuard))
          if (result._tag === "Value" && Option.isNone(result.value)) {
            failures.add("append hung", `append ${seq}`)
          } else if (result._tag === "Value") {
            failures.add("append acknowledged by a server that never answered", `append ${seq}`)
          } else if (result._tag === "Untyped") {
            failures.add("untyped error", result.description)
          } else if (!isConnectTimeout(result.error)) {
            failures.add("failed otherwise than by the connect timeout", result.error.message)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    // No migrations: the store's layer runs no statement, so it builds against a server that never answers.
    yield* send.pipe(Effect.provide(Layer.provideMerge(EventStore.layer(), Layer.orDie(client))))
    return failures
  }).pipe(Effect.scoped)

describe("reliability: database unresponsive", () => {
  it.live("appends to a server that never answers fail with the connect timeout's typed error, not by hanging", (ctx) =>
    Effect.gen(function* () {
      const failures = yield* appendToUnresponsive(8, connectTimeout)
      yield* expectNone(ctx, 8, failures)
    })
  )

  it.live("broken variant caught: a client without a connect timeout hangs", (ctx) =>
    Effect.gen(function* () {
      const failures = yield* appendToUnresponsive(8, Duration.infinity)
      yield* expectCaught(ctx, 8, failures, ["append hung"])
    })
  )
})
