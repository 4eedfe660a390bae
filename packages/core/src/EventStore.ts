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
import * as CanonicalJson from "./CanonicalJson.ts"
import * as Event from "./Event.ts"
import type * as EventDefinition from "./EventDefinition.ts"
import * as EventRegistry from "./EventRegistry.ts"
import * as EventTable from "./EventTable.ts"
import {
  type AppendOutcome,
  type AppendRow,
  makeAppend,
  makeAppendOne,
  makeInsertChained,
  makeLockAndReadHeads,
  makeLockStreams,
  type ChainedColumns,
  type StreamHead,
  streamLockText
} from "./internal/store/append.ts"
import { channelOf } from "./internal/feed/migration.ts"
import * as Notifier from "./internal/feed/notifier.ts"
import { makeFeedRead } from "./internal/feed/read.ts"
import { canonicalPartsOfText, genesis, link, microsOfMillis } from "./internal/integrity/chain.ts"
import * as Cursor from "./internal/store/cursor.ts"
import * as HeadCache from "./internal/store/heads.ts"
import { findProblem } from "./internal/store/json.ts"
import * as Filter from "./Filter.ts"
import * as Metrics from "./Metrics.ts"
import { makeCount, makeLastPosition, makeRead } from "./internal/store/read.ts"
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
      filter: Filter.Filter,
      page?: PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** How many events match `filter`. */
    readonly count: (filter: Filter.Filter) => Effect.Effect<number, QueryError>
    /**
     * All the events that match `filter`, oldest first, read page by page in constant memory: a snapshot of the log
     * as the stream began. It holds every matching event whose transaction had committed when the stream began, and
     * none whose transaction committed after, even one that took a lower global position early and commits while
     * the stream is read (it would otherwise appear behind positions already read, or not at all). The bound is the
     * feed's fence, taken once at the start (waiting only for commits in flight), so no transaction is held open for
     * the stream's length. Inside a transaction that has appended, the stream leaves those appends out: they have not
     * committed (`getByAggregate` includes them).
     */
    readonly stream: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      filter: Filter.Filter,
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
      options?: Filter.Filter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** A page of what one user did, combined with any other filters. */
    readonly getByUser: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      userId: string,
      options?: Filter.Filter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** A page of the events that happened in `[from, to)`, combined with any other filters. */
    readonly getByTimeRange: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      from: DateTime.Utc,
      to: DateTime.Utc,
      options?: Filter.Filter & PageOptions
    ) => Effect.Effect<Page<E>, Err | QueryError>
    /** The events table this store reads and writes. */
    readonly table: EventTable.EventTable
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
  const lockAndReadHeads = makeLockAndReadHeads(sql, config)
  const insertChained = makeInsertChained(sql, config)
  const heads = HeadCache.make()
  const read = makeRead(sql, config)
  const lastPosition = makeLastPosition(sql, config)
  const feedStatements = makeFeedRead(sql, config)
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
      // One event is one stream: the common case skips building the set.
      const streams =
        rows.length === 1 ? undefined : new Set(rows.map((row) => `${row.aggregate_type}/${row.aggregate_id}`))
      yield* Effect.annotateCurrentSpan(spanAttributes(rows, streams))
      if (expected >= 0 && streams !== undefined && streams.size > 1) {
        return yield* new InvalidEvent({
          eventType: rows[0]!.event_type,
          field: "expectedVersion",
          reason: "an expected version other than any needs all the events of the append in one stream"
        })
      }
      const [single] = rows
      // The fast path computes its hash in the statement: the stream's remembered head, if any, is no longer its head.
      if (single !== undefined && rows.length === 1) heads.forget(rows)
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
              const lockTexts = rows.map((row) => streamLockText(config, row.aggregate_type, row.aggregate_id))
              const ids = rows.map((row) => row.id)
              // The general statement must follow the locks in the same transaction: the locks are what make its
              // fresh snapshot the latest state of its streams. Inside the caller's transaction, that one does.
              // Built only when run: building the statement serialises every row.
              const general = Effect.suspend(() => Effect.andThen(lockStreams(lockTexts), runAppend(rows, expected)))
              const inTransaction = Option.isSome(yield* Effect.serviceOption(sql.transactionService))
              const streamList = streamsOf(rows)
              if (inTransaction) {
                // The transaction may still roll back: what it writes is not a head to remember.
                heads.forget(streamList)
                // Locks and heads first, then the insert, whose snapshot is taken with the locks held: it writes
                // only onto the heads the events were chained from, or nothing.
                const locked = yield* lockAndReadHeads(lockTexts, streamList, ids)
                const chained = locked.stored === 0 ? chainRows(rows, locked.heads, expected) : undefined
                const written = chained === undefined ? [] : yield* insertChained(chained.rows, locked.heads, lockTexts)
                return written.length === rows.length
                  ? chainedOutcomes(rows, written, locked.heads)
                  : // A stored id, a version that does not match, or a head that moved while the locks were
                    // awaited: the general statement, under the locks now held, tells which, and writes what it can.
                    yield* runAppend(rows, expected)
              }
              // On its own, an append is one INSERT and no transaction: it takes the locks and writes only if every
              // stream's head is still the one the events were chained onto. When it waited for a lock, its
              // snapshot predates the head the holder wrote, and the first event's stream version meets that
              // head's: a unique violation, which aborts nothing but this statement, as does an event id already
              // stored. The heads are first the ones this store remembers (a stream it does not know is assumed
              // new), then, when those were wrong, the ones read without locks; after that the general statement,
              // in a transaction of its own, tells what happened.
              const insertUnlessMoved = (chained: Chained | undefined, assumed: ReadonlyArray<StreamHead>) =>
                chained === undefined
                  ? Effect.succeed([])
                  : insertChained(chained.rows, assumed, lockTexts).pipe(
                      Effect.catchIf(
                        (error) => error.reason._tag === "UniqueViolation",
                        () => Effect.succeed([])
                      ),
                      Effect.tap((written) =>
                        Effect.sync(() => {
                          if (written.length === rows.length) heads.remember(chained.tips)
                        })
                      )
                    )
              const guessed = heads.guess(streamList, expected)
              if (guessed !== undefined) {
                const written = yield* insertUnlessMoved(chainRows(rows, guessed, expected), guessed)
                if (written.length === rows.length) return chainedOutcomes(rows, written, guessed)
              }
              heads.forget(streamList)
              const read = yield* lockAndReadHeads([], streamList, ids)
              const written = yield* insertUnlessMoved(
                read.stored === 0 ? chainRows(rows, read.heads, expected) : undefined,
                read.heads
              )
              return written.length === rows.length
                ? chainedOutcomes(rows, written, read.heads)
                : yield* sql.withTransaction(general)
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
      yield* Metrics.recordEvents(rows.filter((_, index) => !outcomes[index]!.duplicate).map((row) => row.event_type))
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
    Effect.catchTag("SqlError", (error) => Effect.fail(appendFailure(error))),
    Metrics.trackAppend
  )

  const query = Effect.fn("EventStore.query")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter,
    page?: PageOptions
  ): Effect.fn.Return<Page<E>, Err | QueryError> {
    const limit = yield* validateLimit(page?.limit ?? defaultLimit)
    const checked = yield* Filter.validate(filter)
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
  })

  /** Pages by global position; with `snapshot`, only the commits at or below the fence taken at the start. */
  const pages = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter,
    options: { readonly batchSize?: number | undefined; readonly snapshot: boolean }
  ): Stream.Stream<E, Err | QueryError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const batchSize = yield* validateLimit(options.batchSize ?? 1000)
        const checked = yield* Filter.validate(filter)
        // The feed's fence, waiting for the commits in flight: every transaction that had committed is at or below
        // it, and every one still open or yet to begin takes a number above it at its commit.
        const fence = options.snapshot ? (yield* feedStatements.fence(0n, true)).fence : undefined
        // Then the last position stored: every row at or below the fence was visible when it was taken, so none lies
        // above it, and the last page stops there instead of walking every row appended since the stream began.
        const upTo =
          fence === undefined
            ? undefined
            : yield* lastPosition.pipe(Effect.catchTag("SqlError", stored("EventStore.stream")))
        return Stream.paginate(undefined as bigint | undefined, (after) =>
          read(checked, { after, direction: "forward", limit: batchSize, fence, upTo }).pipe(
            Effect.catchTag("SqlError", stored("EventStore.stream")),
            Effect.flatMap((rows) =>
              Effect.map(EventRegistry.decodeAll(registry, rows), (events) => {
                const last = rows.at(-1)
                const done =
                  rows.length < batchSize || last === undefined || (upTo !== undefined && last.globalPosition >= upTo)
                return [events, done ? Option.none() : Option.some(last.globalPosition)] as const
              })
            )
          )
        )
      })
    )

  const stream = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter,
    options?: { readonly batchSize?: number }
  ): Stream.Stream<E, Err | QueryError> =>
    pages(registry, filter, { batchSize: options?.batchSize, snapshot: true }).pipe(
      Stream.withSpan("EventStore.stream")
    )

  const getByAggregate = Effect.fn("EventStore.getByAggregate")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    aggregateType: string,
    aggregateId: string
  ): Effect.fn.Return<ReadonlyArray<E>, Err | QueryError> {
    yield* Effect.annotateCurrentSpan({ aggregateType, aggregateId })
    // Not a snapshot: a command handler loads its aggregate inside the transaction that appends to it, and must see
    // that transaction's own events, which have no commit yet. Pages are read in a plain loop rather than through a
    // stream: most streams fit in the first page, and a stream's setup cost as much as reading a short one.
    const filter = yield* Filter.validate({ aggregateType, aggregateId })
    const events: Array<E> = []
    let after: bigint | undefined = undefined
    for (;;) {
      const rows: ReadonlyArray<Event.RawEvent> = yield* read(filter, {
        after,
        direction: "forward",
        limit: aggregatePage
      }).pipe(Effect.catchTag("SqlError", stored("EventStore.getByAggregate")))
      const page = yield* EventRegistry.decodeAll(registry, rows)
      for (const event of page) events.push(event)
      const last = rows.at(-1)
      if (rows.length < aggregatePage || last === undefined) return events
      after = last.globalPosition
    }
  })

  const getByType = Effect.fn("EventStore.getByType")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    eventType: string,
    options?: Filter.Filter & PageOptions
  ): Effect.fn.Return<Page<E>, Err | QueryError> {
    yield* Effect.annotateCurrentSpan({ eventType })
    const [filter, page] = split(options)
    return yield* query(registry, { ...filter, eventTypes: [eventType] }, page)
  })

  const getByUser = Effect.fn("EventStore.getByUser")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    userId: string,
    options?: Filter.Filter & PageOptions
  ): Effect.fn.Return<Page<E>, Err | QueryError> {
    const [filter, page] = split(options)
    return yield* query(registry, { ...filter, userId }, page)
  })

  const getByTimeRange = Effect.fn("EventStore.getByTimeRange")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    from: DateTime.Utc,
    to: DateTime.Utc,
    options?: Filter.Filter & PageOptions
  ): Effect.fn.Return<Page<E>, Err | QueryError> {
    const [filter, page] = split(options)
    return yield* query(registry, { ...filter, from, to }, page)
  })

  const count = Effect.fn("EventStore.count")(function* (filter: Filter.Filter) {
    const checked = yield* Filter.validate(filter)
    return yield* countRows(checked).pipe(Effect.catchTag("SqlError", stored("EventStore.count")))
  })

  return EventStore.of({
    table: config,
    append,
    query,
    count,
    stream,
    getByAggregate,
    getByType,
    getByUser,
    getByTimeRange
  })
})

/** The page size of `getByAggregate`'s reads. */
const aggregatePage = 1000

/** The store of the events table the options name (`public.events` by default), built when the layer is. */
export const layer = (options?: EventTable.Options): Layer.Layer<EventStore, never, SqlClient.SqlClient> =>
  Layer.effect(EventStore, make(options))

/** The streams an append span names, at most: a batch over many streams keeps its span small. */
const maxSpanStreams = 20

/**
 * What an append span says about the append: how many events, of which types, in which streams. Ids and types
 * only, never a payload or a user: spans leave the process for the operator's collector.
 */
const spanAttributes = (
  rows: ReadonlyArray<AppendRow>,
  streams: ReadonlySet<string> | undefined
): Record<string, unknown> => {
  const [first] = rows
  if (streams === undefined && first !== undefined) {
    // One event: the same attributes, without the sets and arrays a batch needs.
    const stream = `${first.aggregate_type}/${first.aggregate_id}`
    return {
      "annal.event_count": 1,
      "annal.event_types": [first.event_type],
      "annal.stream_count": 1,
      "annal.streams": [stream],
      "annal.aggregate_type": first.aggregate_type,
      "annal.aggregate_id": first.aggregate_id
    }
  }
  if (streams === undefined) return { "annal.event_count": 0 }
  const single = streams.size === 1 && first !== undefined
  return {
    "annal.event_count": rows.length,
    "annal.event_types": [...new Set(rows.map((row) => row.event_type))],
    "annal.stream_count": streams.size,
    "annal.streams": [...streams].slice(0, maxSpanStreams),
    ...(single ? { "annal.aggregate_type": first.aggregate_type, "annal.aggregate_id": first.aggregate_id } : {})
  }
}

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
const split = (options: (Filter.Filter & PageOptions) | undefined): readonly [Filter.Filter, PageOptions] => {
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

/** The distinct streams of an append's rows, in the order they first appear. */
const streamsOf = (
  rows: ReadonlyArray<AppendRow>
): ReadonlyArray<{ readonly aggregate_type: string; readonly aggregate_id: string }> => {
  const streams = new Map<string, { readonly aggregate_type: string; readonly aggregate_id: string }>()
  for (const row of rows) {
    const key = `${row.aggregate_type}/${row.aggregate_id}`
    if (!streams.has(key)) streams.set(key, { aggregate_type: row.aggregate_type, aggregate_id: row.aggregate_id })
  }
  return [...streams.values()]
}

/**
 * Numbers and chains the rows onto the heads read, as the general statement would: each stream's events in the
 * order given, from its head's version and hash, with the same `link` the verifier checks them with. Undefined when
 * a stream is not at the expected version or its head has no hash: the general statement then decides, from heads
 * read under the locks.
 */
const chainRows = (
  rows: ReadonlyArray<AppendRow>,
  heads: ReadonlyArray<StreamHead>,
  expected: number
): Chained | undefined => {
  const tips = new Map<string, { aggregate_type: string; aggregate_id: string; version: number; hash: string }>()
  for (const head of heads) {
    if (expected >= 0 && head.version !== expected) return undefined
    // A head that no append of Annal wrote has no hash to chain onto; the general statement decides what follows it.
    if (head.version > 0 && head.hash === null) return undefined
    tips.set(`${head.aggregate_type}/${head.aggregate_id}`, {
      aggregate_type: head.aggregate_type,
      aggregate_id: head.aggregate_id,
      version: head.version,
      hash: head.hash ?? genesis
    })
  }
  const id: Array<string> = []
  const eventType: Array<string> = []
  const aggregateType: Array<string> = []
  const aggregateId: Array<string> = []
  const userId: Array<string> = []
  const timestamp: Array<string> = []
  const version: Array<number> = []
  const data: Array<string> = []
  const metadata: Array<string> = []
  const streamVersion: Array<number> = []
  const correlationId: Array<string | null> = []
  const causationId: Array<string | null> = []
  const hash: Array<string> = []
  let correlated = false
  let caused = false
  for (const row of rows) {
    const tip = tips.get(`${row.aggregate_type}/${row.aggregate_id}`)
    if (tip === undefined) return undefined
    tip.version++
    tip.hash = link(tip.hash, `${row.canonical_head}${tip.version}${row.canonical_tail}`)
    id.push(row.id)
    eventType.push(row.event_type)
    aggregateType.push(row.aggregate_type)
    aggregateId.push(row.aggregate_id)
    userId.push(row.user_id)
    timestamp.push(row.timestamp)
    version.push(row.version)
    data.push(row.data_text)
    metadata.push(row.metadata_text)
    streamVersion.push(tip.version)
    correlationId.push(row.correlation_id)
    causationId.push(row.causation_id)
    hash.push(tip.hash)
    correlated ||= row.correlation_id !== null
    caused ||= row.causation_id !== null
  }
  const columns: ChainedColumns = {
    id,
    event_type: eventType,
    aggregate_type: aggregateType,
    aggregate_id: aggregateId,
    user_id: userId,
    timestamp,
    version,
    data,
    metadata,
    stream_version: streamVersion,
    correlation_id: correlated ? correlationId : null,
    causation_id: caused ? causationId : null,
    hash
  }
  return { rows: columns, tips: [...tips.values()] }
}

/** A batch numbered and chained onto its heads, and the heads it leaves. */
interface Chained {
  readonly rows: ChainedColumns
  readonly tips: ReadonlyArray<StreamHead>
}

/** The outcomes of a batch that `insertChained` wrote whole, in the shape the general statement returns. */
const chainedOutcomes = (
  rows: ReadonlyArray<AppendRow>,
  written: ReadonlyArray<{ readonly id: string; readonly stream_version: number; readonly global_position: string }>,
  heads: ReadonlyArray<StreamHead>
): ReadonlyArray<AppendOutcome> => {
  const byId = new Map(written.map((row) => [row.id, row]))
  const headOf = new Map(heads.map((head) => [`${head.aggregate_type}/${head.aggregate_id}`, head.version]))
  return rows.map((row) => {
    const inserted = byId.get(row.id)!
    return {
      ...fastOutcome,
      ord: row.ord,
      stream_version: inserted.stream_version,
      global_position: inserted.global_position,
      head: headOf.get(`${row.aggregate_type}/${row.aggregate_id}`) ?? 0
    }
  })
}

/** Validates and encodes the events of an append, in order; the first problem refuses the whole append. */
const prepare = Effect.fnUntraced(function* (events: ReadonlyArray<EventDefinition.Pending>) {
  const now = yield* DateTime.now
  const nowIso = DateTime.formatIso(now)
  const nowMicros = microsOfMillis(DateTime.toEpochMillis(now))
  const nowStorable = Event.isStorableInstant(now)
  const seen = new Set<string>()
  const rows: Array<AppendRow> = []
  for (const [ord, event] of events.entries()) {
    const invalid = (field: string, reason: string) => new InvalidEvent({ eventType: event.eventType, field, reason })
    if (!Event.isEventType(event.eventType)) {
      return yield* invalid("eventType", "must be lowercase dotted segments, {aggregate}.{action}, at most 100 long")
    }
    if (!Event.isAggregateType(event.aggregateType)) {
      return yield* invalid("aggregateType", "must be one lowercase segment, at most 50 long")
    }
    if (!Event.isUuid(event.aggregateId)) return yield* invalid("aggregateId", "must be a UUID")
    if (event.userId === undefined)
      return yield* invalid("userId", "is missing: give it, or emit through EventEmitter inside an EventContext")
    if (!Event.isUuid(event.userId)) return yield* invalid("userId", "must be a UUID")
    // A generated id is a lowercase UUID already, and new: only a given one needs checking.
    const given = event.eventId
    if (given !== undefined && !Event.isUuid(given)) return yield* invalid("eventId", "must be a UUID")
    const eventId = given === undefined ? generateEventId() : given.toLowerCase()
    if (seen.has(eventId)) return yield* invalid("eventId", "appears twice in one append")
    seen.add(eventId)
    const data = yield* event.encode.pipe(Effect.mapError((error) => invalid("data", error.message)))
    const metadata = event.metadata ?? {}
    const problem = findProblem(data, "data") ?? findProblem(metadata, "metadata")
    if (problem !== undefined) return yield* invalid(problem.path, problem.reason)
    const timestamp = event.timestamp ?? now
    if (!(event.timestamp === undefined ? nowStorable : Event.isStorableInstant(timestamp))) {
      return yield* invalid("timestamp", Event.storableInstants)
    }
    const row = {
      ord,
      id: eventId,
      event_type: event.eventType,
      aggregate_type: event.aggregateType,
      aggregate_id: event.aggregateId.toLowerCase(),
      user_id: event.userId.toLowerCase(),
      // Most events take the append's now: formatted once.
      timestamp: event.timestamp === undefined ? nowIso : DateTime.formatIso(timestamp),
      version: event.version,
      data,
      metadata,
      correlation_id: metadata.correlationId ?? null,
      causation_id: metadata.causationId ?? null
    }
    // The hash chain's record of the event, exactly as the verifier will read it back (see internal/integrity/chain.ts).
    // Serialised once: the same texts are the chain's and the database's.
    const dataText = CanonicalJson.serialize(data)
    const metadataText = CanonicalJson.serialize(metadata)
    const canonical = canonicalPartsOfText(
      {
        eventId: row.id,
        eventType: row.event_type,
        aggregateType: row.aggregate_type,
        aggregateId: row.aggregate_id,
        userId: row.user_id,
        timestamp: event.timestamp === undefined ? nowMicros : microsOfMillis(DateTime.toEpochMillis(timestamp)),
        version: row.version,
        correlationId: row.correlation_id,
        causationId: row.causation_id
      },
      dataText,
      metadataText
    )
    rows.push({
      ...row,
      canonical_head: canonical.head,
      canonical_tail: canonical.tail,
      data_text: dataText,
      metadata_text: metadataText
    })
  }
  return rows
})

const validateLimit = (limit: number): Effect.Effect<number, InvalidQuery> =>
  Number.isSafeInteger(limit) && limit >= 1 && limit <= maxLimit
    ? Effect.succeed(limit)
    : Effect.fail(new InvalidQuery({ field: "limit", reason: `must be an integer from 1 to ${maxLimit}` }))
