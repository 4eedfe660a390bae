/**
 * The original design's high-level audit queries, as typed Effects over the store: the complete history of an
 * aggregate, what a user did, recent changes and change counts. Each returns decoded events (or a number) that
 * projections fold.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { InvalidQuery } from "./AnnalError.ts"
import type * as Event from "./Event.ts"
import type * as EventRegistry from "./EventRegistry.ts"
import * as EventStore from "./EventStore.ts"
import * as Projection from "./Projection.ts"

/** Which changes to count; all fields optional and combined. */
export interface ChangeCountFilter {
  readonly entityType?: string
  readonly entityId?: string
  readonly userId?: string
  readonly eventTypes?: ReadonlyArray<string>
  readonly from?: DateTime.Utc
  readonly to?: DateTime.Utc
}

/** The audit service. */
export class AuditService extends Context.Service<
  AuditService,
  {
    /** Every event of one entity, oldest first; with `asOf`, only those that happened at or before it. */
    readonly getEntityHistory: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      entityId: string,
      entityType: string,
      options?: { readonly asOf?: DateTime.Utc }
    ) => Effect.Effect<ReadonlyArray<E>, Err | EventStore.QueryError>
    /** The state of one entity as of `at`: its history up to then, folded by `projection`. */
    readonly getEntityStateAsOf: <S, E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      projection: Projection.Projection<S, E>,
      entityId: string,
      entityType: string,
      at: DateTime.Utc
    ) => Effect.Effect<S, Err | EventStore.QueryError>
    /** What one user did, newest first, a page at a time (50 by default). */
    readonly getUserActivity: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      userId: string,
      options?: { readonly limit?: number; readonly cursor?: string }
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /** What changed in the last `hours`, newest first, optionally for one entity type. */
    readonly getRecentChanges: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options: {
        readonly hours: number
        readonly entityType?: string
        readonly limit?: number
        readonly cursor?: string
      }
    ) => Effect.Effect<EventStore.Page<E>, Err | EventStore.QueryError>
    /** How many changes match the filter. */
    readonly getChangeCount: (filter?: ChangeCountFilter) => Effect.Effect<number, EventStore.QueryError>
  }
>()("@annal/core/AuditService") {}

/** Builds the audit service over the `EventStore` in context. */
export const make = Effect.gen(function* () {
  const store = yield* EventStore.EventStore

  const getEntityHistory = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    entityId: string,
    entityType: string,
    options?: { readonly asOf?: DateTime.Utc }
  ): Effect.Effect<ReadonlyArray<E>, Err | EventStore.QueryError> =>
    store.getByAggregate(registry, entityType, entityId).pipe(
      Effect.map((events) => {
        const asOf = options?.asOf
        return asOf === undefined
          ? events
          : events.filter((event) => DateTime.isLessThanOrEqualTo(event.timestamp, asOf))
      }),
      Effect.withSpan("AuditService.getEntityHistory", { attributes: { entityId, entityType } })
    )

  return AuditService.of({
    getEntityHistory,
    getEntityStateAsOf: (registry, projection, entityId, entityType, at) =>
      getEntityHistory(registry, entityId, entityType, { asOf: at }).pipe(
        Effect.map((events) => Projection.fold(projection, events)),
        Effect.withSpan("AuditService.getEntityStateAsOf")
      ),
    getUserActivity: (registry, userId, options) =>
      store
        .query(
          registry,
          { userId },
          {
            direction: "backward",
            limit: options?.limit ?? 50,
            ...(options?.cursor === undefined ? {} : { cursor: options.cursor })
          }
        )
        .pipe(Effect.withSpan("AuditService.getUserActivity")),
    getRecentChanges: (registry, options) =>
      Effect.gen(function* () {
        if (!Number.isFinite(options.hours) || options.hours <= 0) {
          return yield* new InvalidQuery({ field: "hours", reason: "must be a positive number" })
        }
        const now = yield* DateTime.now
        const from = DateTime.subtract(now, { milliseconds: options.hours * 3_600_000 })
        return yield* store.query(
          registry,
          { from, ...(options.entityType === undefined ? {} : { aggregateType: options.entityType }) },
          {
            direction: "backward",
            ...(options.limit === undefined ? {} : { limit: options.limit }),
            ...(options.cursor === undefined ? {} : { cursor: options.cursor })
          }
        )
      }).pipe(Effect.withSpan("AuditService.getRecentChanges")),
    getChangeCount: (filter) => {
      const { entityType, entityId, ...rest } = filter ?? {}
      return store
        .count({
          ...rest,
          ...(entityType === undefined ? {} : { aggregateType: entityType }),
          ...(entityId === undefined ? {} : { aggregateId: entityId })
        })
        .pipe(Effect.withSpan("AuditService.getChangeCount"))
    }
  })
})

/** The audit service, reading through the `EventStore` in context. */
export const layer: Layer.Layer<AuditService, never, EventStore.EventStore> = Layer.effect(AuditService, make)
