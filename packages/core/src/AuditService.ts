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
import { InvalidQuery } from "./AnnalError.ts"
import * as Event from "./Event.ts"
import type * as EventRegistry from "./EventRegistry.ts"
import * as EventStore from "./EventStore.ts"
import type * as EventTable from "./EventTable.ts"
import type * as Filter from "./Filter.ts"
import * as Projection from "./Projection.ts"
import * as Stream from "effect/Stream"

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
    /** How many changes match every field of `filter`. */
    readonly getChangeCount: (filter?: Filter.Filter) => Effect.Effect<number, EventStore.QueryError>
    /** The events table the service reads: its store's. */
    readonly table: EventTable.EventTable
  }
>()("@annal/core/AuditService") {}

/** Builds the audit service over the `EventStore` in context. */
export const make = Effect.gen(function* () {
  const store = yield* EventStore.EventStore

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

  const getChangeCount = Effect.fn("AuditService.getChangeCount")(function* (filter?: Filter.Filter) {
    return yield* store.count(filter ?? {})
  })

  return AuditService.of({
    table: store.table,
    getEntityHistory,
    streamEntityHistory,
    getEntityStateAsOf,
    getUserActivity,
    getRecentChanges,
    getEvents,
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

/** The audit service, reading through the `EventStore` in context. */
export const layer: Layer.Layer<AuditService, never, EventStore.EventStore> = Layer.effect(AuditService, make)
