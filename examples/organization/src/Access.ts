/**
 * Who may read which aggregate's history in this app, for callers who are not auditors: the commodity catalog is
 * shared, so anyone may read a commodity's history; an organization's history is readable by the users who have
 * changed it (the audit API's default policy).
 *
 * @since 0.1.0
 */
import type { EventStore } from "@annal/core"
import { AuditAccess } from "@annal/http"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** The policy, over the `EventStore` in context. */
export const layer: Layer.Layer<AuditAccess.AuditAccess, never, EventStore.EventStore> = Layer.effect(
  AuditAccess.AuditAccess,
  Effect.gen(function* () {
    const participants = yield* AuditAccess.participants
    return AuditAccess.AuditAccess.of({
      canReadAggregate: (principal, aggregateType, aggregateId) =>
        aggregateType === "commodity"
          ? Effect.succeed(true)
          : participants.canReadAggregate(principal, aggregateType, aggregateId)
    })
  })
)
