/**
 * The events the core's tests use: the Organization example's, with `organization.created` in two versions.
 */
import * as Schema from "effect/Schema"
import * as EventDefinition from "../../src/EventDefinition.ts"
import * as EventRegistry from "../../src/EventRegistry.ts"
import * as Payload from "../../src/Payload.ts"

/** The organization's fields as the first release stored them. */
export const OrganizationV1 = Schema.Struct({
  name: Schema.NonEmptyString,
  type: Schema.String,
  email: Schema.String
})

/** The organization's fields now: a country was added, defaulting to India for rows written before it existed. */
export const Organization = Schema.Struct({
  name: Schema.NonEmptyString,
  type: Schema.String,
  email: Schema.String,
  country: Schema.String
})
export type Organization = typeof Organization.Type

export const OrganizationCreated = EventDefinition.make("organization.created", {
  aggregateType: "organization",
  schema: OrganizationV1
}).evolve(Organization, (v1) => ({ ...v1, country: "IN" }))

export const OrganizationUpdated = EventDefinition.make("organization.updated", {
  aggregateType: "organization",
  schema: Payload.ChangesOf(Organization)
})

export const OrganizationDeleted = EventDefinition.make("organization.deleted", {
  aggregateType: "organization",
  schema: Payload.Deleted
})

export const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String, amount: Schema.optionalKey(Schema.Number) })
})

export const OrganizationEvents = EventRegistry.make(
  OrganizationCreated,
  OrganizationUpdated,
  OrganizationDeleted,
  GstAdded
)

/** A fresh UUID. */
export const uuid = (): string => crypto.randomUUID()
