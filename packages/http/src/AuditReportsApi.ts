/**
 * The audit API's reports, a group of its own (`auditReports`, under `/audit` like `AuditGroup`) that an application
 * adds to its `HttpApi` beside the audit group: what an aggregate looked like at a moment, and, in later endpoints,
 * what one business operation touched.
 *
 * - `GET /audit/aggregates/{aggregateType}/{aggregateId}/state?asOf=…`: an aggregate's state at an instant, folded by
 *   the application's projection for its type, or rebuilt from the original design's payload conventions.
 *
 * @since 0.1.0
 */
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import { Forbidden, InternalError } from "./ApiError.ts"
import { AggregateType, Instant, Uuid, Verification } from "./AuditApi.ts"
import { Authentication } from "./Authentication.ts"
import * as RequestTimeout from "./RequestTimeout.ts"
import * as RequestValidation from "./RequestValidation.ts"

/**
 * An aggregate's state as of a moment, and what it was folded from: the events up to `streamVersion` (the last one
 * at or before `asOf`; 0 when there was none), and whether the aggregate's whole hash chain verified (`null` when the
 * application serves no `Integrity` service).
 */
export const AggregateState = Schema.Struct({
  aggregateType: Schema.String,
  aggregateId: Schema.String,
  asOf: Schema.DateTimeUtc,
  /** `projection` when the application registered one for the type; `conventions` otherwise. */
  rebuiltWith: Schema.Literals(["projection", "conventions"]),
  /** The projection's state as JSON; by the conventions, the entity's fields, or `null` before it was created. */
  state: Schema.Json,
  /** By the conventions, whether the entity existed or had been deleted as of `asOf`; `null` for a projection. */
  status: Schema.NullOr(Schema.Literals(["absent", "exists", "deleted"])),
  streamVersion: Schema.Int,
  /** How many events were folded. */
  events: Schema.Int,
  /** By the conventions, how many of them it did not understand and left out; `null` for a projection. */
  ignored: Schema.NullOr(Schema.Int),
  verification: Schema.NullOr(Verification)
}).annotate({ identifier: "AggregateState" })

/** An aggregate's state, as the audit API returns it. */
export type AggregateState = typeof AggregateState.Type

const errors = [Forbidden, InternalError]

/** The report endpoints, authenticated and validated as the audit group's are. */
export class AuditReportsGroup extends HttpApiGroup.make("auditReports")
  .add(
    HttpApiEndpoint.get("aggregateState", "/aggregates/:aggregateType/:aggregateId/state", {
      params: { aggregateType: AggregateType, aggregateId: Uuid },
      query: { asOf: Instant },
      success: AggregateState,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "An aggregate's state as of a moment",
        description:
          "The aggregate's state at `asOf` (inclusive): its events up to then, folded by the projection the " +
          "application registered for its type, or else rebuilt from the payload conventions (CREATE fields, UPDATE " +
          "`changes.*.new`, DELETE). Says up to which stream version it folded and whether the chain verified. Who " +
          "may read the aggregate's history may read its state."
      })
    )
  )
  .middleware(RequestValidation.RequestValidation)
  .middleware(Authentication)
  .middleware(RequestTimeout.RequestTimeout)
  .prefix("/audit")
  .annotateMerge(RequestValidation.parseOptions)
  .annotateMerge(
    OpenApi.annotations({
      title: "Audit reports",
      description:
        "Reports over the audit trail: an aggregate's state as of a moment. Reads only; an auditor's reads are " +
        "recorded as `audit.read` events."
    })
  ) {}

/** The report endpoints on their own, to type their handlers or build a client. */
export class AuditReportsApi extends HttpApi.make("annal-audit-reports")
  .add(AuditReportsGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal audit reports", version: "0.1.0" })) {}
