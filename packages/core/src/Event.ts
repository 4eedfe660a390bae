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
