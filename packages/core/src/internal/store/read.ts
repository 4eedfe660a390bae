/**
 * The read statement: every query of the store is one keyset-paginated range over an index, filtered by any
 * combination of event types, aggregate, user, correlation id and time range.
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import * as Event from "../../Event.ts"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import type { Filter } from "../../Filter.ts"
import { commitObjects } from "../feed/commitOrder.ts"
import { clauses } from "../filter.ts"
import { isJson } from "./json.ts"

/**
 * A keyset range: rows after (or, backwards, before) `after`, at most `limit` of them; with `fence`, only the rows of
 * transactions whose commit sequence is at or below it (migration 6), the commits a snapshot taken then could see.
 */
export interface Range {
  readonly after: bigint | undefined
  readonly direction: "forward" | "backward"
  readonly limit: number
  readonly fence?: bigint | undefined
}

/** Builds the read statement for one events table. */
export const makeRead = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  const commits = sql(commitObjects(config).commits)
  return (filter: Filter, range: Range): Effect.Effect<ReadonlyArray<Event.RawEvent>, SqlError | StorageError> => {
    const where = clauses(sql, filter)
    if (range.fence !== undefined) {
      // One lookup of the commits' unique transaction index per row read: a transaction still open, or committed
      // after the fence, has no row at or below it.
      where.push(sql`EXISTS (SELECT 1 FROM ${commits} c
  WHERE c.transaction_id = e.transaction_id AND c.commit_sequence <= ${range.fence.toString()}::bigint)`)
    }
    const forward = range.direction === "forward"
    if (range.after !== undefined) {
      where.push(
        forward
          ? sql`e.global_position > ${range.after.toString()}::bigint`
          : sql`e.global_position < ${range.after.toString()}::bigint`
      )
    }
    // Qualified: the select list renames global_position to its text form, and an unqualified ORDER BY would
    // sort by that text.
    const order = forward ? sql`ORDER BY e.global_position ASC` : sql`ORDER BY e.global_position DESC`
    return sql`SELECT ${eventColumns(sql)}
FROM ${table} e WHERE ${sql.and(where)} ${order} LIMIT ${range.limit}`.withoutTransform.pipe(
      Effect.flatMap((rows) => decodeRows(rows))
    )
  }
}

/**
 * The columns `decodeRows` reads, of the events table aliased `e`, the bigints as text so that neither driver's
 * integer parsing matters.
 */
export const eventColumns = (sql: SqlClient.SqlClient): Statement.Fragment =>
  sql`e.id, e.event_type, e.aggregate_id, e.aggregate_type, e.user_id, e."timestamp", e.version, e.data, e.metadata,
  e.stream_version, e.global_position::text AS global_position, e.transaction_id::text AS transaction_id,
  e.recorded_at`

/**
 * Decodes rows selected with `eventColumns` into raw events; an unexpected row is a `StorageError` of `operation`.
 *
 * Each row is checked by hand first: the columns' types already guarantee most of what the row schema checks (that
 * `data` is JSON, above all, which the schema verified node by node), and the schema cost several times the rest of a
 * read. A row the hand check does not take goes through the schema, whose message names what is wrong.
 */
export const decodeRows = (
  rows: ReadonlyArray<unknown>,
  operation = "EventStore.read"
): Effect.Effect<ReadonlyArray<Event.RawEvent>, StorageError> => {
  const events: Array<Event.RawEvent> = []
  for (const row of rows) {
    const event = fromRow(row)
    if (event === undefined) return decodeWithSchema(rows, operation)
    events.push(event)
  }
  return Effect.succeed(events)
}

const decodeWithSchema = (
  rows: ReadonlyArray<unknown>,
  operation: string
): Effect.Effect<ReadonlyArray<Event.RawEvent>, StorageError> =>
  decodeEventRows(rows).pipe(
    Effect.map((decoded) => decoded.map(toEvent)),
    Effect.mapError(
      (error) =>
        new StorageError({
          operation,
          reason: new UnexpectedRow(),
          detail: error.message
        })
    )
  )

/** A valid `Date` as a `DateTime.Utc`. */
const utcOf = (value: unknown): DateTime.Utc | undefined =>
  value instanceof Date && !Number.isNaN(value.getTime()) ? DateTime.fromDateUnsafe(value) : undefined

const metadataKeys = ["ipAddress", "userAgent", "reason", "correlationId", "causationId"] as const

const decodeMetadata = Schema.decodeUnknownExit(Event.EventMetadata)

/** The metadata as `Event.EventMetadata` decodes it (unknown keys left out); its schema decodes any extras. */
const metadataOf = (value: unknown): Event.EventMetadata | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  if ("extras" in value) {
    const decoded = decodeMetadata(value)
    return Exit.isSuccess(decoded) ? decoded.value : undefined
  }
  const metadata: { -readonly [K in (typeof metadataKeys)[number]]?: string } = {}
  for (const key of metadataKeys) {
    if (!(key in value)) continue
    const field: unknown = Reflect.get(value, key)
    if (typeof field !== "string") return undefined
    metadata[key] = field
  }
  return metadata
}

/** A bigint column selected as text; `undefined` if it is anything else. */
const bigintOf = (value: unknown): bigint | undefined => {
  if (typeof value !== "string" || value === "") return undefined
  try {
    return BigInt(value)
  } catch {
    return undefined
  }
}

/**
 * One row as a raw event, or `undefined` when anything in it is not what the columns promise.
 *
 * The columns are read straight off the row, without a presence check each: a missing column reads as `undefined`,
 * which every check below refuses (`isJson` included), so a row without one still goes to the schema. Thirteen
 * `hasProperty` calls were a fifth of this function's time.
 */
const fromRow = (value: unknown): Event.RawEvent | undefined => {
  if (typeof value !== "object" || value === null) return undefined
  const row = value as Readonly<Record<string, unknown>>
  const id = row["id"]
  const eventType = row["event_type"]
  const aggregateId = row["aggregate_id"]
  const aggregateType = row["aggregate_type"]
  const userId = row["user_id"]
  const version = row["version"]
  const data = row["data"]
  const streamVersion = row["stream_version"]
  if (
    typeof id !== "string" ||
    typeof eventType !== "string" ||
    typeof aggregateId !== "string" ||
    typeof aggregateType !== "string" ||
    typeof userId !== "string" ||
    typeof version !== "number" ||
    !Number.isSafeInteger(version) ||
    typeof streamVersion !== "number" ||
    !Number.isSafeInteger(streamVersion) ||
    !isJson(data)
  ) {
    return undefined
  }
  const globalPosition = bigintOf(row["global_position"])
  const transactionId = bigintOf(row["transaction_id"])
  const metadata = metadataOf(row["metadata"])
  if (globalPosition === undefined || transactionId === undefined || metadata === undefined) return undefined
  // The timestamps last: a DateTime is the costliest thing built here, and a row refused above builds none.
  const timestamp = utcOf(row["timestamp"])
  const recordedAt = utcOf(row["recorded_at"])
  if (timestamp === undefined || recordedAt === undefined) return undefined
  return {
    eventId: id,
    eventType,
    aggregateId,
    aggregateType,
    userId,
    timestamp,
    version,
    data,
    metadata,
    streamVersion,
    globalPosition,
    transactionId,
    recordedAt
  }
}

const toEvent = (row: EventRow): Event.RawEvent => ({
  eventId: row.id,
  eventType: row.event_type,
  aggregateId: row.aggregate_id,
  aggregateType: row.aggregate_type,
  userId: row.user_id,
  timestamp: row.timestamp,
  version: row.version,
  data: row.data,
  metadata: row.metadata,
  streamVersion: row.stream_version,
  globalPosition: row.global_position,
  transactionId: row.transaction_id,
  recordedAt: row.recorded_at
})

// Both engines return timestamptz as a Date; the bigint columns are selected as text so that neither driver's
// integer parsing matters.
export const Timestamp = Schema.Union([Schema.DateTimeUtcFromDate, Schema.DateTimeUtcFromString])

const EventRow = Schema.Struct({
  id: Schema.String,
  event_type: Schema.String,
  aggregate_id: Schema.String,
  aggregate_type: Schema.String,
  user_id: Schema.String,
  timestamp: Timestamp,
  version: Schema.Int,
  data: Schema.Json,
  metadata: Event.EventMetadata,
  stream_version: Schema.Int,
  global_position: Schema.BigIntFromString,
  transaction_id: Schema.BigIntFromString,
  recorded_at: Timestamp
})
type EventRow = typeof EventRow.Type

const decodeEventRows = Schema.decodeUnknownEffect(Schema.Array(EventRow))

/** Builds the count statement for one events table. */
export const makeCount = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (filter: Filter): Effect.Effect<number, SqlError> =>
    sql<{
      readonly count: string
    }>`SELECT count(*)::text AS count FROM ${table} e WHERE ${sql.and(clauses(sql, filter))}`.withoutTransform.pipe(
      Effect.map((rows) => Number(rows[0]?.count ?? 0))
    )
}
