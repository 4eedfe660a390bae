/**
 * The audit API's reports, a group of its own (`auditReports`, under `/audit` like `AuditGroup`) that an application
 * adds to its `HttpApi` beside the audit group: what an aggregate looked like at a moment, and, in later endpoints,
 * what one business operation touched.
 *
 * - `GET /audit/aggregates/{aggregateType}/{aggregateId}/state?asOf=…`: an aggregate's state at an instant, folded by
 *   the application's projection for its type, or rebuilt from the original design's payload conventions.
 * - `GET /audit/correlations/{correlationId}`: every event of one business operation, across aggregates, in feed order.
 * - `GET /audit/events/{eventId}/effects`: what an event caused, transitively, as a tree.
 * - `GET /audit/stats`: counts per time bucket, top actors, most changed aggregates and reasons (`AuditStats`).
 * - `GET /audit/catalog`: every event type and version with its payload's JSON Schema (`AuditCatalog`).
 *
 * @since 0.1.0
 */
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import * as ApiGroup from "./ApiGroup.ts"
import { Forbidden, InternalError, NotFound } from "./ApiError.ts"
import { AggregateType, AuditEvent, Cursor, EventPage, Instant, PageSize, Uuid, Verification } from "./AuditApi.ts"
import * as AuditCatalog from "./AuditCatalog.ts"
import * as AuditStats from "./AuditStats.ts"

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

/** What an event caused: the events whose causation id is its id, each with what it caused in turn. */
export interface EffectTree {
  readonly event: AuditEvent
  readonly effects: ReadonlyArray<EffectTree>
}

/** The JSON form of `EffectTree`. */
export interface EffectTreeEncoded {
  readonly event: typeof AuditEvent.Encoded
  readonly effects: ReadonlyArray<EffectTreeEncoded>
}

/** What an event caused, as a tree rooted at it. */
export const EffectTree: Schema.Codec<EffectTree, EffectTreeEncoded> = Schema.Struct({
  event: AuditEvent,
  effects: Schema.Array(Schema.suspend((): Schema.Codec<EffectTree, EffectTreeEncoded> => EffectTree))
}).annotate({ identifier: "EffectTree" })

/** The query of `effects`: how deep, and how many events in all, the tree may be. */
export const effectsQuery = {
  maxDepth: Schema.optional(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 50 }, { message: "must be an integer from 1 to 50" }))
  ),
  maxEvents: Schema.optional(
    Schema.Int.check(
      Schema.isBetween({ minimum: 1, maximum: 10_000 }, { message: "must be an integer from 1 to 10000" })
    )
  )
}

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
    ),
    HttpApiEndpoint.get("correlation", "/correlations/:correlationId", {
      params: {
        correlationId: Schema.String.check(
          Schema.isBetweenLength(1, 128),
          Schema.makeFilter((value: string) => !value.includes("\u0000"), { message: "must not contain U+0000" })
        )
      },
      query: { limit: Schema.optional(PageSize), cursor: Schema.optional(Cursor) },
      success: EventPage,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "One business operation's events",
        description:
          "Every event whose correlation id is `correlationId`, across aggregates, in feed order (transactions in " +
          "the order they committed), a page at a time. Auditors see every event; other users the events they may " +
          "see through `/audit/events`: their own, and those of aggregates the access policy lets them read."
      })
    ),
    HttpApiEndpoint.get("effects", "/events/:eventId/effects", {
      params: { eventId: Uuid },
      query: effectsQuery,
      success: EffectTree,
      error: [...errors, NotFound]
    }).annotateMerge(
      OpenApi.annotations({
        summary: "What an event caused",
        description:
          "The event and, transitively, the events that name it as their cause (`causationId`), as a tree at most " +
          "`maxDepth` levels deep (10 by default) of at most `maxEvents` events (1,000 by default); a larger tree is " +
          "a 400 that names the bound, never a tree cut short. Users who are not auditors see the events they may " +
          "see, and nothing below an event they may not."
      })
    )
  )
  // The statistics endpoint is defined in a module of its own, `AuditStats`.
  .add(AuditStats.endpoint)
  // The event catalog likewise, in `AuditCatalog`.
  .add(AuditCatalog.endpoint)
  .pipe(ApiGroup.guard("/audit"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Audit reports",
      description:
        "Reports over the audit trail: an aggregate's state as of a moment, an operation's trail, an event's " +
        "effects, counts over a time range and the event catalog. Reads only; an auditor's reads are " +
        "recorded as `audit.read` events."
    })
  ) {}

/** The report endpoints on their own, to type their handlers or build a client. */
export class AuditReportsApi extends HttpApi.make("annal-audit-reports")
  .add(AuditReportsGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal audit reports", version: "0.1.0" })) {}
