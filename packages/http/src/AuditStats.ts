/**
 * `GET /audit/stats`, a report of `AuditReportsGroup`: counts of the events in a time range per bucket (`hour`,
 * `day`, `week` or `month`, split by `groupBy` if asked), the top actors, the most changed aggregates and the most
 * frequent reasons, read by `AuditService.getChangeStats` in one statement that the database's `statement_timeout`
 * bounds.
 *
 * Who may see what (stricter than `/audit/events`, which also lets a caller read an aggregate its `AuditAccess`
 * allows): an auditor counts anything, and the read is recorded as an
 * `audit.read`; anyone else counts only their own events and must say so (`userId=<their id>`), a 403 otherwise. A
 * clerk's counts are never narrowed silently: a chart of "everyone's changes" that shows only theirs would mislead.
 *
 * @since 0.1.0
 */
import { AuditService, type EventEmitter } from "@annal/core"
import * as Effect from "effect/Effect"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import { Forbidden, InternalError, type InvalidRequest, type Timeout } from "./ApiError.ts"
import { AggregateType, EventType, Instant, Uuid } from "./AuditApi.ts"
import { definedParameters, filterParameters, fromStoreError, toFilter } from "./AuditHandlers.ts"
import * as AuditReadEvents from "./AuditRead.ts"
import { CurrentPrincipal, isAuditor } from "./Principal.ts"

/** What a bucket's count may be split by, as the original design names the fields. */
export const GroupBy = Schema.Literals(["eventType", "entityType", "userId"])

/** The query of `GET /audit/stats`. */
export const statsQuery = {
  from: Instant,
  to: Instant,
  bucket: Schema.optional(Schema.Literals(["hour", "day", "week", "month"])),
  groupBy: Schema.optional(GroupBy),
  top: Schema.optional(
    Schema.Int.check(
      Schema.isBetween(
        { minimum: 1, maximum: AuditService.maxStatsTop },
        { message: `must be an integer from 1 to ${AuditService.maxStatsTop}` }
      )
    )
  ),
  eventType: Schema.optional(Schema.Array(EventType)),
  aggregateType: Schema.optional(AggregateType),
  userId: Schema.optional(Uuid)
}

/** The decoded query of `GET /audit/stats`. */
export type StatsQuery = Schema.Struct<typeof statsQuery>["Type"]

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/** The counts of a range, as `GET /audit/stats` answers them. */
export const ChangeStats = Schema.Struct({
  from: Schema.DateTimeUtc,
  to: Schema.DateTimeUtc,
  bucket: Schema.Literals(["hour", "day", "week", "month"]),
  groupBy: Schema.NullOr(GroupBy),
  /** How many events the range holds. */
  total: Count,
  /** The buckets that hold events, oldest first, then by key; an empty bucket is left out. */
  buckets: Schema.Array(
    Schema.Struct({
      start: Schema.DateTimeUtc,
      /** The group's value: an event type, an aggregate type or a user id; `null` when not grouped. */
      key: Schema.NullOr(Schema.String),
      count: Count
    })
  ),
  /** The users with the most events in the range, most first. */
  topActors: Schema.Array(Schema.Struct({ userId: Schema.String, count: Count })),
  /** The aggregates with the most events in the range, most first. */
  topEntities: Schema.Array(Schema.Struct({ aggregateType: Schema.String, aggregateId: Schema.String, count: Count })),
  /** The most frequent reasons (`metadata.reason`), most first; `null` counts the events given none. */
  reasons: Schema.Array(Schema.Struct({ reason: Schema.NullOr(Schema.String), count: Count }))
}).annotate({ identifier: "ChangeStats" })

/** The counts of a range, as the audit API returns them. */
export type ChangeStats = typeof ChangeStats.Type

/** `GET /audit/stats`, to add to `AuditReportsGroup`. */
export const endpoint = HttpApiEndpoint.get("stats", "/stats", {
  query: statsQuery,
  success: ChangeStats,
  error: [Forbidden, InternalError]
}).annotateMerge(
  OpenApi.annotations({
    summary: "Counts over a time range",
    description:
      "The events in [`from`, `to`), counted per `bucket` (`day` by default: `hour`, `day` from midnight UTC, " +
      "`week` from Monday, `month` in UTC), split by `groupBy` (`eventType`, `entityType` or `userId`) if given; " +
      `with the \`top\` (10 by default) actors, most changed entities and reasons. At most ${AuditService.maxStatsBuckets} ` +
      `buckets and ${AuditService.maxStatsSeries} counts; a larger range is a 400. \`eventType\` (repeatable), ` +
      "`aggregateType` and `userId` narrow every count. Auditors count anything; other users count their own " +
      "events, and must say so with `userId`."
  })
)

/** The handler of `stats`, reading with `audit` and recording an auditor's read with `emitter`. */
export const handler = (audit: AuditService.AuditService["Service"], emitter: EventEmitter.EventEmitter["Service"]) =>
  Effect.fn("AuditApi.stats")(function* ({
    query
  }: {
    readonly query: StatsQuery
  }): Effect.fn.Return<ChangeStats, Forbidden | InvalidRequest | InternalError | Timeout, CurrentPrincipal> {
    const principal = yield* CurrentPrincipal
    if (!isAuditor(principal) && query.userId?.toLowerCase() !== principal.userId) {
      return yield* new Forbidden({
        message: "Only auditors count beyond their own events: restrict the query to userId=<your user id>"
      })
    }
    const { from, to, bucket = "day", groupBy, top, ...narrowing } = query
    const filter = yield* toFilter(narrowing)
    const stats = yield* audit
      .getChangeStats({
        from,
        to,
        bucket,
        groupBy: groupBy === "entityType" ? "aggregateType" : groupBy,
        filter,
        top
      })
      .pipe(Effect.catch(fromStoreError))
    yield* AuditReadEvents.record(emitter, principal, {
      endpoint: "stats",
      parameters: definedParameters({
        ...filterParameters({ ...narrowing, from, to }),
        bucket,
        groupBy,
        top: top === undefined ? undefined : String(top)
      }),
      continued: false,
      returned: stats.total
    })
    return {
      from: stats.from,
      to: stats.to,
      bucket: stats.bucket,
      groupBy: groupBy ?? null,
      total: stats.total,
      buckets: stats.buckets.map((row) => ({ start: row.start, key: row.key ?? null, count: row.count })),
      topActors: stats.topActors,
      topEntities: stats.topEntities,
      reasons: stats.reasons.map((row) => ({ reason: row.reason ?? null, count: row.count }))
    }
  })
