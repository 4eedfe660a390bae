/**
 * The repository of events: appends with optimistic concurrency per aggregate stream, and the original design's queries
 * (`getByAggregate`, `getByType`, `getByUser`, `getByTimeRange`), each a keyset-paginated page or a stream in
 * constant memory. A layer that needs a `SqlClient`; the table is the one its options name.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import {
  ConcurrencyConflict,
  ConcurrentWrite,
  EventIdConflict,
  InvalidCursor,
  InvalidEvent,
  InvalidQuery,
  StorageError
} from "./AnnalError.ts"
import * as Event from "./Event.ts"
import type * as EventDefinition from "./EventDefinition.ts"
import * as EventRegistry from "./EventRegistry.ts"
import * as EventTable from "./EventTable.ts"
import {
  type AppendOutcome,
  type AppendRow,
  makeAppend,
  makeAppendOne,
  makeLockStreams,
  streamLockText
} from "./internal/store/append.ts"
import { channelOf } from "./internal/feed/migration.ts"
import * as Notifier from "./internal/feed/notifier.ts"
import { canonicalParts, microsOfMillis } from "./internal/integrity/chain.ts"
import * as Cursor from "./internal/store/cursor.ts"
import { findProblem } from "./internal/store/json.ts"
import { type Filter, makeCount, makeRead } from "./internal/store/read.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"
import { generateEventId } from "./internal/store/uuid.ts"

/** The version a stream must be at for an append to proceed: any, no stream yet, or exactly n. */
export type ExpectedVersion = "any" | "no_stream" | number

/** Options of `append`. */
export interface AppendOptions {
  /** Defaults to `"any"`. Anything else needs all the events of the append to be in one stream. */
  readonly expectedVersion?: ExpectedVersion
}

/** Where one appended event is. */
export interface Appended {
  readonly eventId: string
  readonly aggregateType: string
  readonly aggregateId: string
  readonly streamVersion: number
  readonly globalPosition: bigint
  /** An event with this id was already stored, so nothing was written for it; its stored position is given. */
  readonly duplicate: boolean
}

/** The filters that queries combine; `from` is inclusive and `to` exclusive, on the event's `timestamp`. */
export interface EventFilter {
  readonly eventTypes?: ReadonlyArray<string>
  readonly aggregateType?: string
  readonly aggregateId?: string
  readonly userId?: string
  readonly correlationId?: string
  readonly from?: DateTime.Utc
  readonly to?: DateTime.Utc
}

/** Which page to read: at most `limit` events after `cursor`, oldest first unless `direction` is backward. */
export interface PageOptions {
  readonly limit?: number
  readonly cursor?: string
  readonly direction?: "forward" | "backward"
}

/** One page of events, and the cursor of the next when there may be one. */
export interface Page<E> {
  readonly events: ReadonlyArray<E>
  readonly nextCursor: Option.Option<string>
}

/** The errors an append can fail with. */
export type AppendError = ConcurrencyConflict | EventIdConflict | InvalidEvent | StorageError

/** The errors a query can fail with, besides the registry's decoding errors. */
export type QueryError = InvalidCursor | InvalidQuery | StorageError

/** The default and largest page sizes. */
export const defaultLimit = 100
export const maxLimit = 10_000

/** The event store service. */
export class EventStore extends Context.Service<
  EventStore,
  {
    /** Appends events atomically: all are stored, or none. */
    readonly append: (
      events: ReadonlyArray<EventDefinition.Pending>,
      options?: AppendOptions
    ) => Effect.Effect<ReadonlyArray<Appended>, AppendError>
    /** A page of the events that match `filter`. */
    readonly query: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      filter: EventFilter,
      page?: PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** How many events match `filter`. */
    readonly count: (filter: EventFilter) => Effect.Effect<number, QueryError>
    /** All the events that match `filter`, read page by page in constant memory. */
    readonly stream: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      filter: EventFilter,
      options?: { readonly batchSize?: number }
    ) => Stream.Stream<E, Err | QueryError>
    /** The whole stream of one aggregate, in order. */
    readonly getByAggregate: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      aggregateType: string,
      aggregateId: string
    ) => Effect.Effect<ReadonlyArray<E>, Err | QueryError>
    /** A page of the events of one type, combined with any other filters. */
    readonly getByType: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      eventType: string,
      options?: EventFilter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** A page of what one user did, combined with any other filters. */
    readonly getByUser: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      userId: string,
      options?: EventFilter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** A page of the events that happened in `[from, to)`, combined with any other filters. */
    readonly getByTimeRange: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      from: DateTime.Utc,
      to: DateTime.Utc,
      options?: EventFilter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
  }
>()("@annal/core/EventStore") {}

/** Builds the store over the `SqlClient` in context, for the events table the options name. */
export const make = Effect.fnUntraced(function* (options?: EventTable.Options) {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EventTable.make(options)
  const runAppend = makeAppend(sql, config)
  const runAppendOne = makeAppendOne(sql, config)
  const notifier = yield* Notifier.make(sql, channelOf(config))
  const lockStreams = makeLockStreams(sql)
  const read = makeRead(sql, config)
  const countRows = makeCount(sql, config)

  const append = Effect.fn("EventStore.append")(
    function* (events: ReadonlyArray<EventDefinition.Pending>, options?: AppendOptions) {
      const expectedVersion = options?.expectedVersion ?? "any"
      const expected = expectedVersion === "any" ? -1 : expectedVersion === "no_stream" ? 0 : expectedVersion
      if (!Number.isSafeInteger(expected) || expected < -1) {
        return yield* new InvalidEvent({
          eventType: events[0]?.eventType ?? "",
          field: "expectedVersion",
          reason: `${expectedVersion} is not a stream version`
        })
      }
      if (events.length === 0) return []
      const rows = yield* prepare(events)
      const streams = new Set(rows.map((row) => `${row.aggregate_type}/${row.aggregate_id}`))
      if (expected >= 0 && streams.size > 1) {
        return yield* new InvalidEvent({
          eventType: rows[0]!.event_type,
          field: "expectedVersion",
          reason: "an expected version other than any needs all the events of the append in one stream"
        })
      }
      const [single] = rows
      const fast = rows.length === 1 && single !== undefined ? yield* runAppendOne(single, expected) : []
      const outcomes: ReadonlyArray<AppendOutcome> =
        fast[0] !== undefined
          ? [
              {
                ...fastOutcome,
                ord: 0,
                stream_version: fast[0].stream_version,
                global_position: fast[0].global_position,
                head: fast[0].stream_version - 1
              }
            ]
          : yield* Effect.gen(function* () {
              // The locks and the statement after them must share a transaction: the locks are what make the
              // statement's fresh snapshot the latest state of its streams. Inside the caller's one, that one does.
              const inTransaction = Option.isSome(yield* Effect.serviceOption(sql.transactionService))
              const general = Effect.andThen(
                lockStreams(rows.map((row) => streamLockText(config, row.aggregate_type, row.aggregate_id))),
                runAppend(rows, expected)
              )
              return yield* inTransaction ? general : sql.withTransaction(general)
            })
      for (const [index, outcome] of outcomes.entries()) {
        const row = rows[index]!
        if (outcome.duplicate && outcome.same === false) {
          return yield* new EventIdConflict({
            eventId: row.id,
            aggregateType: outcome.stored_aggregate_type ?? "",
            aggregateId: outcome.stored_aggregate_id ?? ""
          })
        }
      }
      const refused = outcomes.findIndex((outcome) => !outcome.ok)
      if (refused >= 0) return yield* conflict(rows[refused]!, expectedVersion, outcomes[refused]!.head ?? 0)
      if (outcomes.some((outcome) => !outcome.duplicate)) yield* notifier.afterCommit
      return rows.map((row, index): Appended => {
        const outcome = outcomes[index]!
        return {
          eventId: row.id,
          aggregateType: row.aggregate_type,
          aggregateId: row.aggregate_id,
          streamVersion: outcome.stream_version!,
          globalPosition: BigInt(outcome.global_position!),
          duplicate: outcome.duplicate
        }
      })
    },
    Effect.catchTag("SqlError", (error) => Effect.fail(appendFailure(error)))
  )

  const query = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: EventFilter,
    page?: PageOptions
  ): Effect.Effect<Page<E>, Err | QueryError> =>
    Effect.gen(function* () {
      const limit = yield* validateLimit(page?.limit ?? defaultLimit)
      const checked = yield* validateFilter(filter)
      const after = page?.cursor === undefined ? undefined : yield* Cursor.decode(page.cursor)
      const direction = page?.direction ?? "forward"
      // One row more than the page tells whether there is a next page without a count.
      const rows = yield* read(checked, { after, direction, limit: limit + 1 }).pipe(
        Effect.catchTag("SqlError", stored("EventStore.query"))
      )
      const events = yield* EventRegistry.decodeAll(registry, rows.slice(0, limit))
      const last = rows[limit - 1]
      return {
        events,
        nextCursor:
          rows.length > limit && last !== undefined ? Option.some(Cursor.encode(last.globalPosition)) : Option.none()
      }
    }).pipe(Effect.withSpan("EventStore.query"))

  const stream = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: EventFilter,
    options?: { readonly batchSize?: number }
  ): Stream.Stream<E, Err | QueryError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const batchSize = yield* validateLimit(options?.batchSize ?? 1000)
        const checked = yield* validateFilter(filter)
        return Stream.paginate(undefined as bigint | undefined, (after) =>
          read(checked, { after, direction: "forward", limit: batchSize }).pipe(
            Effect.catchTag("SqlError", stored("EventStore.stream")),
            Effect.flatMap((rows) =>
              Effect.map(EventRegistry.decodeAll(registry, rows), (events) => {
                const last = rows.at(-1)
                return [
                  events,
                  rows.length < batchSize || last === undefined ? Option.none() : Option.some(last.globalPosition)
                ] as const
              })
            )
          )
        )
      })
    )

  const getByAggregate = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    aggregateType: string,
    aggregateId: string
  ): Effect.Effect<ReadonlyArray<E>, Err | QueryError> =>
    Stream.runCollect(stream(registry, { aggregateType, aggregateId })).pipe(
      Effect.withSpan("EventStore.getByAggregate", { attributes: { aggregateType, aggregateId } })
    )

  const count = Effect.fn("EventStore.count")(function* (filter: EventFilter) {
    const checked = yield* validateFilter(filter)
    return yield* countRows(checked).pipe(Effect.catchTag("SqlError", stored("EventStore.count")))
  })

  return EventStore.of({
    append,
    query,
    count,
    stream,
    getByAggregate,
    getByType: (registry, eventType, options) => {
      const [filter, page] = split(options)
      return query(registry, { ...filter, eventTypes: [eventType] }, page).pipe(Effect.withSpan("EventStore.getByType"))
    },
    getByUser: (registry, userId, options) => {
      const [filter, page] = split(options)
      return query(registry, { ...filter, userId }, page).pipe(Effect.withSpan("EventStore.getByUser"))
    },
    getByTimeRange: (registry, from, to, options) => {
      const [filter, page] = split(options)
      return query(registry, { ...filter, from, to }, page).pipe(Effect.withSpan("EventStore.getByTimeRange"))
    }
  })
})

/** The store of the events table the options name (`public.events` by default), built when the layer is. */
export const layer = (options?: EventTable.Options): Layer.Layer<EventStore, never, SqlClient.SqlClient> =>
  Layer.effect(EventStore, make(options))

/** What the fast path's written event reports, but for its position. */
const fastOutcome = { duplicate: false, same: null, stored_aggregate_type: null, stored_aggregate_id: null, ok: true }

/**
 * A failed append. A unique violation there is a writer that took no stream lock (hand-written SQL) or a snapshot
 * older than the stream's head (REPEATABLE READ or SERIALIZABLE): the transaction is aborted, and running it again
 * is what helps, so it is retryable whatever the driver says.
 */
const appendFailure = (error: SqlError): StorageError => {
  const failure = fromSqlError("EventStore.append", error)
  return error.reason._tag === "UniqueViolation"
    ? new StorageError({ operation: failure.operation, reason: new ConcurrentWrite(), detail: failure.detail })
    : failure
}

const stored = (operation: string) => (error: SqlError) => Effect.fail(fromSqlError(operation, error))

/** Separates a query's filters from its paging. */
const split = (options: (EventFilter & PageOptions) | undefined): readonly [EventFilter, PageOptions] => {
  const { cursor, direction, limit, ...filter } = options ?? {}
  return [
    filter,
    {
      ...(cursor === undefined ? {} : { cursor }),
      ...(direction === undefined ? {} : { direction }),
      ...(limit === undefined ? {} : { limit })
    }
  ]
}

const conflict = (row: AppendRow, expectedVersion: ExpectedVersion, actualVersion: number) =>
  Effect.fail(
    new ConcurrencyConflict({
      aggregateType: row.aggregate_type,
      aggregateId: row.aggregate_id,
      expectedVersion,
      actualVersion
    })
  )

/** Validates and encodes the events of an append, in order; the first problem refuses the whole append. */
const prepare = Effect.fnUntraced(function* (events: ReadonlyArray<EventDefinition.Pending>) {
  const now = yield* DateTime.now
  const seen = new Set<string>()
  const rows: Array<AppendRow> = []
  for (const [ord, event] of events.entries()) {
    const invalid = (field: string, reason: string) => new InvalidEvent({ eventType: event.eventType, field, reason })
    if (!Event.eventTypePattern.test(event.eventType) || event.eventType.length > 100) {
      return yield* invalid("eventType", "must be lowercase dotted segments, {aggregate}.{action}, at most 100 long")
    }
    if (!Event.aggregateTypePattern.test(event.aggregateType) || event.aggregateType.length > 50) {
      return yield* invalid("aggregateType", "must be one lowercase segment, at most 50 long")
    }
    if (!Event.isUuid(event.aggregateId)) return yield* invalid("aggregateId", "must be a UUID")
    if (event.userId === undefined)
      return yield* invalid("userId", "is missing: give it, or emit through EventEmitter inside an EventContext")
    if (!Event.isUuid(event.userId)) return yield* invalid("userId", "must be a UUID")
    const eventId = event.eventId ?? generateEventId()
    if (!Event.isUuid(eventId)) return yield* invalid("eventId", "must be a UUID")
    if (seen.has(eventId.toLowerCase())) return yield* invalid("eventId", "appears twice in one append")
    seen.add(eventId.toLowerCase())
    const data = yield* event.encode.pipe(Effect.mapError((error) => invalid("data", error.message)))
    const metadata = event.metadata ?? {}
    const problem = findProblem(data, "data") ?? findProblem(metadata, "metadata")
    if (problem !== undefined) return yield* invalid(problem.path, problem.reason)
    const timestamp = event.timestamp ?? now
    if (!isStorableInstant(timestamp)) {
      return yield* invalid("timestamp", "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z")
    }
    const row = {
      ord,
      id: eventId.toLowerCase(),
      event_type: event.eventType,
      aggregate_type: event.aggregateType,
      aggregate_id: event.aggregateId.toLowerCase(),
      user_id: event.userId.toLowerCase(),
      timestamp: DateTime.formatIso(timestamp),
      version: event.version,
      data,
      metadata,
      correlation_id: metadata.correlationId ?? null,
      causation_id: metadata.causationId ?? null
    }
    // The hash chain's record of the event, exactly as the verifier will read it back (see internal/integrity/chain.ts).
    const canonical = canonicalParts({
      eventId: row.id,
      eventType: row.event_type,
      aggregateType: row.aggregate_type,
      aggregateId: row.aggregate_id,
      userId: row.user_id,
      timestamp: microsOfMillis(DateTime.toEpochMillis(timestamp)),
      version: row.version,
      data,
      metadata,
      correlationId: row.correlation_id,
      causationId: row.causation_id
    })
    rows.push({ ...row, canonical_head: canonical.head, canonical_tail: canonical.tail })
  }
  return rows
})

const validateLimit = (limit: number): Effect.Effect<number, InvalidQuery> =>
  Number.isSafeInteger(limit) && limit >= 1 && limit <= maxLimit
    ? Effect.succeed(limit)
    : Effect.fail(new InvalidQuery({ field: "limit", reason: `must be an integer from 1 to ${maxLimit}` }))

const invalidQuery = (field: string, reason: string) => Effect.fail(new InvalidQuery({ field, reason }))

/**
 * Whether an instant is one a filter can send: years 0001 to 9999 in UTC, the ones its ISO text names without a sign
 * or a fifth digit, which is what PostgreSQL reads as a timestamp. No event is stored outside them.
 */
const isStorableInstant = (instant: DateTime.Utc): boolean => {
  const millis = DateTime.toEpochMillis(instant)
  return millis >= firstInstant && millis <= lastInstant
}
// Parsed rather than built with Date.UTC, which reads the years 0 to 99 as 1900 to 1999.
const firstInstant = Date.parse("0001-01-01T00:00:00.000Z")
const lastInstant = Date.parse("9999-12-31T23:59:59.999Z")

const validateFilter = (filter: EventFilter): Effect.Effect<Filter, InvalidQuery> => {
  const invalid = invalidQuery
  if (filter.eventTypes !== undefined && filter.eventTypes.length === 0) {
    return invalid("eventTypes", "must name at least one type")
  }
  for (const field of ["aggregateId", "userId"] as const) {
    const value = filter[field]
    if (value !== undefined && !Event.isUuid(value)) return invalid(field, "must be a UUID")
  }
  if (filter.correlationId !== undefined && filter.correlationId.includes("\u0000")) {
    return invalid("correlationId", "contains \\u0000, which no stored correlation id can")
  }
  for (const field of ["from", "to"] as const) {
    const value = filter[field]
    if (value !== undefined && !isStorableInstant(value)) {
      return invalid(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z")
    }
  }
  if (filter.from !== undefined && filter.to !== undefined && DateTime.isGreaterThan(filter.from, filter.to)) {
    return invalid("from", "must not be after to")
  }
  return Effect.succeed(filter)
}
