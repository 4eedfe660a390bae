/**
 * Events as a file, CSV or NDJSON, written with Effect's own encoders (`effect/encoding/Csv` and `Ndjson`). The HTTP
 * export and `annal export` share it, so their files have the same columns and encoding; not always the same
 * values. `annal export` reads with `EventRegistry.raw` and writes each event as stored (its stored `version` and
 * `data`), which is what an archive of the log should hold; `GET /audit/export` decodes through the application's
 * registry and writes each event as the application reads it now, so an event stored before an upcast comes out at
 * the current version, with the upcast's fields.
 *
 * The encoders turn each chunk of events into one chunk of bytes and pull the next chunk only when that one was
 * taken: fed by a store stream (`EventStore.stream`, a page at a time), an export of any range holds about one page
 * in memory, and a slow reader slows the reads down instead of piling them up.
 *
 * - NDJSON: one event per line, as the audit API's `AuditEvent` JSON (times as ISO strings, positions as strings).
 * - CSV: a header, then one row per event: the envelope's columns, `data` and `metadata` as JSON, and `decoded` /
 *   `decodeError` for an event the reader's registry could not decode (exported as stored, flagged). Auditors open
 *   these files in spreadsheets, and some cells hold text a caller chose (the correlation id comes from a request
 *   header): a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return, which a spreadsheet would
 *   run as a formula, is written with a leading `'` (OWASP's rule for CSV injection). `data` and `metadata` cells
 *   are JSON, which never starts with a formula character but for a negative number, and are written as they are.
 *   NDJSON holds every value exactly as stored.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Csv from "effect/encoding/Csv"
import * as Ndjson from "effect/encoding/Ndjson"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Event from "./Event.ts"

/** The formats an export is written in. */
export const Format = Schema.Literals(["csv", "ndjson"])

/** A format an export is written in. */
export type Format = typeof Format.Type

/**
 * An event to export: decoded to JSON, or as stored and flagged `decoded: false` with the reason when the reader's
 * registry could not decode it.
 */
export interface Exported extends Event.Event<string, Schema.Json> {
  readonly decoded?: false
  readonly decodeError?: string
}

/** The CSV columns, in order: the envelope's, then `data` and `metadata` as JSON, then the decoding flag. */
export const columns: ReadonlyArray<string> = [
  "eventId",
  "eventType",
  "aggregateType",
  "aggregateId",
  "userId",
  "timestamp",
  "version",
  "streamVersion",
  "globalPosition",
  "transactionId",
  "recordedAt",
  "correlationId",
  "causationId",
  "data",
  "metadata",
  "decoded",
  "decodeError"
]

/** The envelope's text fields, which both formats write as they are. */
const envelope = (event: Exported) => ({
  eventId: event.eventId,
  eventType: event.eventType,
  aggregateType: event.aggregateType,
  aggregateId: event.aggregateId,
  userId: event.userId,
  timestamp: DateTime.formatIso(event.timestamp)
})

/** An event as one NDJSON line's value: the audit API's JSON of it. */
export const toJson = (event: Exported): { readonly [key: string]: Schema.Json } => ({
  ...envelope(event),
  version: event.version,
  data: event.data,
  metadata: event.metadata as Schema.Json,
  streamVersion: event.streamVersion,
  globalPosition: String(event.globalPosition),
  transactionId: String(event.transactionId),
  recordedAt: DateTime.formatIso(event.recordedAt),
  ...(event.decoded === false ? { decoded: false, decodeError: event.decodeError ?? "" } : {})
})

/**
 * An event as one CSV row, by column. The correlation and causation ids are also columns of their own, as they are
 * what a spreadsheet filters on; `metadata` still holds them.
 */
export const toRow = (event: Exported): { readonly [column: string]: string } => {
  const { eventId, eventType, aggregateType, aggregateId, userId, timestamp } = envelope(event)
  return {
    eventId: textCell(eventId),
    eventType: textCell(eventType),
    aggregateType: textCell(aggregateType),
    aggregateId: textCell(aggregateId),
    userId: textCell(userId),
    timestamp,
    version: String(event.version),
    streamVersion: String(event.streamVersion),
    globalPosition: String(event.globalPosition),
    transactionId: String(event.transactionId),
    recordedAt: DateTime.formatIso(event.recordedAt),
    correlationId: textCell(event.metadata.correlationId ?? ""),
    causationId: textCell(event.metadata.causationId ?? ""),
    data: JSON.stringify(event.data),
    metadata: JSON.stringify(event.metadata),
    decoded: event.decoded === false ? "false" : "true",
    decodeError: textCell(event.decodeError ?? "")
  }
}

/** The first characters that make a spreadsheet read a cell as a formula. */
const formulaStart = /^[=+\-@\t\r]/

/** A text cell as a spreadsheet shows it but never runs it: a formula's text gets a leading `'`. */
export const textCell = (text: string): string => (formulaStart.test(text) ? `'${text}` : text)

/** The media type of a format. */
export const contentType = (format: Format): string =>
  format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8"

/** The file name an export made at `at` is offered under, such as `annal-export-20250401T120000Z.csv`. */
export const fileName = (format: Format, at: DateTime.Utc): string =>
  `annal-export-${DateTime.formatIso(at).replace(/\.\d+/, "").replaceAll(/[-:]/g, "")}.${format}`

/** `events` written in `format`, as UTF-8 bytes; a CSV starts with its header even when there is no event. */
export const encode =
  (format: Format) =>
  <E, R>(events: Stream.Stream<Exported, E, R>): Stream.Stream<Uint8Array, E, R> =>
    format === "csv"
      ? events.pipe(Stream.map(toRow), Stream.pipeThroughChannel(Csv.encode({ columns, headers: true })))
      : events.pipe(
          Stream.map(toJson),
          Stream.pipeThroughChannel(Ndjson.encode()),
          // `toJson` gives JSON values only (no bigint, no undefined, no cycle): `JSON.stringify` cannot refuse one.
          Stream.catchTag("NdjsonError", (error) => Stream.die(error))
        )
