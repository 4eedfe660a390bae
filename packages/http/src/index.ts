/**
 * @annal/http: the audit trail over HTTP, as an `HttpApiGroup` and its handlers that any Effect application adds to
 * its own API; bearer-token authentication; typed errors; signed page cursors; and the request context that flows
 * into every event a request emits.
 *
 * @since 0.1.0
 * @module @annal/http
 */
export * as ApiError from "./ApiError.ts"
export * as ApiGroup from "./ApiGroup.ts"
export * as ApiTokens from "./ApiTokens.ts"
export * as AuditAccess from "./AuditAccess.ts"
export * as AuditApi from "./AuditApi.ts"
export * as AuditExport from "./AuditExport.ts"
export * as AuditCatalog from "./AuditCatalog.ts"
export * as AuditHandlers from "./AuditHandlers.ts"
export * as AuditRead from "./AuditRead.ts"
export * as AuditReportsApi from "./AuditReportsApi.ts"
export * as AuditReportsHandlers from "./AuditReportsHandlers.ts"
export * as AuditStats from "./AuditStats.ts"
export * as AuditUi from "./AuditUi.ts"
export * as AuditUiApi from "./AuditUiApi.ts"
export * as Authentication from "./Authentication.ts"
export * as EventJson from "./EventJson.ts"
export * as EventStream from "./EventStream.ts"
export * as Health from "./Health.ts"
export * as Lifecycle from "./Lifecycle.ts"
export * as PageCursor from "./PageCursor.ts"
export * as Principal from "./Principal.ts"
export * as Prometheus from "./Prometheus.ts"
export * as RequestContext from "./RequestContext.ts"
export * as RequestLog from "./RequestLog.ts"
export * as RequestTimeout from "./RequestTimeout.ts"
export * as RequestValidation from "./RequestValidation.ts"
export * as Telemetry from "./Telemetry.ts"
