/**
 * The feed's tests' database: the core's services over a fresh events table (see `TestDatabase`), with the `Feed`
 * and `Consumers` over the same table, and small helpers to write events.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Consumers from "../../src/Consumers.ts"
import type * as EventDefinition from "../../src/EventDefinition.ts"
import * as EventRegistry from "../../src/EventRegistry.ts"
import * as EventStore from "../../src/EventStore.ts"
import * as Checkpoint from "../../src/Checkpoint.ts"
import * as Feed from "../../src/Feed.ts"
import { GstAdded, OrganizationCreated, uuid } from "./Fixtures.ts"
import * as TestDatabase from "./TestDatabase.ts"

/** The core's services, the feed and the consumers over a fresh events table in `schema`. */
export const layerWith = (schema: string) =>
  Consumers.layer.pipe(Layer.provideMerge(Feed.layer({ schema })), Layer.provideMerge(TestDatabase.layerWith(schema)))

/** A consumer's settings for tests: the raw registry, small batches, and polls and lease attempts in milliseconds. */
export const quickConsumer = {
  registry: EventRegistry.raw,
  batchSize: 10,
  pollInterval: "50 millis",
  leaseDuration: "30 seconds",
  acquireInterval: "50 millis"
} as const

/** An organization.created event of a new organization. */
export const created = (aggregateId = uuid(), name = "Acme") =>
  OrganizationCreated.make({
    aggregateId,
    userId: uuid(),
    data: { name, type: "corporation", email: "a@acme.test", country: "IN" }
  })

/** An organization.gst.added event. */
export const gst = (aggregateId = uuid(), gstin = "29A") =>
  GstAdded.make({ aggregateId, userId: uuid(), data: { gstin, state: "KA" } })

/**
 * Appends `event` in a transaction that then stays open, so that the event holds its position uncommitted (on PGlite,
 * the one connection too); `commit` lets the transaction end.
 */
export const openAppend = (event: EventDefinition.Pending) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const sql = yield* SqlClient.SqlClient
    const wrote = yield* Deferred.make<string>()
    const release = yield* Deferred.make<void>()
    const fiber = yield* sql
      .withTransaction(
        Effect.gen(function* () {
          const [appended] = yield* store.append([event])
          yield* Deferred.succeed(wrote, appended!.eventId)
          yield* Deferred.await(release)
        })
      )
      .pipe(Effect.forkChild)
    const eventId = yield* Deferred.await(wrote)
    return { eventId, commit: Effect.andThen(Deferred.succeed(release, undefined), Fiber.join(fiber)) }
  })

/** Appends `count` GST events to new organizations, one append (and transaction) each; returns their ids. */
export const appendMany = (count: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const ids: Array<string> = []
    for (let i = 0; i < count; i++) {
      const [appended] = yield* store.append([gst(uuid(), String(i))])
      ids.push(appended!.eventId)
    }
    return ids
  })

/**
 * Waits until the feed's status shows nothing committed and unreadable. `read`, `head` and `live: false` streams need
 * no wait (they read everything committed before the call); this is for what follows a live reader, which moves to
 * a commit once the commits before it are done.
 */
export const readable = Effect.gen(function* () {
  const feed = yield* Feed.Feed
  yield* feed.status.pipe(
    Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (status) => status.pending === 0 })
  )
})

/**
 * Every committed event of the table in `schema`, in feed order (commit sequence, then global position), read from
 * the tables themselves. The ORDER BY names the columns qualified: unqualified, it would sort by the text the select
 * list renames them to.
 */
export const committed = (schema: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      readonly id: string
      readonly commit_sequence: string
      readonly global_position: string
    }>`
      SELECT e.id, c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
      FROM ${sql(`${schema}.events_commits`)} c JOIN ${sql(`${schema}.events`)} e ON e.transaction_id = c.transaction_id
      ORDER BY c.commit_sequence, e.global_position`
    return rows.map((row) => ({
      eventId: row.id,
      checkpoint: Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position))
    }))
  })

/** The feed position of the last committed event of the table in `schema`, readable yet or not. */
export const lastCommitted = (schema: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly commit_sequence: string; readonly global_position: string }>`SELECT
      c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
      FROM ${sql(`${schema}.events_commits`)} c JOIN ${sql(`${schema}.events`)} e ON e.transaction_id = c.transaction_id
      ORDER BY c.commit_sequence DESC, e.global_position DESC LIMIT 1`
    const row = rows[0]
    return row === undefined
      ? Checkpoint.start
      : Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position))
  })

/** One consumer's lag, once it has a row. */
export const lagOf = (name: string) =>
  Effect.gen(function* () {
    const consumers = yield* Consumers.Consumers
    return Option.fromUndefinedOr((yield* consumers.lag).find((row) => row.name === name))
  }).pipe(
    Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: Option.isSome }),
    Effect.map((lag) => Option.getOrThrow(lag))
  )

/** Waits until the consumer has committed every event committed so far in the table in `schema`. */
export const caughtUp = (schema: string, name: string) =>
  Effect.gen(function* () {
    const last = yield* lastCommitted(schema)
    return yield* lagOf(name).pipe(
      Effect.repeat({
        schedule: Schedule.spaced("20 millis"),
        until: (lag) => Checkpoint.compare(lag.checkpoint, last) >= 0
      })
    )
  })
