/**
 * The original design's high-level audit queries, as typed Effects over the store: the history of an aggregate (a
 * page at a time, or streamed and folded), what a user did, recent changes, filtered events and change counts. Each
 * returns decoded events (or a number) that projections fold; the HTTP audit API reads through them.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { EffectsTooLarge, InvalidCursor, InvalidQuery, type StorageError } from "./AnnalError.ts"
import * as Event from "./Event.ts"
import * as EventRegistry from "./EventRegistry.ts"
import * as EventStore from "./EventStore.ts"
import type * as EventTable from "./EventTable.ts"
import * as Filter from "./Filter.ts"
import * as Projection from "./Projection.ts"
import * as Stream from "effect/Stream"
import * as Stats from "./internal/audit/stats.ts"
import { makeCaused, makeCorrelation, makeEventById, type TrailPosition } from "./internal/audit/trail.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"

/** Which part of an aggregate's history to read: at most `limit` events after `cursor`, up to `asOf`. */
export interface HistoryOptions {
  /** Only the events that happened at or before this moment. */
  readonly asOf?: DateTime.Utc
  readonly limit?: number
  /** A previous page's `nextCursor`. */
  readonly cursor?: string
}

/** Which recent changes to read: those of the last `hours`, of one aggregate type if given, a page at a time. */
export interface RecentChangesOptions {
  readonly hours: number
  readonly aggregateType?: string
  readonly limit?: number
  readonly cursor?: string
}

/** What an event caused: the events whose `causationId` is its id, each with what it caused in turn. */
export interface EffectTree<E> {
  readonly event: E
  readonly effects: ReadonlyArray<EffectTree<E>>
}

/** How much of what an event caused to read: at most `maxDepth` levels below it and `maxEvents` events in all. */
export interface EffectsOptions {
  /** Default 10, at most `maxEffectsDepth`. */
  readonly maxDepth?: number
  /** Default 1,000, at most `maxEffectsEvents`. */
  readonly maxEvents?: number
}

/** The largest bounds `getEffects` takes. */
export const maxEffectsDepth = 50
export const maxEffectsEvents = 10_000

/** The width of a statistics bucket: an hour, a day (from midnight UTC), a week (from Monday) or a calendar month (UTC). */
export type StatsBucket = Stats.Bucket

/** What a bucket's count is split by: the event's type, its aggregate's type or its user. */
export type StatsGroupBy = Stats.GroupBy

/** What `getChangeStats` counts: the events in [`from`, `to`) that also match `filter`, in buckets of `bucket`. */
export interface ChangeStatsOptions {
  readonly from: DateTime.Utc
  readonly to: DateTime.Utc
  readonly bucket: StatsBucket
  /** Splits each bucket's count by this field; one count per bucket without it. */
  readonly groupBy?: StatsGroupBy | undefined
  /** Narrows every count, as the store's filters do (its own `from` and `to` are the options'). */
  readonly filter?: Omit<Filter.Filter, "from" | "to"> | undefined
  /** How many top actors, aggregates and reasons to return: 10 by default, at most `maxStatsTop`. */
  readonly top?: number | undefined
}

/** How many events fell in one bucket (with one group's value, when grouped). */
export interface StatsBucketCount {
  /** Where the bucket starts. */
  readonly start: DateTime.Utc
  /** The group's value (an event type, an aggregate type or a user id); undefined when not grouped. */
  readonly key: string | undefined
  readonly count: number
}

/** The counts of a range: per bucket, and the ranges's most active users, most changed aggregates and reasons. */
export interface ChangeStats {
  readonly from: DateTime.Utc
  readonly to: DateTime.Utc
  readonly bucket: StatsBucket
  readonly groupBy: StatsGroupBy | undefined
  /** How many events the range holds. */
  readonly total: number
  /** The buckets that hold events (an empty bucket is left out), oldest first, then by key. */
  readonly buckets: ReadonlyArray<StatsBucketCount>
  /** The users with the most events, most first. */
  readonly topActors: ReadonlyArray<{ readonly userId: string; readonly count: number }>
  /** The aggregates with the most events, most first. */
  readonly topEntities: ReadonlyArray<{
    readonly aggregateType: string
    readonly aggregateId: string
    readonly count: number
  }>
  /** The most frequent `metadata.reason` values, most first; `undefined` counts the events given none. */
  readonly reasons: ReadonlyArray<{ readonly reason: string | undefined; readonly count: number }>
}

/** The most buckets one `getChangeStats` may span, and the most (bucket, group) counts it may answer. */
export const maxStatsBuckets = 1_000
export const maxStatsSeries = 10_000
/** The most top actors, aggregates and reasons `getChangeStats` returns. */
export const maxStatsTop = 100

/** The audit service: the high-level queries an audit trail is read with, the HTTP audit API's among them. */
export class AuditService extends Context.Service<
  AuditService,
  {
    /** A page of one aggregate's history, oldest first; with `asOf`, only what happened at or before it. */
    readonly getEntityHistory: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      aggregateType: string,
      aggregateId: string,
      options?: HistoryOptions
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /** One aggregate's whole history, oldest first, read page by page in constant memory; `asOf` as above. */
    readonly streamEntityHistory: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      aggregateType: string,
      aggregateId: string,
      options?: { readonly asOf?: DateTime.Utc }
    ) => Stream.Stream<E, Err | EventStore.QueryError>
    /** The state of one aggregate as of `asOf`: its history up to then, folded by `projection` as it is read. */
    readonly getEntityStateAsOf: <S, E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      aggregateType: string,
      aggregateId: string,
      options: { readonly projection: Projection.Projection<S, E>; readonly asOf: DateTime.Utc }
    ) => Effect.Effect<S, Err | EventStore.QueryError>
    /** What one user did, newest first, a page at a time (50 by default). */
    readonly getUserActivity: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      userId: string,
      options?: { readonly limit?: number; readonly cursor?: string }
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /** What changed in the last `hours`, newest first, optionally for one aggregate type. */
    readonly getRecentChanges: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options: RecentChangesOptions
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /** A page of the events that match every field of `filter`, oldest first unless `direction` is backward. */
    readonly getEvents: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      filter: Filter.Filter,
      page?: EventStore.PageOptions
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /**
     * Every event that matches `filter`, oldest first (by global position), read a page at a time in constant memory
     * as the stream is pulled: what an export reads.
     */
    readonly streamEvents: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      filter: Filter.Filter
    ) => Stream.Stream<E, Err | EventStore.QueryError>
    /** How many changes match every field of `filter`. */
    readonly getChangeCount: (filter?: Filter.Filter) => Effect.Effect<number, EventStore.QueryError>
    /**
     * A page of one business operation's events: those of `correlationId`, across aggregates, in the feed's commit
     * order (a transaction's events together, transactions in the order they committed).
     */
    readonly getCorrelation: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      correlationId: string,
      page?: { readonly limit?: number; readonly cursor?: string }
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /**
     * What event `eventId` caused, transitively, as a tree rooted at it (`None` when there is no such event); fails
     * with `EffectsTooLarge` rather than answer part of a tree beyond its bounds.
     */
    readonly getEffects: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      eventId: string,
      options?: EffectsOptions
    ) => Effect.Effect<Option.Option<EffectTree<E>>, Err | EventStore.QueryError | EffectsTooLarge>
    /**
     * The counts of the events in [`from`, `to`): per bucket (split by `groupBy`), the top actors, the most changed
     * aggregates and the most frequent reasons, all from one snapshot. Refuses, as `InvalidQuery`, an empty or
     * reversed range, one of more than `maxStatsBuckets` buckets, or an answer of more than `maxStatsSeries` counts.
     */
    readonly getChangeStats: (options: ChangeStatsOptions) => Effect.Effect<ChangeStats, EventStore.QueryError>
    /** The events table the service reads: its store's. */
    readonly table: EventTable.EventTable
  }
>()("@annal/core/AuditService") {}

/** Builds the audit service over the `EventStore` in context, and the `SqlClient` its trails read with. */
export const make = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const sql = yield* SqlClient.SqlClient
  const readCorrelation = makeCorrelation(sql, store.table)
  const readCaused = makeCaused(sql, store.table)
  const readEvent = makeEventById(sql, store.table)
  const readStats = Stats.makeStats(sql, store.table)

  const getEntityHistory = Effect.fn("AuditService.getEntityHistory")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    aggregateType: string,
    aggregateId: string,
    options?: HistoryOptions
  ): Effect.fn.Return<EventStore.Page<E>, Err | EventStore.QueryError> {
    yield* Effect.annotateCurrentSpan({ aggregateType, aggregateId })
    yield* checkAsOf(options?.asOf)
    return yield* store.query(registry, historyFilter(aggregateType, aggregateId, options?.asOf), {
      direction: "forward",
      ...(options?.limit === undefined ? {} : { limit: options.limit }),
      ...(options?.cursor === undefined ? {} : { cursor: options.cursor })
    })
  })

  // A stream, not an Effect: `Effect.fn` makes functions that return Effects, so the span is the stream's own.
  const streamEntityHistory = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    aggregateType: string,
    aggregateId: string,
    options?: { readonly asOf?: DateTime.Utc }
  ): Stream.Stream<E, Err | EventStore.QueryError> =>
    Stream.unwrap(
      Effect.as(
        checkAsOf(options?.asOf),
        store.stream(registry, historyFilter(aggregateType, aggregateId, options?.asOf))
      )
    ).pipe(Stream.withSpan("AuditService.streamEntityHistory", { attributes: { aggregateType, aggregateId } }))

  const getEntityStateAsOf = Effect.fn("AuditService.getEntityStateAsOf")(function* <S, E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    aggregateType: string,
    aggregateId: string,
    options: { readonly projection: Projection.Projection<S, E>; readonly asOf: DateTime.Utc }
  ): Effect.fn.Return<S, Err | EventStore.QueryError> {
    yield* Effect.annotateCurrentSpan({ aggregateType, aggregateId })
    const history = streamEntityHistory(registry, aggregateType, aggregateId, { asOf: options.asOf })
    return yield* Projection.foldStream(options.projection, history)
  })

  const getUserActivity = Effect.fn("AuditService.getUserActivity")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    userId: string,
    options?: { readonly limit?: number; readonly cursor?: string }
  ): Effect.fn.Return<EventStore.Page<E>, Err | EventStore.QueryError> {
    return yield* store.query(
      registry,
      { userId },
      {
        direction: "backward",
        limit: options?.limit ?? 50,
        ...(options?.cursor === undefined ? {} : { cursor: options.cursor })
      }
    )
  })

  const getRecentChanges = Effect.fn("AuditService.getRecentChanges")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options: RecentChangesOptions
  ): Effect.fn.Return<EventStore.Page<E>, Err | EventStore.QueryError> {
    if (!Number.isFinite(options.hours) || options.hours <= 0) {
      return yield* new InvalidQuery({ field: "hours", reason: "must be a positive number" })
    }
    const now = yield* DateTime.now
    // Whole milliseconds: a fraction of an hour (1/60 is a minute) is no exact number of them.
    const from = DateTime.subtract(now, { milliseconds: Math.round(options.hours * 3_600_000) })
    return yield* store.query(
      registry,
      { from, ...(options.aggregateType === undefined ? {} : { aggregateType: options.aggregateType }) },
      {
        direction: "backward",
        ...(options.limit === undefined ? {} : { limit: options.limit }),
        ...(options.cursor === undefined ? {} : { cursor: options.cursor })
      }
    )
  })

  const getEvents = Effect.fn("AuditService.getEvents")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter,
    page?: EventStore.PageOptions
  ): Effect.fn.Return<EventStore.Page<E>, Err | EventStore.QueryError> {
    return yield* store.query(registry, filter, page)
  })

  const streamEvents = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter
  ): Stream.Stream<E, Err | EventStore.QueryError> =>
    store.stream(registry, filter).pipe(Stream.withSpan("AuditService.streamEvents"))

  const getChangeCount = Effect.fn("AuditService.getChangeCount")(function* (filter?: Filter.Filter) {
    return yield* store.count(filter ?? {})
  })

  const getCorrelation = Effect.fn("AuditService.getCorrelation")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    correlationId: string,
    page?: { readonly limit?: number; readonly cursor?: string }
  ): Effect.fn.Return<EventStore.Page<E>, Err | EventStore.QueryError> {
    yield* Effect.annotateCurrentSpan({ correlationId })
    if (correlationId.length === 0 || correlationId.includes("\u0000")) {
      return yield* new InvalidQuery({ field: "correlationId", reason: "must be non-empty text without U+0000" })
    }
    const limit = page?.limit ?? EventStore.defaultLimit
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > EventStore.maxLimit) {
      return yield* new InvalidQuery({ field: "limit", reason: `must be an integer from 1 to ${EventStore.maxLimit}` })
    }
    const after = page?.cursor === undefined ? undefined : yield* decodeTrailCursor(page.cursor)
    // One more than the page, to tell whether there is a next one.
    const entries = yield* readCorrelation(correlationId, after, limit + 1).pipe(
      Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError("AuditService.getCorrelation", error)))
    )
    const shown = entries.slice(0, limit)
    const events = yield* EventRegistry.decodeAll(
      registry,
      shown.map((entry) => entry.event)
    )
    const last = shown.at(-1)
    return {
      events,
      nextCursor:
        entries.length > limit && last !== undefined ? Option.some(encodeTrailCursor(last.position)) : Option.none()
    }
  })

  const getEffects = Effect.fn("AuditService.getEffects")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    eventId: string,
    options?: EffectsOptions
  ): Effect.fn.Return<Option.Option<EffectTree<E>>, Err | EventStore.QueryError | EffectsTooLarge> {
    yield* Effect.annotateCurrentSpan({ eventId })
    if (!Event.isUuid(eventId)) return yield* new InvalidQuery({ field: "eventId", reason: "must be a UUID" })
    const maxDepth = options?.maxDepth ?? 10
    const maxEvents = options?.maxEvents ?? 1_000
    if (!Number.isSafeInteger(maxDepth) || maxDepth < 1 || maxDepth > maxEffectsDepth) {
      return yield* new InvalidQuery({ field: "maxDepth", reason: `must be an integer from 1 to ${maxEffectsDepth}` })
    }
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1 || maxEvents > maxEffectsEvents) {
      return yield* new InvalidQuery({ field: "maxEvents", reason: `must be an integer from 1 to ${maxEffectsEvents}` })
    }
    const [root] = yield* storedEffects(readEvent(eventId.toLowerCase()))
    if (root === undefined) return Option.none()
    // Level by level, one index range per level: each level's causes are the previous level's events. An event is
    // placed once, under the first cause that names it, so a cycle of ids (which an application that chose its own
    // event ids could write) ends instead of repeating.
    const children = new Map<string, Array<Event.RawEvent>>()
    const seen = new Set<string>([root.eventId])
    let level: ReadonlyArray<Event.RawEvent> = [root]
    let count = 0
    for (let depth = 1; level.length > 0; depth++) {
      const caused = (yield* storedEffects(
        readCaused(
          level.map((event) => event.eventId),
          maxEvents - count + 1
        )
      )).filter((event) => !seen.has(event.eventId))
      if (caused.length === 0) break
      if (depth > maxDepth)
        return yield* new EffectsTooLarge({ eventId: root.eventId, bound: "maxDepth", limit: maxDepth })
      count += caused.length
      if (count > maxEvents) {
        return yield* new EffectsTooLarge({ eventId: root.eventId, bound: "maxEvents", limit: maxEvents })
      }
      for (const event of caused) {
        seen.add(event.eventId)
        const cause = event.metadata.causationId ?? ""
        const siblings = children.get(cause)
        if (siblings === undefined) children.set(cause, [event])
        else siblings.push(event)
      }
      level = caused
    }
    const all = [root, ...[...children.values()].flat()]
    const decoded = yield* EventRegistry.decodeAll(registry, all)
    const byId = new Map(decoded.map((event) => [event.eventId, event]))
    const tree = (event: Event.RawEvent): EffectTree<E> => ({
      event: byId.get(event.eventId)!,
      effects: (children.get(event.eventId) ?? []).map(tree)
    })
    return Option.some(tree(root))
  })

  const getChangeStats = Effect.fn("AuditService.getChangeStats")(function* (
    options: ChangeStatsOptions
  ): Effect.fn.Return<ChangeStats, EventStore.QueryError> {
    yield* Effect.annotateCurrentSpan({ bucket: options.bucket, groupBy: options.groupBy ?? "none" })
    yield* Filter.refuseUnknown(options.filter ?? {})
    if (options.filter !== undefined && ("from" in options.filter || "to" in options.filter)) {
      return yield* new InvalidQuery({ field: "filter", reason: "takes its range from the options' from and to" })
    }
    if (!Stats.buckets.includes(options.bucket)) {
      return yield* new InvalidQuery({ field: "bucket", reason: `must be one of ${Stats.buckets.join(", ")}` })
    }
    if (options.groupBy !== undefined && !Stats.groupings.includes(options.groupBy)) {
      return yield* new InvalidQuery({ field: "groupBy", reason: `must be one of ${Stats.groupings.join(", ")}` })
    }
    const top = options.top ?? 10
    if (!Number.isSafeInteger(top) || top < 1 || top > maxStatsTop) {
      return yield* new InvalidQuery({ field: "top", reason: `must be an integer from 1 to ${maxStatsTop}` })
    }
    const filter = yield* Filter.validate({ ...Filter.pick(options.filter ?? {}), from: options.from, to: options.to })
    if (!DateTime.isLessThan(options.from, options.to)) {
      return yield* new InvalidQuery({ field: "from", reason: "must be before to" })
    }
    const spanned = Stats.bucketCount(options.bucket, options.from, options.to)
    if (spanned > maxStatsBuckets) {
      return yield* new InvalidQuery({
        field: "to",
        reason: `the range spans ${spanned} ${options.bucket} buckets, more than ${maxStatsBuckets}: narrow it or take wider buckets`
      })
    }
    const rows = yield* readStats(filter, {
      bucket: options.bucket,
      groupBy: options.groupBy,
      top,
      seriesLimit: maxStatsSeries + 1
    }).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError("AuditService.getChangeStats", error))))
    const buckets: Array<StatsBucketCount> = []
    const topActors: Array<ChangeStats["topActors"][number]> = []
    const topEntities: Array<ChangeStats["topEntities"][number]> = []
    const reasons: Array<ChangeStats["reasons"][number]> = []
    for (const row of rows) {
      switch (row.part) {
        case "bucket":
          buckets.push({ start: row.start, key: row.key, count: row.count })
          break
        case "actor":
          topActors.push({ userId: row.userId, count: row.count })
          break
        case "entity":
          topEntities.push({ aggregateType: row.aggregateType, aggregateId: row.aggregateId, count: row.count })
          break
        case "reason":
          reasons.push({ reason: row.reason, count: row.count })
      }
    }
    if (buckets.length > maxStatsSeries) {
      return yield* new InvalidQuery({
        field: "groupBy",
        reason: `the answer would hold more than ${maxStatsSeries} counts: narrow the range, take wider buckets or group by less`
      })
    }
    return {
      from: options.from,
      to: options.to,
      bucket: options.bucket,
      groupBy: options.groupBy,
      total: buckets.reduce((sum, bucket) => sum + bucket.count, 0),
      buckets,
      topActors,
      topEntities,
      reasons
    }
  })

  return AuditService.of({
    getChangeStats,
    getCorrelation,
    getEffects,
    table: store.table,
    getEntityHistory,
    streamEntityHistory,
    getEntityStateAsOf,
    getUserActivity,
    getRecentChanges,
    getEvents,
    streamEvents,
    getChangeCount
  })
})

/**
 * The store's filter for one aggregate's history up to `asOf`, which is inclusive where the store's `to` is not.
 * Timestamps read back in whole milliseconds, truncated, so `to = asOf + 1 ms` keeps exactly the events whose
 * timestamp, as read, is at or before `asOf`; and the database filters them on the (aggregate, timestamp) index
 * instead of this process reading the rest of the stream to drop it.
 */
const historyFilter = (aggregateType: string, aggregateId: string, asOf: DateTime.Utc | undefined) => {
  const to = asOf === undefined ? undefined : DateTime.add(asOf, { milliseconds: 1 })
  // At the last instant an event may carry, `to` would be past it, and every event is at or before `asOf` anyway.
  return { aggregateType, aggregateId, ...(to === undefined || !Event.isStorableInstant(to) ? {} : { to }) }
}

/** Refuses an `asOf` no event can be at or before, naming `asOf` rather than the `to` the store would name. */
const checkAsOf = (asOf: DateTime.Utc | undefined): Effect.Effect<void, InvalidQuery> =>
  asOf === undefined || Event.isStorableInstant(asOf)
    ? Effect.void
    : Effect.fail(new InvalidQuery({ field: "asOf", reason: Event.storableInstants }))

/** A statement of `getEffects`, its driver errors mapped at the service edge. */
const storedEffects = (operation: Effect.Effect<ReadonlyArray<Event.RawEvent>, SqlError | StorageError>) =>
  operation.pipe(Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError("AuditService.getEffects", error))))

const trailPrefix = "annal.trail.v1:"

/** The cursor that resumes a correlation trail after `position`. */
const encodeTrailCursor = (position: TrailPosition): string =>
  Base64Url.encode(`${trailPrefix}${position.commit}:${position.globalPosition}`)

/** The position a trail cursor resumes after, or `InvalidCursor` for anything `getCorrelation` did not produce. */
const decodeTrailCursor = (cursor: string): Effect.Effect<TrailPosition, InvalidCursor> => {
  const decoded = Base64Url.decodeString(cursor)
  const match = Result.isFailure(decoded)
    ? null
    : /^annal\.trail\.v1:([0-9]{1,19}):([0-9]{1,19})$/.exec(decoded.success)
  if (match === null) return Effect.fail(new InvalidCursor({ cursor }))
  const commit = BigInt(match[1]!)
  const globalPosition = BigInt(match[2]!)
  return commit > 9223372036854775807n || globalPosition > 9223372036854775807n
    ? Effect.fail(new InvalidCursor({ cursor }))
    : Effect.succeed({ commit, globalPosition })
}

/** The audit service, reading through the `EventStore` in context. */
export const layer: Layer.Layer<AuditService, never, EventStore.EventStore | SqlClient.SqlClient> = Layer.effect(
  AuditService,
  make
)
