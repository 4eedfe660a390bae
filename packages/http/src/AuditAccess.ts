/**
 * Which aggregates a caller who is not an auditor may read the history of. The audit API asks it before it reads an
 * aggregate's history, or counts or lists events restricted to one aggregate; an auditor is never asked about. An
 * application provides its own policy (its tenants, its sharing rules), usually falling back to `participants`.
 *
 * @since 0.1.0
 */
import { AnnalError, EventStore } from "@annal/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Forbidden, type InternalError, storage, type Timeout } from "./ApiError.ts"
import { isAuditor, type Principal } from "./Principal.ts"

/** The policy. */
export class AuditAccess extends Context.Service<
  AuditAccess,
  {
    /**
     * Whether `principal` may read the history of the aggregate `aggregateType`/`aggregateId`; the id comes in the
     * lowercase the store keeps it in, whatever case the request spelt it in.
     */
    readonly canReadAggregate: (
      principal: Principal,
      aggregateType: string,
      aggregateId: string
    ) => Effect.Effect<boolean, AnnalError.StorageError>
  }
>()("@annal/http/AuditAccess") {}

/**
 * The default policy: a user may read the history of an aggregate they have changed, that is, one with at least one
 * event of theirs. It reads the events table, so it needs no knowledge of the application's own tables.
 */
export const participants: Effect.Effect<AuditAccess["Service"], never, EventStore.EventStore> = Effect.gen(
  function* () {
    const store = yield* EventStore.EventStore
    return AuditAccess.of({
      canReadAggregate: (principal, aggregateType, aggregateId) =>
        store.count({ aggregateType, aggregateId, userId: principal.userId }).pipe(
          Effect.map((count) => count > 0),
          // The API validated the ids and names before asking, so the store cannot refuse the query.
          Effect.catchTag(["InvalidQuery", "InvalidCursor"], Effect.die)
        )
    })
  }
)

/** The default policy, over the `EventStore` in context. */
export const layerParticipants: Layer.Layer<AuditAccess, never, EventStore.EventStore> = Layer.effect(
  AuditAccess,
  participants
)

/** A policy from a function. */
export const layer = (canReadAggregate: AuditAccess["Service"]["canReadAggregate"]): Layer.Layer<AuditAccess> =>
  Layer.succeed(AuditAccess, AuditAccess.of({ canReadAggregate }))

/** What a list, a count or a stream of events is restricted to. */
export interface Restriction {
  readonly userId?: string | undefined
  readonly aggregateType?: string | undefined
  readonly aggregateId?: string | undefined
}

/**
 * Fails with `Forbidden` (saying `refusal`) unless `principal` may read what `restriction` leaves: an auditor
 * anything; anyone else their own events, or those of one aggregate the policy lets them read.
 */
export const authorizeRestricted = Effect.fnUntraced(function* (
  access: AuditAccess["Service"],
  principal: Principal,
  restriction: Restriction,
  refusal: string
): Effect.fn.Return<void, Forbidden | InternalError | Timeout> {
  if (isAuditor(principal)) return
  if (restriction.userId !== undefined && restriction.userId.toLowerCase() === principal.userId) return
  if (restriction.aggregateType !== undefined && restriction.aggregateId !== undefined) {
    const allowed = yield* access
      .canReadAggregate(principal, restriction.aggregateType, restriction.aggregateId.toLowerCase())
      .pipe(Effect.catch((error) => storage("checking access", error)))
    if (allowed) return
  }
  return yield* new Forbidden({ message: refusal })
})
