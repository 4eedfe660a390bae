/**
 * Who may read which aggregate's history in this app, for callers who are not auditors (auditors read everything,
 * and are never asked about): the commodity catalog is shared, so anyone may read a commodity's history; an
 * organization's history is readable by its members (`Memberships`), the same clerks who may change it. Changing an
 * organization grants nothing, since only members may change it; any other aggregate type is refused.
 *
 * This is the app's own `AuditAccess`, in place of the audit API's default `participants` policy, which lets anyone
 * who has changed an aggregate read its history: with that policy, a clerk who may write anywhere could read
 * everywhere.
 *
 * @since 0.1.0
 */
import { AuditAccess } from "@annal/http"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Memberships } from "./Memberships.ts"

/** The policy, over the `Memberships` in context. */
export const layer: Layer.Layer<AuditAccess.AuditAccess, never, Memberships> = Layer.effect(
  AuditAccess.AuditAccess,
  Effect.gen(function* () {
    const memberships = yield* Memberships
    return AuditAccess.AuditAccess.of({
      canReadAggregate: (principal, aggregateType, aggregateId) => {
        switch (aggregateType) {
          case "commodity":
            return Effect.succeed(true)
          case "organization":
            return memberships.isMember(aggregateId, principal.userId)
          default:
            return Effect.succeed(false)
        }
      }
    })
  })
)
