/**
 * Reading stored events back for the chain: the whole table in stream order, page by page, or one stream.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import type { ChainedEvent } from "./chain.ts"

/**
 * The fields the chain reads, each in the exact form it was hashed from: uuids as lowercase text, the timestamp in
 * microseconds, the hash in hex, jsonb as JSON. `within` tells whether the row is at or before a checkpoint, for
 * digests.
 *
 * A page comes back as one JSON array of arrays (`json_agg`), parsed by `JSON.parse`: a row per value costs the
 * drivers, PGlite above all, several times more than the hashing, and the JSON that jsonb writes is exactly what
 * `data::text` would give, so the values parse the same.
 */
const rowArray = (sql: SqlClient.SqlClient, within: Statement.Fragment): Statement.Fragment =>
  sql`json_build_array(e.id, e.event_type, e.aggregate_type, e.aggregate_id, e.user_id,
  CASE WHEN isfinite(e."timestamp") THEN trunc(extract(epoch FROM e."timestamp") * 1000000)::text
    ELSE e."timestamp"::text END,
  e.version, e.data, e.metadata, e.correlation_id, e.causation_id, e.stream_version, encode(e.hash, 'hex'),
  e.global_position::text, ${within})`

/** One row as read, mapped; `within` is false when no checkpoint was asked about. */
export interface ReadRow {
  readonly event: ChainedEvent
  readonly within: boolean
}

/** Maps a page of `rowArray`s; a row of another shape is a storage error, never a silent pass. */
export const decodePage = (text: string | null): Effect.Effect<ReadonlyArray<ReadRow>, StorageError> =>
  Effect.suspend(() => {
    const parsed: unknown = text === null ? [] : JSON.parse(text)
    if (!Array.isArray(parsed)) return Effect.fail(unexpected("a page is not an array"))
    const rows: Array<ReadRow> = []
    for (const row of parsed) {
      const decoded = decodeRow(row)
      if (decoded === undefined) return Effect.fail(unexpected(`unexpected row ${JSON.stringify(row)}`))
      rows.push(decoded)
    }
    return Effect.succeed(rows)
  })

const unexpected = (detail: string) =>
  new StorageError({ operation: "Integrity.read", reason: new UnexpectedRow(), detail })

const isString = (value: unknown): value is string => typeof value === "string"
const isNullableString = (value: unknown): value is string | null => value === null || typeof value === "string"
const isInteger = (value: unknown): value is number => Number.isSafeInteger(value)

const decodeRow = (row: unknown): ReadRow | undefined => {
  if (!Array.isArray(row) || row.length !== 15) return undefined
  const [id, eventType, aggregateType, aggregateId, userId, timestamp, version, data, metadata] = row
  const [correlationId, causationId, streamVersion, hash, globalPosition, within] = row.slice(9)
  if (
    !isString(id) ||
    !isString(eventType) ||
    !isString(aggregateType) ||
    !isString(aggregateId) ||
    !isString(userId) ||
    !isString(timestamp) ||
    !isInteger(version) ||
    !isNullableString(correlationId) ||
    !isNullableString(causationId) ||
    !isInteger(streamVersion) ||
    !isNullableString(hash) ||
    !isString(globalPosition) ||
    typeof within !== "boolean"
  ) {
    return undefined
  }
  return {
    event: {
      eventId: id,
      eventType,
      aggregateType,
      aggregateId,
      userId,
      timestamp,
      version,
      data,
      metadata,
      correlationId,
      causationId,
      streamVersion,
      hash,
      globalPosition: BigInt(globalPosition)
    },
    within
  }
}

/** Where a read of the whole table stopped: the last row returned, in index order. */
export interface Position {
  readonly aggregateType: string
  readonly aggregateId: string
  readonly streamVersion: number
  readonly globalPosition: bigint
}

/** How many bytes of payload one page carries at most (plus one row): JavaScript strings stop at 2^29 characters. */
const pageBytes = 16 * 1024 * 1024

/**
 * Reads the table, or one stream, in stream order: at most `limit` rows after `after`, fewer when their payloads
 * pass `maxBytes` (as stored, so compressed), never none while rows remain, so an empty page is the end. The keyset is the stream key, which
 * the unique index serves (a four-column row comparison would not use it); rows of the last key already seen are
 * skipped by global position, so that two rows claiming one version (possible only once someone dropped the
 * constraint) are both read.
 */
export const makeReadPage =
  (sql: SqlClient.SqlClient, table: Statement.Identifier) =>
  (
    after: Position | undefined,
    limit: number,
    within: Statement.Fragment,
    stream?: { readonly aggregateType: string; readonly aggregateId: string },
    maxBytes: number = pageBytes
  ): Effect.Effect<ReadonlyArray<ReadRow>, SqlError | StorageError> => {
    const where: Array<Statement.Fragment> = []
    if (stream !== undefined) {
      where.push(sql`e.aggregate_type = ${stream.aggregateType} AND e.aggregate_id = ${stream.aggregateId}::uuid`)
    }
    if (after !== undefined) {
      where.push(sql`(e.aggregate_type, e.aggregate_id, e.stream_version) >= (${after.aggregateType}::text, ${after.aggregateId}::uuid, ${after.streamVersion}::integer)
  AND NOT (e.aggregate_type = ${after.aggregateType} AND e.aggregate_id = ${after.aggregateId}::uuid
    AND e.stream_version = ${after.streamVersion}::integer AND e.global_position <= ${after.globalPosition.toString()}::bigint)`)
    }
    const order = sql`ORDER BY e.aggregate_type, e.aggregate_id, e.stream_version, e.global_position`
    return sql<{ readonly page: string | null }>`SELECT json_agg(${rowArray(sql, within)} ${order})::text AS page
FROM (
  SELECT e.*, sum(pg_column_size(e.data) + pg_column_size(e.metadata)) OVER (${order} ROWS UNBOUNDED PRECEDING)
    - pg_column_size(e.data) - pg_column_size(e.metadata) AS bytes_before
  FROM (SELECT * FROM ${table} e WHERE ${sql.and(where)} ${order} LIMIT ${limit}) e
) e
WHERE e.bytes_before < ${maxBytes}`.withoutTransform.pipe(Effect.flatMap((rows) => decodePage(rows[0]?.page ?? null)))
  }

/** The position of a row, to resume a read after it. */
export const positionOf = (event: ChainedEvent): Position => ({
  aggregateType: event.aggregateType,
  aggregateId: event.aggregateId,
  streamVersion: event.streamVersion,
  globalPosition: event.globalPosition
})

/** Reads one whole stream in order, rows as the chain hashes them. */
export const makeReadStream = (sql: SqlClient.SqlClient, table: Statement.Identifier) => {
  const readPage = makeReadPage(sql, table)
  return (
    aggregateType: string,
    aggregateId: string
  ): Effect.Effect<ReadonlyArray<ChainedEvent>, SqlError | StorageError> =>
    Effect.gen(function* () {
      const events: Array<ChainedEvent> = []
      let after: Position | undefined
      while (true) {
        const page = yield* readPage(after, 2000, sql`false`, { aggregateType, aggregateId })
        const last = page.at(-1)
        if (last === undefined) return events
        for (const row of page) events.push(row.event)
        after = positionOf(last.event)
      }
    })
}

/**
 * Reads the rows of one stream from version `from` to `to`, both included, in order: what a page's verification
 * hashes, at a cost of the range and not of the stream.
 */
export const makeReadRange = (sql: SqlClient.SqlClient, table: Statement.Identifier) => {
  const readPage = makeReadPage(sql, table)
  return (
    aggregateType: string,
    aggregateId: string,
    from: number,
    to: number
  ): Effect.Effect<ReadonlyArray<ChainedEvent>, SqlError | StorageError> =>
    Effect.gen(function* () {
      const events: Array<ChainedEvent> = []
      // Every row at `from` and after: no global position is below zero.
      let after: Position = { aggregateType, aggregateId, streamVersion: from, globalPosition: -1n }
      while (true) {
        const page = yield* readPage(
          after,
          Math.max(1, Math.min(2000, to - Math.max(after.streamVersion, 0) + 2)),
          sql`false`,
          {
            aggregateType,
            aggregateId
          }
        )
        const last = page.at(-1)
        if (last === undefined) return events
        for (const row of page) {
          if (row.event.streamVersion > to) return events
          events.push(row.event)
        }
        after = positionOf(last.event)
      }
    })
}
