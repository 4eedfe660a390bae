/**
 * The append statement: one round trip that checks the expected version, skips event ids already stored, numbers
 * the new events in their streams and inserts them.
 *
 * Conflicts never abort the caller's transaction. The first new event of each stream is inserted with
 * `ON CONFLICT DO NOTHING`: when another transaction holds or took that stream version, PostgreSQL waits for it
 * and then skips the row instead of raising. The stream's remaining events are inserted only where its first one
 * was, so a stream is written whole or not at all, and the caller can read the stream's head afterwards, or retry,
 * in the same transaction.
 */
import type * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { EventTableConfig } from "../EventTable.ts"
import { qualify } from "../EventTable.ts"

/** One event as the statement takes it, in snake_case JSON. */
export interface AppendRow {
  readonly ord: number
  readonly id: string
  readonly event_type: string
  readonly aggregate_type: string
  readonly aggregate_id: string
  readonly user_id: string
  readonly timestamp: string
  readonly version: number
  readonly data: unknown
  readonly metadata: unknown
  readonly correlation_id: string | null
  readonly causation_id: string | null
}

/** What happened to one input event. */
export interface AppendOutcome {
  readonly ord: number
  /** Null when the event was not written: the version check failed or another writer took the stream first. */
  readonly stream_version: number | null
  readonly global_position: string | null
  /** The event id was already stored; its stored position is returned. */
  readonly duplicate: boolean
  /** The stream's version in the statement's snapshot, before this append. */
  readonly head: number | null
  /** Whether every stream was at the expected version. */
  readonly ok: boolean
}

/** Builds the append statement for one events table. `expected` is -1 for any, 0 for no stream, else the version. */
export const makeAppend =
  (sql: SqlClient.SqlClient, config: EventTableConfig) =>
  (rows: ReadonlyArray<AppendRow>, expected: number): Effect.Effect<ReadonlyArray<AppendOutcome>, SqlError> => {
    const table = sql(qualify(config, config.table))
    return sql<AppendOutcome>`WITH input AS (
  SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS i(
    ord integer, id uuid, event_type text, aggregate_type text, aggregate_id uuid, user_id uuid,
    "timestamp" timestamptz, version integer, data jsonb, metadata jsonb, correlation_id text, causation_id text)
), existing AS (
  SELECT e.id, e.stream_version, e.global_position FROM ${table} e WHERE e.id IN (SELECT id FROM input)
), fresh AS (
  SELECT i.*, row_number() OVER (PARTITION BY i.aggregate_type, i.aggregate_id ORDER BY i.ord) AS n
  FROM input i WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.id = i.id)
), heads AS (
  SELECT s.aggregate_type, s.aggregate_id, COALESCE((
    SELECT e.stream_version FROM ${table} e
    WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
    ORDER BY e.stream_version DESC LIMIT 1), 0) AS head
  FROM (SELECT DISTINCT aggregate_type, aggregate_id FROM fresh) s
), verdict AS (
  SELECT COALESCE(bool_and(${expected}::integer < 0 OR head = ${expected}::integer), true) AS ok FROM heads
), planned AS (
  SELECT f.*, h.head + f.n AS stream_version FROM fresh f
  JOIN heads h ON h.aggregate_type = f.aggregate_type AND h.aggregate_id = f.aggregate_id
  WHERE (SELECT ok FROM verdict)
), inserted_first AS (
  INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id)
  SELECT id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id
  FROM planned WHERE n = 1 ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING id, aggregate_type, aggregate_id, stream_version, global_position
), inserted_rest AS (
  INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id)
  SELECT p.id, p.event_type, p.aggregate_id, p.aggregate_type, p.user_id, p."timestamp", p.version, p.data, p.metadata,
    p.stream_version, p.correlation_id, p.causation_id
  FROM planned p
  WHERE p.n > 1 AND EXISTS (
    SELECT 1 FROM inserted_first w WHERE w.aggregate_type = p.aggregate_type AND w.aggregate_id = p.aggregate_id)
  ORDER BY p.ord
  RETURNING id, stream_version, global_position
)
SELECT i.ord,
  COALESCE(w.stream_version, r.stream_version, x.stream_version) AS stream_version,
  COALESCE(w.global_position, r.global_position, x.global_position)::text AS global_position,
  x.id IS NOT NULL AS duplicate,
  h.head,
  (SELECT ok FROM verdict) AS ok
FROM input i
LEFT JOIN inserted_first w ON w.id = i.id
LEFT JOIN inserted_rest r ON r.id = i.id
LEFT JOIN existing x ON x.id = i.id
LEFT JOIN heads h ON h.aggregate_type = i.aggregate_type AND h.aggregate_id = i.aggregate_id
ORDER BY i.ord`.withoutTransform
  }

/** The current version of one stream, 0 when it has no events. */
export const makeStreamHead =
  (sql: SqlClient.SqlClient, config: EventTableConfig) =>
  (aggregateType: string, aggregateId: string): Effect.Effect<ReadonlyArray<{ readonly head: number }>, SqlError> =>
    sql<{ readonly head: number }>`SELECT COALESCE(max(stream_version), 0)::integer AS head FROM ${sql(
      qualify(config, config.table)
    )} WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId}::uuid`.withoutTransform
