/**
 * The audit API's definition: one `HttpApiGroup` (`audit`, under `/audit`) that an application adds to its own
 * `HttpApi`, so its endpoints, its errors and its schemas appear in the application's OpenAPI document and
 * documentation page. Every endpoint reads; none writes events, apart from the record of an auditor's read.
 *
 * - `GET /audit/aggregates/{aggregateType}/{aggregateId}`: an aggregate's history, oldest first.
 * - `GET /audit/users/{userId}/activity`: what a user did, newest first.
 * - `GET /audit/changes/recent`: what changed in the last hours, newest first (auditors).
 * - `GET /audit/changes/count`: how many events match a filter.
 * - `GET /audit/events`: events filtered by type, aggregate, user, correlation id and time range.
 *
 * Lists are pages of at most `maxPageSize` events with an opaque, signed `nextCursor`.
 *
 * @since 0.1.0
 */
import { Event } from "@annal/core"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import * as ApiGroup from "./ApiGroup.ts"
import { Forbidden, InternalError } from "./ApiError.ts"

/** The page size when none is asked for, and the largest one accepted. */
export const defaultPageSize = 50
export const maxPageSize = 500

/** The longest window `changes/recent` looks back: a leap year, in hours. */
export const maxRecentHours = 8784

/** A UUID, such as an aggregate or user id: the core's own rule, so the API takes what the store does. */
export const Uuid = Event.Uuid

/** An aggregate type: one lowercase segment, such as `organization`. */
export const AggregateType = Event.AggregateType

/** An event type: lowercase dotted segments, such as `organization.created`. */
export const EventType = Event.EventType

/** A page size. */
export const PageSize = Schema.Int.check(
  Schema.isBetween({ minimum: 1, maximum: maxPageSize }, { message: `must be an integer from 1 to ${maxPageSize}` })
)

/** A cursor from a previous page's `nextCursor`. */
export const Cursor = Schema.String.check(Schema.isMaxLength(512, { message: "is not a cursor" }))

/** The shape of an ISO 8601 date-time with its offset: date, time (seconds and fraction optional), `Z` or `±hh:mm`. */
const isoDateTime = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))$/

/** The first and the last millisecond of years 1 to 9999, UTC: PostgreSQL takes the instant as UTC. */
const earliest = Date.parse("0001-01-01T00:00:00Z")
const latest = Date.parse("9999-12-31T23:59:59.999Z")

/**
 * Whether `text` is a date-time that exists, in years 1 to 9999 both where it is said and in UTC. JavaScript's parser
 * would roll an impossible date over (February 30 becomes March 1), and accepts years that PostgreSQL refuses (year
 * 0, which is also what `0001-01-01T00:00:00+01:00` is in UTC): both are the caller's mistake, answered with a 400.
 */
const isCalendarDateTime = (text: string): boolean => {
  const match = isoDateTime.exec(text)
  if (match === null) return false
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, offsetHours = 0, offsetMinutes = 0] = match
    .slice(1)
    .map((field) => (field === undefined ? 0 : Number(field)))
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  const daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0
  const instant = Date.parse(text)
  return (
    instant >= earliest &&
    instant <= latest &&
    year >= 1 &&
    day >= 1 &&
    day <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHours <= 23 &&
    offsetMinutes <= 59
  )
}

/** An instant, as an ISO 8601 date-time with its offset, such as `2025-04-01T00:00:00Z`, in years 1 to 9999. */
export const Instant = Schema.String.check(
  Schema.makeFilter(isCalendarDateTime, {
    message: "must be an ISO 8601 date-time with its offset, such as 2025-04-01T00:00:00Z, in years 0001 to 9999"
  })
)
  .pipe(Schema.decodeTo(Schema.DateTimeUtcFromString))
  .annotate({ description: "An ISO 8601 date-time with its offset, such as 2025-04-01T00:00:00Z" })

/** The context an event was recorded with. */
export const AuditEventMetadata = Event.EventMetadata

/**
 * A stored event, decoded to the current version of its type; its `data` is that version's JSON. One that cannot be
 * decoded is sent as stored, flagged `decoded: false`.
 */
export const AuditEvent = Schema.Struct({
  eventId: Schema.String,
  eventType: Schema.String,
  aggregateType: Schema.String,
  aggregateId: Schema.String,
  userId: Schema.String,
  timestamp: Schema.DateTimeUtc,
  /** Always the current schema version of the type, whatever version was stored. */
  version: Schema.Int,
  data: Schema.Json,
  metadata: AuditEventMetadata,
  streamVersion: Schema.Int,
  globalPosition: Schema.BigInt,
  transactionId: Schema.BigInt,
  recordedAt: Schema.DateTimeUtc,
  /**
   * Present, and `false`, only on an event the application's registry could not decode (a type it does not register,
   * or a payload its schema refuses): its `data` and `version` are then the stored ones, and `decodeError` says why.
   * The event is shown rather than failing the page, so one bad row hides nothing else.
   */
  decoded: Schema.optionalKey(Schema.Literal(false)),
  /** Why the event could not be decoded, beside `decoded: false`. */
  decodeError: Schema.optionalKey(Schema.String)
}).annotate({ identifier: "AuditEvent" })

/** A stored event, as the audit API returns it. */
export type AuditEvent = typeof AuditEvent.Type

/** One page of events; `nextCursor` is null on the last page. */
export const EventPage = Schema.Struct({
  events: Schema.Array(AuditEvent),
  nextCursor: Schema.NullOr(Schema.String)
}).annotate({ identifier: "EventPage" })

/**
 * Whether an aggregate's hash chain holds, and where it first breaks when it does not; `scope` says how much of it
 * was checked. `stream`: every link of the stream. `page`: the links of the page's versions (`page.fromVersion` to
 * `page.toVersion`) from their `anchor` (the genesis hash when the page starts the stream, or the hash of the
 * previous page's last event as verified when that page was served, which its cursor carries signed); that event
 * still holds that hash and links to its predecessor; and the page shows the events stored at those versions. In
 * both, the stream's head is checked against the latest stored digest (`digest`).
 */
export const Verification = Schema.Struct({
  /** `stream` when every link was checked; `page` when those of the page were, from `page.anchor`. */
  scope: Schema.Literals(["stream", "page"]),
  verified: Schema.Boolean,
  /** How many events' links were checked: the stream's, or the page's. */
  events: Schema.Int,
  /** The versions checked and what anchors them, for a `page` verification; null for a `stream` one. */
  page: Schema.NullOr(
    Schema.Struct({
      fromVersion: Schema.Int,
      toVersion: Schema.Int,
      anchor: Schema.Struct({
        kind: Schema.Literals(["genesis", "previousPage"]),
        streamVersion: Schema.Int,
        hash: Schema.String
      })
    })
  ),
  finding: Schema.NullOr(
    Schema.Struct({
      kind: Schema.String,
      streamVersion: Schema.Int,
      eventId: Schema.NullOr(Schema.String),
      detail: Schema.String
    })
  ),
  /**
   * The digest the stream's head was checked against: the latest one stored, its checkpoint, and the version of the
   * stream's head it signed (null for a stream it did not sign). Null when no digest is stored.
   */
  digest: Schema.NullOr(
    Schema.Struct({
      id: Schema.Int,
      checkpoint: Schema.Struct({ commitSequence: Schema.String, globalPosition: Schema.String }),
      signedVersion: Schema.NullOr(Schema.Int)
    })
  )
}).annotate({ identifier: "Verification" })

/**
 * A page of an aggregate's history, with whether its hash chain verified (`null` when the application serves no
 * `Integrity` service): the page's links by default, the whole stream's with `verify=full`; and its head against the
 * latest stored digest's, which catches a truncated tail or a rewritten head up to that digest. Proof against the
 * digest kept outside the database is `annal verify --digest`.
 */
export const AggregateHistory = Schema.Struct({
  aggregateType: Schema.String,
  aggregateId: Schema.String,
  events: Schema.Array(AuditEvent),
  nextCursor: Schema.NullOr(Schema.String),
  verification: Schema.NullOr(Verification)
}).annotate({ identifier: "AggregateHistory" })

/** How many events match a filter. */
export const ChangeCount = Schema.Struct({ count: Schema.Int }).annotate({ identifier: "ChangeCount" })

const page = {
  limit: Schema.optional(PageSize),
  cursor: Schema.optional(Cursor)
}

/** The query parameters that filter events: those of `changes/count`, and of `events` and the export without paging. */
export const filterQuery = {
  eventType: Schema.optional(Schema.Array(EventType)),
  aggregateType: Schema.optional(AggregateType),
  aggregateId: Schema.optional(Uuid),
  userId: Schema.optional(Uuid),
  // A NUL is no character PostgreSQL's text can hold: a filter holding one could match nothing, and the database
  // would refuse the query with an error of its own.
  correlationId: Schema.optional(
    Schema.String.check(
      Schema.isBetweenLength(1, 128),
      Schema.makeFilter((value: string) => !value.includes("\u0000"), { message: "must not contain U+0000" })
    )
  ),
  from: Schema.optional(Instant),
  to: Schema.optional(Instant)
}

/** The query parameters of `GET /audit/events`. */
export const eventsQuery = {
  ...filterQuery,
  order: Schema.optional(Schema.Literals(["asc", "desc"])),
  ...page
}

const errors = [Forbidden, InternalError]

/** The audit endpoints, authenticated by bearer token, with typed 400s for malformed requests. */
export class AuditGroup extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("aggregateHistory", "/aggregates/:aggregateType/:aggregateId", {
      params: { aggregateType: AggregateType, aggregateId: Uuid },
      query: {
        ...page,
        /**
         * `page` (the default) verifies the page's links from the previous page's, at a cost of the page; `full`
         * verifies the whole stream, at a cost of the stream.
         */
        verify: Schema.optional(Schema.Literals(["page", "full"]))
      },
      success: AggregateHistory,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "An aggregate's history",
        description:
          "Every event of one aggregate, a page at a time, oldest first, decoded to the current version of each " +
          "type. Auditors read any aggregate; other users read the aggregates the application's access policy lets " +
          "them see. Each page's hash chain is verified from the previous page's last event, whose verified hash " +
          "the cursor carries: `verification.scope` is `page`, and says which versions were checked from what. " +
          "`verify=full` verifies the whole stream instead."
      })
    ),
    HttpApiEndpoint.get("userActivity", "/users/:userId/activity", {
      params: { userId: Uuid },
      query: page,
      success: EventPage,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "What a user did",
        description: "The user's events, newest first. Users read their own activity; auditors read anyone's."
      })
    ),
    HttpApiEndpoint.get("recentChanges", "/changes/recent", {
      query: {
        hours: Schema.optional(
          Schema.Finite.check(
            Schema.isBetween(
              { minimum: 1 / 60, maximum: maxRecentHours },
              { message: `must be a number of hours from 1/60 to ${maxRecentHours}` }
            )
          )
        ),
        aggregateType: Schema.optional(AggregateType),
        ...page
      },
      success: EventPage,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Recent changes",
        description: "What changed in the last `hours` (24 by default), newest first. Auditors only."
      })
    ),
    HttpApiEndpoint.get("changeCount", "/changes/count", {
      query: filterQuery,
      success: ChangeCount,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "How many changes",
        description:
          "How many events match every given filter (`from` inclusive, `to` exclusive). Users count their own " +
          "events (`userId`) or those of an aggregate they may see; auditors count anything."
      })
    ),
    HttpApiEndpoint.get("events", "/events", {
      query: eventsQuery,
      success: EventPage,
      error: errors
    }).annotateMerge(
      OpenApi.annotations({
        summary: "Events by filter",
        description:
          "Events that match every given filter: `eventType` (repeatable), `aggregateType`, `aggregateId`, `userId`, " +
          "`correlationId`, and the time range [`from`, `to`). Oldest first, or newest first with `order=desc`. " +
          "Users list their own events or those of an aggregate they may see; auditors list anything."
      })
    )
  )
  .pipe(ApiGroup.guard("/audit"))
  .annotateMerge(
    OpenApi.annotations({
      title: "Audit",
      description:
        "The audit trail: aggregate histories, user activity, recent changes, counts and filtered events. Reads only; " +
        "an auditor's reads are themselves recorded as `audit.read` events."
    })
  ) {}

/** The audit API on its own, for an application that serves nothing else, or to build a typed client. */
export class AuditApi extends HttpApi.make("annal-audit")
  .add(AuditGroup)
  .annotateMerge(OpenApi.annotations({ title: "Annal audit API", version: "0.1.0" })) {}
