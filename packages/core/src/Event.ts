/**
 * The event envelope (docs/design.md's BaseEvent): an immutable record of one state change, with who made it, when,
 * in which stream, and the context of the request that caused it.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Schema from "effect/Schema"

/** Context about the event: where the request came from and why. */
export const EventMetadata = Schema.Struct({
  ipAddress: Schema.optionalKey(Schema.String),
  userAgent: Schema.optionalKey(Schema.String),
  reason: Schema.optionalKey(Schema.String),
  correlationId: Schema.optionalKey(Schema.String),
  causationId: Schema.optionalKey(Schema.String),
  /** Free-form context that has no field of its own, such as a tenant or a job name. */
  extras: Schema.optionalKey(Schema.Record(Schema.String, Schema.Json))
})

/** Context about the event: where the request came from and why. */
export type EventMetadata = typeof EventMetadata.Type

/** A stored event, decoded: `data` is the payload of the current schema version, whatever version was stored. */
export interface Event<Type extends string = string, Data = unknown> {
  readonly eventId: string
  readonly eventType: Type
  readonly aggregateId: string
  readonly aggregateType: string
  readonly userId: string
  /** When it happened, as the application saw it. */
  readonly timestamp: DateTime.Utc
  /** The schema version of `data`: the current one once decoded, the stored one in raw mode. */
  readonly version: number
  readonly data: Data
  readonly metadata: EventMetadata
  /** Its position in its aggregate's stream, from 1, without gaps. */
  readonly streamVersion: number
  /** Its position in the whole log, in insertion order (not commit order: the feed reads by transaction). */
  readonly globalPosition: bigint
  /** The id of the transaction that wrote it. */
  readonly transactionId: bigint
  /** When the database recorded it (the transaction's start). */
  readonly recordedAt: DateTime.Utc
}

/** An event read without decoding its payload, as explicitly requested raw mode returns it. */
export type RawEvent = Event<string, Schema.Json>

/** Event types are lowercase dotted segments, `{aggregate}.{action}`: `organization.gst.added`. */
export const eventTypePattern: RegExp = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/

/** Aggregate types are one lowercase segment: `organization`, `bank_account`. */
export const aggregateTypePattern: RegExp = /^[a-z][a-z0-9_]*$/

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether a string is a UUID in its canonical hyphenated form. */
export const isUuid = (value: string): boolean => uuidPattern.test(value)

/** Whether a string is an event type the store takes: `eventTypePattern`, at most 100 characters. */
export const isEventType = (value: string): boolean => value.length <= 100 && eventTypePattern.test(value)

/** Whether a string is an aggregate type the store takes: `aggregateTypePattern`, at most 50 characters. */
export const isAggregateType = (value: string): boolean => value.length <= 50 && aggregateTypePattern.test(value)

/**
 * An event type, checked (`isEventType`) and branded: for input read at a boundary (an HTTP query, a CLI flag), so
 * that what passes it is what the store and every filter take. The core's own functions take plain strings.
 */
export const EventType = Schema.String.check(
  Schema.makeFilter(isEventType, {
    message: "must be lowercase dotted segments, such as organization.created, of at most 100 characters"
  })
).pipe(Schema.brand("@annal/core/EventType"))

/** A checked event type. */
export type EventType = typeof EventType.Type

/** An aggregate type, checked (`isAggregateType`) and branded; see `EventType`. */
export const AggregateType = Schema.String.check(
  Schema.makeFilter(isAggregateType, {
    message: "must be one lowercase segment, such as organization, of at most 50 characters"
  })
).pipe(Schema.brand("@annal/core/AggregateType"))

/** A checked aggregate type. */
export type AggregateType = typeof AggregateType.Type

/** A UUID (an event, aggregate or user id) in its canonical hyphenated form, checked and branded; see `EventType`. */
export const Uuid = Schema.String.check(Schema.makeFilter(isUuid, { message: "must be a UUID" })).pipe(
  Schema.brand("@annal/core/Uuid")
)

/** A checked UUID. */
export type Uuid = typeof Uuid.Type

/**
 * A compile-time check of an event type literal: it resolves to `never` for names that are not lowercase or have
 * no dot, so `define("Organization Created")` does not compile. The runtime check is `eventTypePattern`.
 */
export type ValidEventType<T extends string> =
  T extends Lowercase<T>
    ? T extends `${string} ${string}`
      ? never
      : T extends `${string}.${string}`
        ? T
        : never
    : never

/** Why an instant outside the storable years is refused, in every error that refuses one. */
export const storableInstants = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"

/**
 * Whether an instant is one an event may carry and a filter send: years 0001 to 9999 in UTC, the ones its ISO text names without a sign
 * or a fifth digit, which is what PostgreSQL reads as a timestamp. No event is stored outside them.
 */
export const isStorableInstant = (instant: DateTime.Utc): boolean => {
  const millis = DateTime.toEpochMillis(instant)
  return millis >= firstInstant && millis <= lastInstant
}
// Parsed rather than built with Date.UTC, which reads the years 0 to 99 as 1900 to 1999.
const firstInstant = Date.parse("0001-01-01T00:00:00.000Z")
const lastInstant = Date.parse("9999-12-31T23:59:59.999Z")
