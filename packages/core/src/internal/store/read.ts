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
  /**
   * With a fence: the largest position the range can hold, read after the fence was taken (`makeLastPosition`).
   * Every row at or below the fence was visible then, so none lies above it; without it, the last page of a snapshot
   * would walk every row appended since, each refused by the fence one at a time.
   */
  readonly upTo?: bigint | undefined
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
    if (range.upTo !== undefined) where.push(sql`e.global_position <= ${range.upTo.toString()}::bigint`)
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
  const fromRow = makeFromRow()
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

/**
 * The `DateTime.Utc` of a valid `Date`, reusing the last one built when the instant is the same. Its constructor is
 * the costliest thing a row needs (it defines a property with `Object.defineProperty`), and the rows of one page share
 * instants: every event of a transaction has its `recorded_at`, and a batch often one `timestamp`. A `DateTime` is an
 * immutable value, so two events may hold the same one.
 */
const makeUtcOf = () => {
  let lastMillis = Number.NaN
  let last: DateTime.Utc | undefined
  return (value: unknown): DateTime.Utc | undefined => {
    if (!(value instanceof Date)) return undefined
    const millis = value.getTime()
    if (millis === lastMillis) return last
    if (Number.isNaN(millis)) return undefined
    lastMillis = millis
    last = DateTime.fromDateUnsafe(value)
    return last
  }
}

const decodeMetadata = Schema.decodeUnknownExit(Event.EventMetadata)

/**
 * The metadata as `Event.EventMetadata` decodes it (unknown keys left out); its schema decodes any extras. An object
 * with only known keys, each a string, is the decoded value already and is returned as it is, not copied.
 */
const metadataOf = (value: unknown): Event.EventMetadata | undefined => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined
  const record = value as Readonly<Record<string, unknown>>
  let known = true
  for (const key in record) {
    switch (key) {
      case "ipAddress":
      case "userAgent":
      case "reason":
      case "correlationId":
      case "causationId":
        if (typeof record[key] !== "string") return undefined
        break
      case "extras": {
        const decoded = decodeMetadata(value)
        return Exit.isSuccess(decoded) ? decoded.value : undefined
      }
      default:
        known = false
    }
  }
  if (known) return record as Event.EventMetadata
  const metadata: { -readonly [K in (typeof metadataKeys)[number]]?: string } = {}
  for (const key of metadataKeys) {
    const field = record[key]
    if (typeof field === "string") metadata[key] = field
  }
  return metadata
}

const metadataKeys = ["ipAddress", "userAgent", "reason", "correlationId", "causationId"] as const

/**
 * A bigint column selected as text; `undefined` if it is anything else. Up to 15 digits the text is parsed as a
 * number, exact below 2^53 and twice as fast as `BigInt` of the text; longer text goes to `BigInt`, which refuses
 * what is not an integer.
 */
const bigintOf = (value: unknown): bigint | undefined => {
  if (typeof value !== "string" || value === "") return undefined
  if (value.length <= 15) {
    for (let index = 0; index < value.length; index++) {
      const code = value.charCodeAt(index)
      if (code < 48 || code > 57) return undefined
    }
    return BigInt(Number(value))
  }
  try {
    return BigInt(value)
  } catch {
    return undefined
  }
}

/**
 * The mapping of one page's rows to raw events: each row as a raw event, or `undefined` when anything in it is not
 * what the columns promise. It keeps the last transaction id and instants it parsed, which the next rows mostly share.
 *
 * The columns are read straight off the row, without a presence check each: a missing column reads as `undefined`,
 * which every check below refuses (`isJson` included), so a row without one still goes to the schema. Thirteen
 * `hasProperty` calls were a fifth of this function's time.
 */
const makeFromRow = () => {
  const timestampOf = makeUtcOf()
  const recordedAtOf = makeUtcOf()
  let lastTransactionText: unknown = undefined
  let lastTransactionId: bigint | undefined
  return (value: unknown): Event.RawEvent | undefined => {
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
    const transactionText = row["transaction_id"]
    if (transactionText !== lastTransactionText) {
      lastTransactionId = bigintOf(transactionText)
      lastTransactionText = transactionText
    }
    const transactionId = lastTransactionId
    const metadata = metadataOf(row["metadata"])
    if (globalPosition === undefined || transactionId === undefined || metadata === undefined) return undefined
    const timestamp = timestampOf(row["timestamp"])
    const recordedAt = recordedAtOf(row["recorded_at"])
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

/**
 * Builds the statement that reads the largest position stored (0 in an empty table): one step down the global
 * position index. Read after a fence, it bounds every row at or below the fence.
 */
export const makeLastPosition = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return sql`SELECT COALESCE(max(e.global_position), 0)::text AS last FROM ${table} e`.withoutTransform.pipe(
    Effect.flatMap((rows) => {
      const last = bigintOf((rows[0] as { readonly last?: unknown } | undefined)?.last)
      return last === undefined
        ? Effect.fail(
            new StorageError({
              operation: "EventStore.stream",
              reason: new UnexpectedRow(),
              detail: "the last position is not a number"
            })
          )
        : Effect.succeed(last)
    })
  )
}

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
