/**
 * Concurrent writers: 16 writers make 500 appends each with an expected version onto 4 streams, picking a stream at
 * random for every new event. A writer that meets a conflict learns the stream's version from it and sends the same
 * event again with its next append. Afterwards every stream's versions run 1..n without a gap or a repeat, every
 * acknowledged append is stored where it was acknowledged, none is stored twice, every event sits at the version its
 * writer expected, and every refusal on the way was a typed `ConcurrencyConflict` that named the stream and its
 * versions.
 *
 * The checker is shown to catch each of those faults on a broken variant: an appender that ignores the expected
 * version, a table without the unique stream-version key, a read-then-insert appender whose conflicts are raw
 * driver errors, and one that acknowledges inside a transaction that then rolls back.
 */
import { describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as AnnalError from "../../packages/core/src/AnnalError.ts"
import * as EventDefinition from "../../packages/core/src/EventDefinition.ts"
import * as EventStore from "../../packages/core/src/EventStore.ts"
import { answer, expectCaught, expectNone, Failures } from "./support/Battery.ts"
import * as Stores from "./support/Stores.ts"

const LedgerAppended = EventDefinition.make("ledger.appended", {
  aggregateType: "ledger",
  schema: Schema.Struct({ writer: Schema.Int, seq: Schema.Int, expected: Schema.Int })
})

/** One append as a writer sees it: the event, at the version it expects its stream to be at. */
type Appender = (
  event: EventDefinition.Pending,
  expected: number
) => Effect.Effect<EventStore.Appended, unknown, EventStore.EventStore | SqlClient.SqlClient>

interface Acknowledged {
  readonly writer: number
  readonly seq: number
  readonly eventId: string
  readonly stream: string
  readonly streamVersion: number
}

/** The real thing: the store's append with the expected version. */
const storeAppender: Appender = (event, expected) =>
  EventStore.EventStore.use((store) =>
    Effect.map(
      store.append([event], { expectedVersion: expected === 0 ? "no_stream" : expected }),
      (appended) => appended[0]!
    )
  )

/** Broken: the append without its expected version, as if the store ignored it. */
const ignoring: Appender = (event) =>
  EventStore.EventStore.use((store) => Effect.map(store.append([event]), (appended) => appended[0]!))

class RolledBackAfterAcknowledging extends Data.TaggedError("RolledBackAfterAcknowledging")<{
  readonly appended: EventStore.Appended
}> {}

/** Broken: acknowledges from inside a transaction that then rolls back, one time in five. */
const acknowledgingEarly: Appender = (event, expected) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EventStore.EventStore
    const rollBack = (yield* Random.nextIntBetween(1, 5)) === 1
    const append = store.append([event], { expectedVersion: expected === 0 ? "no_stream" : expected })
    return yield* sql
      .withTransaction(
        Effect.flatMap(append, ([appended]) =>
          rollBack ? Effect.fail(new RolledBackAfterAcknowledging({ appended: appended! })) : Effect.succeed(appended!)
        )
      )
      .pipe(Effect.catchTag("RolledBackAfterAcknowledging", (error) => Effect.succeed(error.appended)))
  })

// Losing this many races in a row for one append, against three other writers on average, is starvation, not luck.
const maxAttempts = 200

/** Runs the writers, then checks the table against what they were told. */
const run = (options: {
  readonly schema: string
  readonly writers: number
  readonly appends: number
  readonly appender: Appender
}) =>
  Effect.gen(function* () {
    const failures = new Failures()
    const acknowledged: Array<Acknowledged> = []
    const streams = Array.from({ length: 4 }, () => crypto.randomUUID())
    const userId = crypto.randomUUID()
    let conflicts = 0

    const writer = Effect.fnUntraced(function* (writer: number) {
      // What this writer believes each stream's version to be; only conflicts and its own appends teach it.
      const known = new Map<string, number>()
      // The append in hand: after a conflict the writer sends the same event again, at the version it learned.
      let pending: { readonly seq: number; readonly stream: string; readonly eventId: string } | undefined
      let attempts = 0
      for (let call = 0, seq = 0; call < options.appends; call++) {
        if (pending === undefined) {
          pending = {
            seq: seq++,
            stream: streams[yield* Random.nextIntBetween(0, streams.length - 1)]!,
            eventId: crypto.randomUUID()
          }
          attempts = 0
        }
        const { stream, eventId } = pending
        if (++attempts === maxAttempts) failures.add("writer starved", `writer ${writer} append ${pending.seq}`)
        const expected = known.get(stream) ?? 0
        const event = LedgerAppended.make({
          aggregateId: stream,
          userId,
          eventId,
          data: { writer, seq: pending.seq, expected }
        })
        const result = yield* answer(options.appender(event, expected))
        if (result._tag === "Value") {
          const appended = result.value
          if (appended.streamVersion !== expected + 1 || appended.duplicate) {
            failures.add(
              "lost update",
              `writer ${writer} expected ${expected} and was acknowledged at ${appended.streamVersion}`
            )
          }
          known.set(stream, appended.streamVersion)
          acknowledged.push({ writer, seq: pending.seq, eventId, stream, streamVersion: appended.streamVersion })
          pending = undefined
        } else if (result._tag === "Typed" && result.error instanceof AnnalError.ConcurrencyConflict) {
          conflicts++
          const conflict = result.error
          const sent = expected === 0 ? "no_stream" : expected
          if (
            conflict.aggregateId !== stream ||
            conflict.expectedVersion !== sent ||
            conflict.actualVersion <= expected
          ) {
            failures.add("conflict with wrong versions", conflict.message)
          }
          known.set(stream, conflict.actualVersion)
        } else {
          failures.add(
            "error other than a typed ConcurrencyConflict",
            result._tag === "Typed" ? `${result.error._tag}: ${result.error.message}` : result.description
          )
          // Whatever the writer believed may be stale now; the next conflict will tell it.
          known.delete(stream)
        }
      }
    })

    yield* Effect.forEach(
      Array.from({ length: options.writers }, (_, index) => index),
      writer,
      { concurrency: "unbounded", discard: true }
    )

    const rows = yield* Stores.storedRows(options.schema)
    const Payload = Schema.decodeUnknownSync(LedgerAppended.schema)
    const versionsByStream = new Map<string, Array<number>>()
    const storedBy = new Map<string, { readonly id: string; readonly streamVersion: number }>()
    for (const row of rows) {
      const versions = versionsByStream.get(row.aggregate_id) ?? []
      versions.push(row.stream_version)
      versionsByStream.set(row.aggregate_id, versions)
      const payload = Payload(row.data)
      const key = `${payload.writer}/${payload.seq}`
      if (storedBy.has(key)) failures.add("append stored twice", `writer ${payload.writer} append ${payload.seq}`)
      storedBy.set(key, { id: row.id, streamVersion: row.stream_version })
      if (row.stream_version !== payload.expected + 1) {
        failures.add(
          "lost update",
          `stored at ${row.stream_version}, written by a writer that expected ${payload.expected}`
        )
      }
    }
    for (const [stream, versions] of versionsByStream) {
      versions.sort((a, b) => a - b)
      for (const [index, version] of versions.entries()) {
        if (version !== index + 1) {
          failures.add("stream versions not contiguous", `stream ${stream}: position ${index + 1} holds ${version}`)
          break
        }
      }
    }
    for (const ack of acknowledged) {
      const stored = storedBy.get(`${ack.writer}/${ack.seq}`)
      if (stored === undefined || stored.id !== ack.eventId || stored.streamVersion !== ack.streamVersion) {
        const where = stored === undefined ? "nowhere" : `at ${stored.streamVersion}`
        failures.add(
          "acknowledged append lost",
          `writer ${ack.writer} append ${ack.seq} acknowledged at ${ack.streamVersion}, stored ${where}`
        )
      }
    }
    return {
      failures,
      cases: options.writers * options.appends,
      note: `${acknowledged.length} appends acknowledged, ${conflicts} conflicts met and retried`
    }
  })

/** Runs `f` over a fresh events table of its own on the shared PostgreSQL, one connection per writer. */
const withStore = <A, E>(f: (schema: string) => Effect.Effect<A, E, EventStore.EventStore | SqlClient.SqlClient>) => {
  const schema = Stores.uniqueSchema()
  return f(schema).pipe(Effect.provide(Stores.layer(schema, Stores.postgres({ maxConnections: 16 }))))
}

describe("reliability: concurrent writers", () => {
  it.live("16 writers × 500 appends with expected version onto 4 streams", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const { failures, cases, note } = yield* run({ schema, writers: 16, appends: 500, appender: storeAppender })
        yield* expectNone(ctx, cases, failures, note)
      })
    )
  )

  it.live("broken variant caught: an appender that ignores the expected version", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const { failures, cases } = yield* run({ schema, writers: 16, appends: 50, appender: ignoring })
        yield* expectCaught(ctx, cases, failures, ["lost update"])
      })
    )
  )

  it.live("broken variant caught: a table without its unique stream-version key", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`ALTER TABLE ${sql(`${schema}.events`)} DROP CONSTRAINT events_stream_version_key`
        const { failures, cases } = yield* run({ schema, writers: 16, appends: 50, appender: storeAppender })
        yield* expectCaught(ctx, cases, failures, ["stream versions not contiguous"])
      })
    )
  )

  it.live("broken variant caught: a read-then-insert appender whose conflicts are raw driver errors", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const naive: Appender = (event) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const table = sql(`${schema}.events`)
            const [head] = yield* sql<{ readonly head: number }>`SELECT COALESCE(max(stream_version), 0)::int AS head
              FROM ${table} WHERE aggregate_id = ${event.aggregateId}::uuid`.withoutTransform
            const data = yield* event.encode
            const streamVersion = (head?.head ?? 0) + 1
            const [row] = yield* sql<{ readonly global_position: string }>`INSERT INTO ${table}
              (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
              VALUES (${event.eventId!}::uuid, ${event.eventType}, ${event.aggregateId}::uuid, ${event.aggregateType},
                ${event.userId!}::uuid, now(), ${event.version}, ${JSON.stringify(data)}::jsonb,
                ${streamVersion})
              RETURNING global_position::text AS global_position`.withoutTransform
            return {
              eventId: event.eventId!,
              aggregateType: event.aggregateType,
              aggregateId: event.aggregateId,
              streamVersion,
              globalPosition: BigInt(row!.global_position),
              duplicate: false
            }
          })
        const { failures, cases } = yield* run({ schema, writers: 16, appends: 50, appender: naive })
        yield* expectCaught(ctx, cases, failures, ["error other than a typed ConcurrencyConflict"])
      })
    )
  )

  it.live("broken variant caught: acknowledging inside a transaction that then rolls back", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const { failures, cases } = yield* run({ schema, writers: 16, appends: 50, appender: acknowledgingEarly })
        yield* expectCaught(ctx, cases, failures, ["acknowledged append lost"])
      })
    )
  )
})
