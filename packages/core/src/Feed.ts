/**
 * The global feed: every event in commit order, resumable from a checkpoint, without ever skipping one. It reads
 * in `(transaction_id, global_position)` order and only below the oldest running transaction, so an event whose
 * transaction commits late is read late rather than passed over, as a reader of `global_position > last` would.
 * `batches` and `stream` catch up page by page, then follow live: a notification sent on commit wakes them, and
 * they poll as well, so a lost notification delays an event but never loses it. Pages are read only when the
 * stream is pulled, so a slow consumer slows the reads and nothing is buffered beyond one page.
 *
 * A long transaction anywhere on the server holds every reader back until it ends; `status` shows how far and why.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { InvalidCursor, InvalidQuery, type StorageError } from "./AnnalError.ts"
import * as Event from "./Event.ts"
import * as EventRegistry from "./EventRegistry.ts"
import { EventTable } from "./EventTable.ts"
import { channelOf } from "./internal/feedMigration.ts"
import { type FeedFilter, isFiltered, makeFeedRead } from "./internal/feedRead.ts"
import * as Wakeups from "./internal/feedWakeups.ts"
import { validateIdentifier } from "./Migrations.ts"

/**
 * A position in the feed: everything up to and including the event of this transaction id and global position has
 * been read. A checkpoint may also name a transaction id with position 0: everything before that transaction.
 */
export interface Checkpoint {
  readonly transactionId: bigint
  readonly globalPosition: bigint
}

/** The checkpoint before the first event. */
export const start: Checkpoint = { transactionId: 0n, globalPosition: 0n }

/** The checkpoint of one event: resuming from it reads what follows the event. */
export const checkpointOf = (event: Event.Event): Checkpoint => ({
  transactionId: event.transactionId,
  globalPosition: event.globalPosition
})

/** Orders checkpoints as the feed does: by transaction id, then by global position. */
export const compare = (self: Checkpoint, that: Checkpoint): -1 | 0 | 1 =>
  self.transactionId !== that.transactionId
    ? self.transactionId < that.transactionId
      ? -1
      : 1
    : self.globalPosition === that.globalPosition
      ? 0
      : self.globalPosition < that.globalPosition
        ? -1
        : 1

const prefix = "annal.feed.v1:"

/** The checkpoint as an opaque string, for an SSE event id or anything else a client hands back. */
export const encodeCheckpoint = (checkpoint: Checkpoint): string =>
  Base64Url.encode(`${prefix}${checkpoint.transactionId}:${checkpoint.globalPosition}`)

/** The checkpoint a string from `encodeCheckpoint` names, or `InvalidCursor` for anything else. */
export const decodeCheckpoint = (text: string): Effect.Effect<Checkpoint, InvalidCursor> => {
  const decoded = Base64Url.decodeString(text)
  const match = Result.isSuccess(decoded) ? /^annal\.feed\.v1:([0-9]{1,20}):([0-9]{1,19})$/.exec(decoded.success) : null
  if (match === null) return Effect.fail(new InvalidCursor({ cursor: text }))
  const transactionId = BigInt(match[1]!)
  const globalPosition = BigInt(match[2]!)
  // xid8 is unsigned 64-bit, global_position a bigint.
  return transactionId <= 18446744073709551615n && globalPosition <= 9223372036854775807n
    ? Effect.succeed({ transactionId, globalPosition })
    : Effect.fail(new InvalidCursor({ cursor: text }))
}

/**
 * Which events to read: all filters are optional, and combine. The feed reads in transaction order whatever the
 * filter, so a narrow filter scans the events between its matches; they are passed once, not on every read.
 */
export interface Filter {
  readonly eventTypes?: ReadonlyArray<string>
  readonly aggregateTypes?: ReadonlyArray<string>
  readonly aggregateId?: string
  readonly userId?: string
  readonly correlationId?: string
}

/** Where a read starts, and which events it reads. */
export interface ReadOptions extends Filter {
  /** Read what follows this checkpoint, given as a value or as the string `encodeCheckpoint` made; default `start`. */
  readonly after?: Checkpoint | string
  /** The page size: at most this many events per read (default 500). */
  readonly limit?: number
}

/** Options of `batches` and `stream`. */
export interface StreamOptions extends ReadOptions {
  /** Follow the feed once caught up (the default), or end the stream there. */
  readonly live?: boolean
  /** How often a live reader looks without having been woken (default 1 second). */
  readonly pollInterval?: Duration.Input
}

/**
 * Events read together, and the checkpoint to resume from after them. With a filter the checkpoint can be past the
 * last event, as events that do not match are passed too; a batch can then have no events at all.
 */
export interface Batch<E> {
  readonly events: ReadonlyArray<E>
  readonly checkpoint: Checkpoint
}

/** One event with its checkpoint. */
export interface Entry<E> {
  readonly event: E
  readonly checkpoint: Checkpoint
}

/** The oldest running transaction with a transaction id on the server: the one that holds the fence. */
export interface OpenTransaction {
  readonly pid: number
  readonly database: Option.Option<string>
  readonly applicationName: Option.Option<string>
  /** `active`, `idle in transaction`, ...; as `pg_stat_activity` reports it. */
  readonly state: Option.Option<string>
  /** Its 32-bit transaction id, as `pg_stat_activity` reports it. */
  readonly transactionId: string
  /** How long since the transaction began. */
  readonly age: Duration.Duration
  /** Its current or last statement, cut to 500 characters; hidden unless the role may see it. */
  readonly query: Option.Option<string>
}

/** How far the feed is behind what has committed, and why. */
export interface Status {
  /** Events of transactions below this id are readable; all others wait until the transactions before them end. */
  readonly fence: bigint
  /** The last readable event, or `start` when there is none. */
  readonly head: Checkpoint
  /** Committed events that readers cannot reach yet because an older transaction is still running. */
  readonly pending: number
  /** How long the oldest of those has waited. */
  readonly oldestPendingAge: Option.Option<Duration.Duration>
  /** The running transaction that holds the fence, when there is one. */
  readonly oldestTransaction: Option.Option<OpenTransaction>
}

/** The errors of the feed's reads, besides the registry's decoding errors. */
export type FeedError = InvalidCursor | InvalidQuery | StorageError

/** The default page size and the largest. */
export const defaultLimit = 500
export const maxLimit = 10_000

/** The default interval of a live reader's polling. */
export const defaultPollInterval: Duration.Duration = Duration.seconds(1)

/** The feed service. */
export class Feed extends Context.Service<
  Feed,
  {
    /** One page of the feed after a checkpoint: the events readable now, and where to resume. */
    readonly read: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: ReadOptions
    ) => Effect.Effect<Batch<E>, Err | FeedError>
    /** The feed page by page, as a stream of batches; each is emitted when it is read, and read when pulled. */
    readonly batches: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: StreamOptions
    ) => Stream.Stream<Batch<E>, Err | FeedError>
    /** The feed event by event, each with its checkpoint. */
    readonly stream: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: StreamOptions
    ) => Stream.Stream<Entry<E>, Err | FeedError>
    /** The checkpoint of the last readable event: reading after it gives only what commits from now on. */
    readonly head: Effect.Effect<Checkpoint, StorageError>
    /** How far the feed is behind, and the transaction that holds it there. */
    readonly status: Effect.Effect<Status, StorageError>
  }
>()("@annal/core/Feed") {}

/** Builds the feed over the `SqlClient` and `EventTable` in context, with its listener for commit notifications. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EventTable
  yield* validateIdentifier(config.schema)
  yield* validateIdentifier(config.table)
  const statements = makeFeedRead(sql, config)
  const wakeups = yield* Wakeups.make(channelOf(config))

  /** Reads one page; `full` tells whether more may be readable right away. */
  const readPage = Effect.fnUntraced(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: FeedFilter,
    after: Checkpoint,
    limit: number
  ) {
    const fence = yield* statements.fence
    const rows = yield* statements.page(filter, after, fence, limit)
    const events = yield* EventRegistry.decodeAll(registry, rows)
    const last = rows.at(-1)
    let checkpoint = last === undefined ? after : checkpointOf(last)
    const full = rows.length === limit
    if (!full && isFiltered(filter)) {
      // Every event below the fence was looked at: pass the ones that did not match too, so that a filtered reader
      // does not scan them again. The checkpoint stays an event's position, never the fence itself: a consumer
      // that stores it writes a transaction, which moves the fence, which would be progress without end.
      const passed = yield* statements.lastBelow(checkpoint, fence)
      if (passed !== undefined) checkpoint = passed
    }
    return { batch: { events, checkpoint }, full }
  })

  const read = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: ReadOptions
  ): Effect.Effect<Batch<E>, Err | FeedError> =>
    Effect.gen(function* () {
      const { after, filter, limit } = yield* validate(options)
      const { batch } = yield* readPage(registry, filter, after, limit)
      return batch
    }).pipe(Effect.withSpan("Feed.read"))

  const batches = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: StreamOptions
  ): Stream.Stream<Batch<E>, Err | FeedError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const { after, filter, limit } = yield* validate(options)
        const live = options?.live ?? true
        const pollInterval = yield* validatePollInterval(options?.pollInterval)
        interface State {
          readonly after: Checkpoint
          /** Set once caught up: the wake-up taken before the read that found nothing more. */
          readonly wait: Effect.Effect<void> | undefined
        }
        const step = Effect.fnUntraced(function* (state: State) {
          if (state.wait !== undefined) yield* Effect.raceFirst(state.wait, Effect.sleep(pollInterval))
          const wake = yield* wakeups.next
          const { batch, full } = yield* readPage(registry, filter, state.after, limit)
          const moved = compare(batch.checkpoint, state.after) > 0
          const emitted: ReadonlyArray<Batch<E>> = moved ? [batch] : []
          if (full) return [emitted, Option.some<State>({ after: batch.checkpoint, wait: undefined })] as const
          if (!live) return [emitted, Option.none<State>()] as const
          // Stream.paginate asks again at once after an empty emission, which now waits first.
          return [emitted, Option.some<State>({ after: batch.checkpoint, wait: wake })] as const
        })
        return Stream.paginate({ after, wait: undefined }, step)
      })
    ).pipe(Stream.withSpan("Feed.batches"))

  const stream = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: StreamOptions
  ): Stream.Stream<Entry<E>, Err | FeedError> =>
    batches(registry, options).pipe(
      Stream.map((batch) => batch.events.map((event): Entry<E> => ({ event, checkpoint: checkpointOf(event) }))),
      Stream.flattenIterable
    )

  const head: Effect.Effect<Checkpoint, StorageError> = Effect.gen(function* () {
    const fence = yield* statements.fence
    return (yield* statements.lastBelow(start, fence)) ?? start
  }).pipe(Effect.withSpan("Feed.head"))

  const status: Effect.Effect<Status, StorageError> = Effect.gen(function* () {
    const fence = yield* statements.fence
    const [last, pending, oldest] = yield* Effect.all([
      statements.lastBelow(start, fence),
      statements.pending(fence),
      statements.oldestTransaction
    ])
    return {
      fence,
      head: last ?? start,
      pending: Number(pending.count),
      oldestPendingAge: Option.map(Option.fromNullishOr(pending.oldest_millis), Duration.millis),
      oldestTransaction: Option.map(Option.fromUndefinedOr(oldest), (row): OpenTransaction => ({
        pid: row.pid,
        database: Option.fromNullishOr(row.database),
        applicationName: Option.fromNullishOr(row.applicationName),
        state: Option.fromNullishOr(row.state),
        transactionId: row.transactionId,
        age: Duration.millis(row.ageMillis),
        query: Option.fromNullishOr(row.query)
      }))
    }
  }).pipe(Effect.withSpan("Feed.status"))

  return Feed.of({ read, batches, stream, head, status })
})

/**
 * The feed, built when the layer is. Its listener lives as long as the layer and, on PostgreSQL, holds one pooled
 * connection for its `LISTEN`; every reader of the layer shares it.
 */
export const layer: Layer.Layer<Feed, never, SqlClient.SqlClient> = Layer.effect(Feed, make)

/** Checks a read's options and resolves its starting checkpoint. */
export const validate = (
  options: ReadOptions | undefined
): Effect.Effect<
  { readonly after: Checkpoint; readonly filter: FeedFilter; readonly limit: number },
  InvalidCursor | InvalidQuery
> =>
  Effect.gen(function* () {
    const after =
      options?.after === undefined
        ? start
        : typeof options.after === "string"
          ? yield* decodeCheckpoint(options.after)
          : options.after
    const limit = options?.limit ?? defaultLimit
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > maxLimit) {
      return yield* new InvalidQuery({ field: "limit", reason: `must be an integer from 1 to ${maxLimit}` })
    }
    const filter = yield* validateFilter(options ?? {})
    return { after, filter, limit }
  })

/** Checks the filter: each list, when given, names at least one well-formed type; ids are UUIDs. */
export const validateFilter = (filter: Filter): Effect.Effect<FeedFilter, InvalidQuery> => {
  const lists = [
    ["eventTypes", filter.eventTypes, Event.eventTypePattern],
    ["aggregateTypes", filter.aggregateTypes, Event.aggregateTypePattern]
  ] as const
  for (const [field, values, pattern] of lists) {
    if (values === undefined) continue
    if (values.length === 0) return Effect.fail(new InvalidQuery({ field, reason: "must name at least one type" }))
    const wrong = values.find((value) => !pattern.test(value))
    if (wrong !== undefined) {
      return Effect.fail(new InvalidQuery({ field, reason: `${JSON.stringify(wrong)} is not a well-formed type` }))
    }
  }
  for (const field of ["aggregateId", "userId"] as const) {
    const value = filter[field]
    if (value !== undefined && !Event.isUuid(value)) {
      return Effect.fail(new InvalidQuery({ field, reason: "must be a UUID" }))
    }
  }
  if (filter.correlationId !== undefined && filter.correlationId.includes("\u0000")) {
    return Effect.fail(
      new InvalidQuery({ field: "correlationId", reason: "contains \\u0000, which no stored correlation id can" })
    )
  }
  return Effect.succeed({
    eventTypes: filter.eventTypes,
    aggregateTypes: filter.aggregateTypes,
    aggregateId: filter.aggregateId?.toLowerCase(),
    userId: filter.userId?.toLowerCase(),
    correlationId: filter.correlationId
  })
}

const validatePollInterval = (input: Duration.Input | undefined): Effect.Effect<Duration.Duration, InvalidQuery> => {
  const interval = input === undefined ? Option.some(defaultPollInterval) : Duration.fromInput(input)
  return Option.isSome(interval) && Duration.toMillis(interval.value) > 0
    ? Effect.succeed(interval.value)
    : Effect.fail(new InvalidQuery({ field: "pollInterval", reason: "must be a positive duration" }))
}
