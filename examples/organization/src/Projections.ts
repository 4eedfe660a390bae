/**
 * The app's own projections, registered with the audit reports so that `GET /audit/aggregates/commodity/{id}/state`
 * answers with the app's notion of a commodity's state (its fields and how many times it was revised) rather than the
 * generic rebuild of the payload conventions, which organizations use.
 *
 * @since 0.1.0
 */
import { Projection } from "@annal/core"
import { AuditReportsHandlers } from "@annal/http"
import * as Schema from "effect/Schema"
import * as Domain from "./Domain.ts"
import type { OrganizationEvent } from "./Events.ts"

/** A commodity as of a moment: its fields once created, and how many updates it had had. */
export const CommodityState = Schema.Struct({
  commodity: Schema.NullOr(Domain.Commodity),
  revisions: Schema.Int
})

/** A commodity as of a moment. */
export type CommodityState = typeof CommodityState.Type

/** Folds a commodity's events: `commodity.created` sets it, each `commodity.updated` applies its new values. */
export const commodity = Projection.make<CommodityState, OrganizationEvent>({
  initial: { commodity: null, revisions: 0 },
  apply: (state, event) => {
    switch (event.eventType) {
      case "commodity.created":
        return { commodity: event.data, revisions: 0 }
      case "commodity.updated": {
        if (state.commodity === null) return state
        const next = { ...state.commodity }
        const { changes } = event.data
        if (changes.name !== undefined) next.name = changes.name.new
        if (changes.category !== undefined) next.category = changes.category.new
        if (changes.hsnCode !== undefined) next.hsnCode = changes.hsnCode.new
        if (changes.unit !== undefined) next.unit = changes.unit.new
        return { commodity: next, revisions: state.revisions + 1 }
      }
      default:
        return state
    }
  }
})

/** The projections the audit reports fold with. */
export const projections: ReadonlyArray<AuditReportsHandlers.StateProjection> = [
  AuditReportsHandlers.stateProjection("commodity", commodity, CommodityState)
]
