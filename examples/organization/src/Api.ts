/**
 * The Organization app's HTTP API: its own groups (organizations, commodities, health) and the audit group of
 * `@annal/http`, in one `HttpApi`, so one OpenAPI document and one documentation page describe all of it.
 *
 * @since 0.1.0
 */
import { ApiError, ApiGroup, AuditApi, AuditExport, AuditCatalog, AuditReportsApi } from "@annal/http"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import * as Domain from "./Domain.ts"
import { OrganizationEvents } from "./Events.ts"

const withId = <Fields extends Schema.Struct.Fields>(fields: Fields) => Schema.Struct({ id: Schema.String, ...fields })

/** An organization. */
export const OrganizationJson = withId(Domain.Organization.fields).annotate({ identifier: "Organization" })
/** A GST registration. */
export const GstRegistrationJson = withId(Domain.GstRegistrationFields.fields).annotate({
  identifier: "GstRegistration"
})
/** A bank account. */
export const BankAccountJson = withId(Domain.BankAccount.fields).annotate({ identifier: "BankAccount" })
/** A financial year. */
export const FinancialYearJson = withId({ label: Schema.String, ...Domain.FinancialYearFields.fields }).annotate({
  identifier: "FinancialYear"
})
/** A document series. */
export const DocumentSeriesJson = withId(Domain.DocumentSeries.fields).annotate({ identifier: "DocumentSeries" })
/** An organization and everything that belongs to it. */
export const OrganizationDetailJson = withId({
  ...Domain.Organization.fields,
  gstRegistrations: Schema.Array(GstRegistrationJson),
  bankAccounts: Schema.Array(BankAccountJson),
  financialYears: Schema.Array(FinancialYearJson),
  documentSeries: Schema.Array(DocumentSeriesJson)
}).annotate({ identifier: "OrganizationDetail" })
/** A commodity. */
export const CommodityJson = withId(Domain.Commodity.fields).annotate({ identifier: "Commodity" })

const created = <S extends Schema.Top>(schema: S) => schema.pipe(HttpApiSchema.status(201))

const readErrors = [ApiError.NotFound, ApiError.Forbidden]
const writeErrors = [ApiError.NotFound, ApiError.Conflict, ApiError.Forbidden]

/** The organizations and what belongs to them. Writes need a token of any role but `auditor`. */
export class OrganizationsGroup extends HttpApiGroup.make("organizations")
  .add(
    HttpApiEndpoint.post("create", "/", {
      payload: Domain.CreateOrganization,
      success: created(OrganizationJson),
      error: writeErrors
    }),
    HttpApiEndpoint.get("list", "/", { success: Schema.Array(OrganizationJson), error: readErrors }),
    HttpApiEndpoint.get("get", "/:id", {
      params: { id: Domain.Id },
      success: OrganizationDetailJson,
      error: readErrors
    }),
    HttpApiEndpoint.patch("update", "/:id", {
      params: { id: Domain.Id },
      payload: Domain.UpdateOrganization,
      success: OrganizationJson,
      error: writeErrors
    }),
    HttpApiEndpoint.delete("remove", "/:id", {
      params: { id: Domain.Id },
      success: HttpApiSchema.NoContent,
      error: writeErrors
    }),
    HttpApiEndpoint.post("addGstRegistration", "/:id/gst-registrations", {
      params: { id: Domain.Id },
      payload: Domain.GstRegistration,
      success: created(GstRegistrationJson),
      error: writeErrors
    }),
    HttpApiEndpoint.patch("updateGstRegistration", "/:id/gst-registrations/:gstRegistrationId", {
      params: { id: Domain.Id, gstRegistrationId: Domain.Id },
      payload: Domain.UpdateGstRegistration,
      success: GstRegistrationJson,
      error: writeErrors
    }),
    HttpApiEndpoint.post("addBankAccount", "/:id/bank-accounts", {
      params: { id: Domain.Id },
      payload: Domain.BankAccount,
      success: created(BankAccountJson),
      error: writeErrors
    }),
    HttpApiEndpoint.patch("updateBankAccount", "/:id/bank-accounts/:bankAccountId", {
      params: { id: Domain.Id, bankAccountId: Domain.Id },
      payload: Domain.UpdateBankAccount,
      success: BankAccountJson,
      error: writeErrors
    }),
    HttpApiEndpoint.post("addFinancialYear", "/:id/financial-years", {
      params: { id: Domain.Id },
      payload: Domain.FinancialYear,
      success: created(FinancialYearJson),
      error: writeErrors
    }),
    HttpApiEndpoint.post("addDocumentSeries", "/:id/document-series", {
      params: { id: Domain.Id },
      payload: Domain.DocumentSeries,
      success: created(DocumentSeriesJson),
      error: writeErrors
    })
  )
  .pipe(ApiGroup.guard("/organizations"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Organizations",
      description:
        "Organizations, their GST registrations, bank accounts, financial years and document series. Each write " +
        "records its events in the same transaction; updates record the fields that changed, old and new."
    })
  ) {}

/** The commodity catalog. Writes need a token of any role but `auditor`. */
export class CommoditiesGroup extends HttpApiGroup.make("commodities")
  .add(
    HttpApiEndpoint.post("create", "/", {
      payload: Domain.Commodity,
      success: created(CommodityJson),
      error: writeErrors
    }),
    HttpApiEndpoint.get("list", "/", { success: Schema.Array(CommodityJson), error: readErrors }),
    HttpApiEndpoint.get("get", "/:id", { params: { id: Domain.Id }, success: CommodityJson, error: readErrors }),
    HttpApiEndpoint.patch("update", "/:id", {
      params: { id: Domain.Id },
      payload: Domain.UpdateCommodity,
      success: CommodityJson,
      error: writeErrors
    })
  )
  .pipe(ApiGroup.guard("/commodities"))
  .annotateMerge(OpenApi.annotations({ title: "Commodities", description: "The commodity catalog." })) {}

/** Whether the app is up; no token needed. */
export class SystemGroup extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("health", "/health", { success: Schema.Struct({ status: Schema.Literal("ok") }) })
) {}

/** The whole API. */
export class Api extends HttpApi.make("organization")
  .add(OrganizationsGroup)
  .add(CommoditiesGroup)
  .add(AuditApi.AuditGroup)
  .add(AuditReportsApi.AuditReportsGroup)
  .add(AuditExport.AuditExportGroup)
  .add(SystemGroup)
  .annotateMerge(
    OpenApi.annotations({
      title: "Organization service",
      version: "0.1.0",
      description:
        "The Organization example app, with its audit trail. Authenticate with `Authorization: Bearer <token>`. " +
        "Send `X-Correlation-Id` to tie a request's events to your own id (one is made otherwise, and echoed), and " +
        "`X-Change-Reason` to record why."
    })
  )
  // The audit events' `data`, typed per event type from the registry's schemas.
  .annotateMerge(AuditCatalog.openApi(OrganizationEvents)) {}
