/**
 * The hash chain of an aggregate stream: what is hashed for one event and how links are formed. Reading rows back
 * is in `read.ts`, telling what happened at a broken link in `diagnosis.ts`.
 *
 * `hash(e_n) = SHA-256(hash(e_{n-1}) ‖ UTF-8(RFC 8785 text of record(e_n)))`, with 32 zero bytes before the first
 * event. The record covers every stored field that says what happened: ids, type, aggregate, user, timestamp,
 * schema version, data, metadata, the tracing ids and the stream version. It leaves out what the database assigns
 * on its own (global position, transaction id, recorded at): those order the log, they are not the record.
 *
 * The timestamp is hashed as the decimal count of microseconds since 1970-01-01T00:00:00Z, which is exactly what
 * PostgreSQL keeps: JavaScript dates hold milliseconds, and a row written by anything else may carry microseconds
 * that a `Date` would drop.
 */
import { Buffer } from "node:buffer"
import { hash } from "node:crypto"
import * as CanonicalJson from "../../CanonicalJson.ts"

/** The fields of an event that its record is made of. `data` and `metadata` are JSON values, checked by the caller. */
export interface RecordFields {
  readonly eventId: string
  readonly eventType: string
  readonly aggregateType: string
  readonly aggregateId: string
  readonly userId: string
  /** Microseconds since the Unix epoch, in decimal. */
  readonly timestamp: string
  readonly version: number
  /** A JSON value. */
  readonly data: unknown
  /** A JSON value. */
  readonly metadata: unknown
  readonly correlationId: string | null
  readonly causationId: string | null
  readonly streamVersion: number
}

/** One stored event, as the chain reads it back. */
export interface ChainedEvent extends RecordFields {
  /** The stored hash in lowercase hex; null on a row that no append of Annal wrote. */
  readonly hash: string | null
  readonly globalPosition: bigint
}

/** The hash before the first event of every stream: 32 zero bytes, in hex. */
export const genesis: string = "0".repeat(64)

/** The record that is hashed for one event, as a JSON value (its canonical text is what the chain hashes). */
export const record = (event: RecordFields): { readonly [field: string]: unknown } => ({
  aggregateId: event.aggregateId,
  aggregateType: event.aggregateType,
  causationId: event.causationId,
  correlationId: event.correlationId,
  data: event.data,
  eventId: event.eventId,
  eventType: event.eventType,
  metadata: event.metadata,
  streamVersion: event.streamVersion,
  timestamp: event.timestamp,
  userId: event.userId,
  version: event.version
})

/**
 * The canonical text of an event's record around its stream version: `head + streamVersion + tail`. The append
 * statement assigns stream versions in SQL, so the application sends these two parts and SQL puts the number
 * between them. The keys are written in RFC 8785 order by hand, for speed; a test checks the result against
 * `CanonicalJson.serialize(record(event))`.
 */
export const canonicalParts = (
  event: Omit<RecordFields, "streamVersion">
): { readonly head: string; readonly tail: string } =>
  canonicalPartsOfText(event, CanonicalJson.serialize(event.data), CanonicalJson.serialize(event.metadata))

/**
 * `canonicalParts` with `data` and `metadata` already in canonical text: the append sends the same texts to the
 * database as the events' jsonb, so each payload is serialised once.
 */
export const canonicalPartsOfText = (
  event: Omit<RecordFields, "streamVersion" | "data" | "metadata">,
  dataText: string,
  metadataText: string
): { readonly head: string; readonly tail: string } => {
  const text = CanonicalJson.serializeString
  const nullable = (value: string | null) => (value === null ? "null" : text(value))
  return {
    head:
      `{"aggregateId":${text(event.aggregateId)},"aggregateType":${text(event.aggregateType)},` +
      `"causationId":${nullable(event.causationId)},"correlationId":${nullable(event.correlationId)},` +
      `"data":${dataText},"eventId":${text(event.eventId)},` +
      `"eventType":${text(event.eventType)},"metadata":${metadataText},"streamVersion":`,
    tail:
      `,"timestamp":${text(event.timestamp)},"userId":${text(event.userId)},` +
      `"version":${CanonicalJson.serializeNumber(event.version)}}`
  }
}

/** The canonical text of one event's record. */
export const canonical = (event: RecordFields): string => {
  const { head, tail } = canonicalParts(event)
  return `${head}${CanonicalJson.serializeNumber(event.streamVersion)}${tail}`
}

/**
 * `SHA-256(previous ‖ UTF-8(canonical))`, in hex: one link of the chain. One-shot `hash` over one buffer: a batch
 * append hashes every event in the application, and a `Hash` object per event cost a quarter more.
 */
export const link = (previous: string, canonicalText: string): string =>
  hash("sha256", Buffer.concat([Buffer.from(previous, "hex"), Buffer.from(canonicalText, "utf8")]), "hex")

/** Microseconds since the Unix epoch of a millisecond instant, as the chain writes timestamps. */
export const microsOfMillis = (epochMillis: number): string => (BigInt(Math.trunc(epochMillis)) * 1000n).toString()

/** How events are hashed and linked: the real scheme, or a variant that a test injects. */
export interface HashScheme {
  /** The text hashed for one event. */
  readonly canonical: (event: RecordFields) => string
  /** The hash of an event from its predecessor's hash and its canonical text. */
  readonly link: (previous: string, canonicalText: string) => string
}

/** The scheme that the append statement implements in SQL. */
export const scheme: HashScheme = { canonical, link }
