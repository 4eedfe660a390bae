/**
 * Duplicate delivery: the same append, with the same event ids, sent 1,000 times at once, as a client that retries
 * on every timeout might. It is stored exactly once, exactly one call is told it stored it, and every other call is
 * answered with the stored event (`duplicate: true`), never with an error: whichever expected version it carries,
 * a retry of an append that succeeded is that success, not a conflict.
 *
 * The checker is shown to catch an appender that drops the event id (every delivery stored again) and a plain
 * INSERT without the idempotency check (the deliveries after the first fail with raw driver errors).
 */
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventDefinition from "../../packages/core/src/EventDefinition.ts"
import * as EventStore from "../../packages/core/src/EventStore.ts"
import { answer, expectCaught, expectNone, Failures } from "./support/Battery.ts"
import * as Stores from "./support/Stores.ts"

const PaymentReceived = EventDefinition.make("payment.received", {
  aggregateType: "payment",
  schema: Schema.Struct({ amount: Schema.Int, line: Schema.Int })
})

type Appender = (
  events: ReadonlyArray<EventDefinition.Pending>,
  expectedVersion: EventStore.ExpectedVersion
) => Effect.Effect<ReadonlyArray<EventStore.Appended>, unknown, EventStore.EventStore | SqlClient.SqlClient>

const storeAppender: Appender = (events, expectedVersion) =>
  EventStore.EventStore.use((store) => store.append(events, { expectedVersion }))

/** Broken: a fresh event id for every delivery, as when the id is made where the request is sent. */
const forgetful: Appender = (events, expectedVersion) =>
  storeAppender(
    events.map((event) => ({ ...event, eventId: crypto.randomUUID() })),
    expectedVersion
  )

const connections = 32

// A call that has not answered by then never will: the pool serves the calls 32 at a time, each in a few ms.
const answerWithin = "60 seconds"

/**
 * Sends one append `deliveries` times at once: `size` events into a stream that already holds `before` events,
 * with the given expected version. Then checks the answers and the table.
 */
const deliver = (options: {
  readonly schema: string
  readonly deliveries: number
  readonly before: number
  readonly size: number
  readonly expectedVersion: EventStore.ExpectedVersion
  readonly appender: Appender
}) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const failures = new Failures()
    const userId = crypto.randomUUID()
    const stream = crypto.randomUUID()
    const make = (line: number) =>
      PaymentReceived.make({ aggregateId: stream, userId, eventId: crypto.randomUUID(), data: { amount: 100, line } })
    if (options.before > 0) {
      yield* store.append(Array.from({ length: options.before }, (_, line) => make(line)))
    }
    const events = Array.from({ length: options.size }, (_, index) => make(options.before + index))
    // Every connection of the pool open first, so that the deliveries race each other on the server rather than
    // queue one after another for connections that are still being opened.
    const sql = yield* SqlClient.SqlClient
    yield* Effect.forEach(Array.from({ length: connections }), () => sql`SELECT pg_sleep(0.05)`, {
      concurrency: "unbounded",
      discard: true
    })

    const answers = yield* Effect.forEach(
      Array.from({ length: options.deliveries }),
      () => answer(options.appender(events, options.expectedVersion).pipe(Effect.timeoutOption(answerWithin))),
      { concurrency: "unbounded" }
    )

    const rows = (yield* Stores.storedRows(options.schema)).filter((row) => row.aggregate_id === stream)
    const storedById = new Map(rows.map((row) => [row.id, row]))
    if (rows.length !== options.before + options.size) {
      failures.add(
        "stored more than once",
        `the stream holds ${rows.length} events, not ${options.before + options.size}`
      )
    }
    const originals = new Map<string, number>()
    for (const result of answers) {
      if (result._tag !== "Value" || Option.isNone(result.value)) {
        failures.add(
          "call not answered with the stored event",
          result._tag === "Typed"
            ? `${result.error._tag}: ${result.error.message}`
            : result._tag === "Untyped"
              ? result.description
              : `no answer within ${answerWithin}`
        )
        continue
      }
      for (const [index, appended] of result.value.value.entries()) {
        const sent = events[index]!
        const stored = storedById.get(sent.eventId!)
        if (
          stored === undefined ||
          appended.eventId !== sent.eventId ||
          appended.streamVersion !== stored.stream_version ||
          appended.globalPosition.toString() !== stored.global_position
        ) {
          const where = stored === undefined ? "nowhere" : `${stored.stream_version}/${stored.global_position}`
          failures.add(
            "answer disagrees with the table",
            `event ${sent.eventId} answered at ${appended.streamVersion}/${appended.globalPosition}, stored at ${where}`
          )
        }
        if (!appended.duplicate) originals.set(sent.eventId!, (originals.get(sent.eventId!) ?? 0) + 1)
      }
    }
    for (const event of events) {
      const count = originals.get(event.eventId!) ?? 0
      if (count !== 1)
        failures.add("not exactly one call told it stored the event", `${count} calls for ${event.eventId}`)
    }
    return failures
  })

const withStore = <A, E>(f: (schema: string) => Effect.Effect<A, E, EventStore.EventStore | SqlClient.SqlClient>) => {
  const schema = Stores.uniqueSchema()
  return f(schema).pipe(Effect.provide(Stores.layer(schema, Stores.postgres({ maxConnections: connections }))))
}

describe("reliability: duplicate delivery", () => {
  const cases = [
    { title: "a create with expected version no_stream", before: 0, size: 1, expectedVersion: "no_stream" },
    { title: "a batch of 3 with expected version 2", before: 2, size: 3, expectedVersion: 2 },
    { title: "an append with expected version any", before: 1, size: 1, expectedVersion: "any" }
  ] as const

  for (const scenario of cases) {
    it.live(`the same event ids sent 1,000 times at once: ${scenario.title}`, (ctx) =>
      withStore((schema) =>
        Effect.gen(function* () {
          const failures = yield* deliver({ schema, deliveries: 1_000, ...scenario, appender: storeAppender })
          yield* expectNone(ctx, 1_000, failures)
        })
      )
    )
  }

  it.live("broken variant caught: an appender that drops the event id", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const failures = yield* deliver({
          schema,
          deliveries: 200,
          before: 0,
          size: 1,
          expectedVersion: "any",
          appender: forgetful
        })
        yield* expectCaught(ctx, 200, failures, ["stored more than once"])
      })
    )
  )

  it.live("broken variant caught: a plain INSERT without the idempotency check", (ctx) =>
    withStore((schema) =>
      Effect.gen(function* () {
        const plain: Appender = (events) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const [event] = events
            const [row] = yield* sql<{ readonly global_position: string }>`INSERT INTO ${sql(`${schema}.events`)}
              (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, stream_version)
              VALUES (${event!.eventId!}::uuid, ${event!.eventType}, ${event!.aggregateId}::uuid, ${event!.aggregateType},
                ${event!.userId!}::uuid, now(), ${event!.version}, ${JSON.stringify(yield* event!.encode)}::jsonb, 1)
              RETURNING global_position::text AS global_position`.withoutTransform
            return [
              {
                eventId: event!.eventId!,
                aggregateType: event!.aggregateType,
                aggregateId: event!.aggregateId,
                streamVersion: 1,
                globalPosition: BigInt(row!.global_position),
                duplicate: false
              }
            ]
          })
        const failures = yield* deliver({
          schema,
          deliveries: 200,
          before: 0,
          size: 1,
          expectedVersion: "no_stream",
          appender: plain
        })
        yield* expectCaught(ctx, 200, failures, ["call not answered with the stored event"])
      })
    )
  )
})
