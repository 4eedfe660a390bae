/**
 * The append statement: one round trip that checks the expected version, skips event ids already stored, numbers
 * the new events in their streams and inserts them.
 *
 * Conflicts never abort the caller's transaction. The first new event of each stream is inserted with
 * `ON CONFLICT DO NOTHING`: when another transaction holds or took that stream version, PostgreSQL waits for it
 * and then skips the row instead of raising. The stream's remaining events are inserted only where its first one
 * was, so a stream is written whole or not at all, and the caller can read the stream's head afterwards, or retry,
 * in the same transaction.
 *
 * The statement also extends each stream's hash chain. The application sends each event's canonical record split
 * around the stream version, which only the statement knows; `chained` runs the chain aggregate of migration 4 as a
 * window over each stream's new events in order, seeded with the hash of the head row the version check read. No
 * lock or round trip is added: the head is the row the new version is numbered from, and the unique stream key that
 * already serializes appends to a stream makes sure no one else chains from it.
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
  /**
   * The event's canonical record before and after its stream version (see `integrityChain.canonicalParts`): the
   * statement assigns the version and hashes the UTF-8 of `head ‖ version ‖ tail`. Sent as text, not base64: the
   * text is valid Unicode (the store refuses lone surrogates and NUL), which JSON and `text` carry exactly, and
   * base64 cost a third more bytes to send and decoding on both sides.
   */
  readonly canonical_head: string
  readonly canonical_tail: string
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

/**
 * Builds the append statement for one events table. `expected` is -1 for any, 0 for no stream, else the version.
 * `jsonb_to_recordset` reads a payload that is JSON `null` as SQL NULL, so the inserts put it back as jsonb `null`.
 */
export const makeAppend =
  (sql: SqlClient.SqlClient, config: EventTableConfig) =>
  (rows: ReadonlyArray<AppendRow>, expected: number): Effect.Effect<ReadonlyArray<AppendOutcome>, SqlError> => {
    const table = sql(qualify(config, config.table))
    const chain = sql(qualify(config, `${config.table}_chain`))
    return sql<AppendOutcome>`WITH input AS (
  SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS i(
    ord integer, id uuid, event_type text, aggregate_type text, aggregate_id uuid, user_id uuid,
    "timestamp" timestamptz, version integer, data jsonb, metadata jsonb, correlation_id text, causation_id text,
    canonical_head text, canonical_tail text)
), existing AS (
  -- One primary-key probe per input event. As a join or semi-join, a plan made while the table was small (plans of
  -- prepared statements are cached) hashes the whole table on every append; the LIMIT keeps the probe a probe.
  SELECT e.id, e.stream_version, e.global_position FROM input i
  CROSS JOIN LATERAL (
    SELECT x.id, x.stream_version, x.global_position FROM ${table} x WHERE x.id = i.id LIMIT 1) e
), fresh AS (
  SELECT i.*, row_number() OVER (PARTITION BY i.aggregate_type, i.aggregate_id ORDER BY i.ord) AS n
  FROM input i WHERE NOT EXISTS (SELECT 1 FROM existing x WHERE x.id = i.id)
), heads AS (
  SELECT s.aggregate_type, s.aggregate_id, COALESCE(l.stream_version, 0) AS head,
    CASE WHEN l.stream_version IS NULL THEN decode(repeat('00', 32), 'hex') ELSE l.hash END AS head_hash
  FROM (SELECT DISTINCT aggregate_type, aggregate_id FROM fresh) s
  LEFT JOIN LATERAL (
    SELECT e.stream_version, e.hash FROM ${table} e
    WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
    ORDER BY e.stream_version DESC LIMIT 1) l ON true
), verdict AS (
  SELECT COALESCE(bool_and(${expected}::integer < 0 OR head = ${expected}::integer), true) AS ok FROM heads
), planned AS (
  SELECT f.*, h.head + f.n AS stream_version FROM fresh f
  JOIN heads h ON h.aggregate_type = f.aggregate_type AND h.aggregate_id = f.aggregate_id
  WHERE (SELECT ok FROM verdict)
), chained AS (
  -- Every planned event with its hash, computed by the chain aggregate as a running window over each stream, seeded
  -- with the head's hash (the n = 0 rows). The planned columns ride along, so the inserts below need no join, which
  -- the planner, blind to these CTEs' sizes, would run as a nested loop.
  SELECT c.*, ${chain}(c.link, c.seed) OVER (
    PARTITION BY c.aggregate_type, c.aggregate_id ORDER BY c.n ROWS UNBOUNDED PRECEDING) AS hash
  FROM (
    SELECT h.aggregate_type, h.aggregate_id, 0::bigint AS n, NULL::integer AS ord, NULL::uuid AS id,
      NULL::text AS event_type, NULL::uuid AS user_id, NULL::timestamptz AS "timestamp", NULL::integer AS version,
      NULL::jsonb AS data, NULL::jsonb AS metadata, NULL::integer AS stream_version, NULL::text AS correlation_id,
      NULL::text AS causation_id, h.head_hash AS link, true AS seed
    FROM heads h
    UNION ALL
    SELECT p.aggregate_type, p.aggregate_id, p.n, p.ord, p.id, p.event_type, p.user_id, p."timestamp", p.version,
      COALESCE(p.data, 'null'::jsonb), p.metadata, p.stream_version, p.correlation_id, p.causation_id,
      convert_to(p.canonical_head || p.stream_version::text || p.canonical_tail, 'UTF8'),
      false
    FROM planned p
  ) c
), inserted_first AS (
  INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id, hash)
  SELECT id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id, hash
  FROM chained WHERE n = 1 ORDER BY ord
  ON CONFLICT DO NOTHING
  RETURNING id, aggregate_type, aggregate_id, stream_version, global_position
), inserted_rest AS (
  INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id, hash)
  SELECT p.id, p.event_type, p.aggregate_id, p.aggregate_type, p.user_id, p."timestamp", p.version, p.data, p.metadata,
    p.stream_version, p.correlation_id, p.causation_id, p.hash
  FROM chained p
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

/**
 * The append of one event, for the common case where it goes straight in: the stream's head, the version check and
 * the hash are one INSERT ... SELECT over one index probe, without the general statement's CTEs, which cost several
 * times the insert itself. When the event is not written (the stream is not at the expected version, or a unique key
 * stopped it: its id is already stored, or a concurrent writer took the version), no row comes back and the caller
 * runs the general statement, which tells which of these it was.
 */
export const makeAppendOne =
  (sql: SqlClient.SqlClient, config: EventTableConfig) =>
  (
    row: AppendRow,
    expected: number
  ): Effect.Effect<ReadonlyArray<{ readonly stream_version: number; readonly global_position: string }>, SqlError> => {
    const table = sql(qualify(config, config.table))
    return sql<{ readonly stream_version: number; readonly global_position: string }>`WITH head AS (
  SELECT COALESCE(l.stream_version, 0) AS version,
    CASE WHEN l.stream_version IS NULL THEN decode(repeat('00', 32), 'hex') ELSE l.hash END AS hash
  FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT e.stream_version, e.hash FROM ${table} e
    WHERE e.aggregate_type = ${row.aggregate_type} AND e.aggregate_id = ${row.aggregate_id}::uuid
    ORDER BY e.stream_version DESC LIMIT 1) l ON true
)
INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
  stream_version, correlation_id, causation_id, hash)
SELECT ${row.id}::uuid, ${row.event_type}, ${row.aggregate_id}::uuid, ${row.aggregate_type}, ${row.user_id}::uuid,
  ${row.timestamp}::timestamptz, ${row.version}::integer, ${JSON.stringify(row.data ?? null)}::jsonb,
  ${JSON.stringify(row.metadata)}::jsonb, h.version + 1, ${row.correlation_id}::text, ${row.causation_id}::text,
  pg_catalog.sha256(h.hash || convert_to(${row.canonical_head}::text || (h.version + 1)::text
    || ${row.canonical_tail}::text, 'UTF8'))
FROM head h
WHERE ${expected}::integer < 0 OR h.version = ${expected}::integer
ON CONFLICT DO NOTHING
RETURNING stream_version, global_position::text AS global_position`.withoutTransform
  }

/** The current version of one stream, 0 when it has no events. */
export const makeStreamHead =
  (sql: SqlClient.SqlClient, config: EventTableConfig) =>
  (aggregateType: string, aggregateId: string): Effect.Effect<ReadonlyArray<{ readonly head: number }>, SqlError> =>
    sql<{ readonly head: number }>`SELECT COALESCE(max(stream_version), 0)::integer AS head FROM ${sql(
      qualify(config, config.table)
    )} WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId}::uuid`.withoutTransform
