/**
 * The Organization module's events, as docs/design.md names them. Each business write emits them in its own
 * transaction: CREATE events carry the entity, UPDATE events carry `changes` (old and new value of each changed
 * field), the DELETE event carries the name and when.
 *
 * `commodity.created` has two versions. The first release stored the original design's snake_case payload
 * (`{ name, category, hsn_code }`) and had no unit; the current one is `{ name, category, hsnCode, unit }`. Rows
 * stored as v1 (the catalog the first release imported, see `Migrations`) read as v2, with the unit they were
 * traded in then: kilograms.
 *
 * @since 0.1.0
 */
import { EventDefinition, EventRegistry, Payload } from "@annal/core"
import * as Schema from "effect/Schema"
import * as Domain from "./Domain.ts"

/** `organization.created`: the organization's fields. */
export const OrganizationCreated = EventDefinition.make("organization.created", {
  aggregateType: "organization",
  schema: Domain.Organization
})

/** `organization.updated`: the fields that changed, old and new. */
export const OrganizationUpdated = EventDefinition.make("organization.updated", {
  aggregateType: "organization",
  schema: Payload.ChangesOf(Domain.Organization)
})

/** `organization.deleted`: its name, and when. */
export const OrganizationDeleted = EventDefinition.make("organization.deleted", {
  aggregateType: "organization",
  schema: Payload.Deleted
})

const GstId = { gstRegistrationId: Schema.String }

/** `organization.gst.added`: a GST registration, in the organization's stream. */
export const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ ...GstId, ...Domain.GstRegistrationFields.fields })
})

/** `organization.gst.updated`: which registration, and what changed. */
export const GstUpdated = EventDefinition.make("organization.gst.updated", {
  aggregateType: "organization",
  schema: Schema.Struct({ ...GstId, ...Payload.ChangesOf(Domain.GstRegistrationFields).fields })
})

const BankAccountId = { bankAccountId: Schema.String }

/** `organization.bank_account.added`: a bank account, in the organization's stream. */
export const BankAccountAdded = EventDefinition.make("organization.bank_account.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ ...BankAccountId, ...Domain.BankAccount.fields })
})

/** `organization.bank_account.updated`: which account, and what changed. */
export const BankAccountUpdated = EventDefinition.make("organization.bank_account.updated", {
  aggregateType: "organization",
  schema: Schema.Struct({ ...BankAccountId, ...Payload.ChangesOf(Domain.BankAccount).fields })
})

/** `organization.financial_year.added`: a financial year and its label. */
export const FinancialYearAdded = EventDefinition.make("organization.financial_year.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ financialYearId: Schema.String, label: Schema.String, ...Domain.FinancialYearFields.fields })
})

/** `organization.document_series.added`: a numbering series. */
export const DocumentSeriesAdded = EventDefinition.make("organization.document_series.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ documentSeriesId: Schema.String, ...Domain.DocumentSeries.fields })
})

/** The payload `commodity.created` had in the first release: the design's snake_case fields, without a unit. */
export const CommodityV1 = Schema.Struct({
  name: Schema.String,
  category: Schema.String,
  hsn_code: Schema.String
})

/** `commodity.created` as the first release defined it; only migrations that replay that release write it. */
export const CommodityCreatedV1 = EventDefinition.make("commodity.created", {
  aggregateType: "commodity",
  schema: CommodityV1
})

/** `commodity.created`, version 2: the commodity's fields. Version 1 rows read as traded in kilograms. */
export const CommodityCreated = CommodityCreatedV1.evolve(Domain.Commodity, (v1) => ({
  name: v1.name,
  category: v1.category,
  hsnCode: v1.hsn_code,
  unit: "KG" as const
}))

/** `commodity.updated`: the fields that changed, old and new. */
export const CommodityUpdated = EventDefinition.make("commodity.updated", {
  aggregateType: "commodity",
  schema: Payload.ChangesOf(Domain.Commodity)
})

/** Every event of the module, decoded into one union. */
export const OrganizationEvents = EventRegistry.make(
  OrganizationCreated,
  OrganizationUpdated,
  OrganizationDeleted,
  GstAdded,
  GstUpdated,
  BankAccountAdded,
  BankAccountUpdated,
  FinancialYearAdded,
  DocumentSeriesAdded,
  CommodityCreated,
  CommodityUpdated
)

/** One event of the module. */
export type OrganizationEvent = EventRegistry.EventOf<typeof OrganizationEvents>
