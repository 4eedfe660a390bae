/**
 * The append statements: the stream locks an append takes, the general statement that checks the expected version,
 * recognises event ids already stored, numbers the new events in their streams, chains their hashes and inserts them,
 * and the one-statement fast path for a single event.
 *
 * Every append takes a transaction-level advisory lock per stream before it reads the stream's head, in one
 * canonical order (by the lock's key), so that two appends to the same streams in opposite orders queue instead of
 * deadlocking, and so that the general statement, run after the locks in a statement of its own, reads every head
 * fresh: no other Annal writer can be half-way through a stream it holds. Its single INSERT then writes the events in
 * the order they were given, which is the order of their global positions and so the order the feed delivers them
 * in. Conflicts with writers that take no lock (hand-written SQL), or a REPEATABLE READ snapshot that cannot see the
 * head, are unique violations, which the store reports as retryable.
 *
 * The statement also extends each stream's hash chain. The application sends each event's canonical record split
 * around the stream version, which only the statement knows; `chained` runs the chain aggregate of migration 4 as a
 * window over each stream's new events in order, seeded with the hash of the head row the version check read.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"

/** The columns of one event that the application gives, in snake_case JSON. */
export interface EventColumns {
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

/** One event as the general statement takes it. */
export interface AppendRow extends EventColumns {
  /**
   * The event's canonical record before and after its stream version (see `canonicalParts` in
   * `../integrity/chain.ts`): the statement assigns the version and hashes the UTF-8 of `head ‖ version ‖ tail`. Sent as text, not base64: the
   * text is valid Unicode (the store refuses lone surrogates and NUL), which JSON and `text` carry exactly, and
   * base64 cost a third more bytes to send and decoding on both sides.
   */
  readonly canonical_head: string
  readonly canonical_tail: string
  /** `data` and `metadata` in canonical JSON, the texts the chain hashes: what the batch and single paths send. */
  readonly data_text: string
  readonly metadata_text: string
}

/** What happened to one input event. */
export interface AppendOutcome {
  readonly ord: number
  /** Null when the event was not written: the version check failed or another writer took the stream first. */
  readonly stream_version: number | null
  readonly global_position: string | null
  /** The event id was already stored; its stored position is returned. */
  readonly duplicate: boolean
  /** For a stored id: whether the stored event is this one (same stream, type, version, user, data, metadata). */
  readonly same: boolean | null
  /** For a stored id: the stream the stored event is in. */
  readonly stored_aggregate_type: string | null
  readonly stored_aggregate_id: string | null
  /** The stream's version in the statement's snapshot, before this append. */
  readonly head: number | null
  /** Whether every stream was at the expected version. */
  readonly ok: boolean
}

/** The text each stream's lock key is hashed from: the table and the stream. */
export const streamLockText = (config: EventTable, aggregateType: string, aggregateId: string): string =>
  `${config.schema}.${config.table}/${aggregateType}/${aggregateId}`

/**
 * Takes the stream locks of an append, in the order of their keys: the canonical order that keeps two appends to the
 * same streams from deadlocking. Held until the transaction ends.
 */
export const makeLockStreams =
  (sql: SqlClient.SqlClient) =>
  (lockTexts: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<unknown>, SqlError> =>
    // OFFSET 0 keeps the sorted subquery a subquery, so the locks are taken in its order.
    sql`SELECT pg_advisory_xact_lock(s.k) FROM (
  SELECT DISTINCT hashtextextended(t, 0) AS k FROM jsonb_array_elements_text(${JSON.stringify(lockTexts)}::jsonb) t
  ORDER BY k OFFSET 0) s`.withoutTransform

/** The locks of `lockTexts` taken in canonical order, as one row: a fragment for a `MATERIALIZED` CTE. */
const lockSet = (lockTexts: ReadonlyArray<string>) => (sql: SqlClient.SqlClient) =>
  // OFFSET 0 keeps the sorted subquery a subquery, so the locks are taken in its order.
  sql`SELECT count(pg_advisory_xact_lock(s.k)) AS n FROM (
    SELECT DISTINCT hashtextextended(t, 0) AS k FROM jsonb_array_elements_text(${JSON.stringify(lockTexts)}::jsonb) t
    ORDER BY k OFFSET 0) s`

/** A stream's head as the batch path read it: its version (0 for no stream) and hash in hex (null for none). */
export interface StreamHead {
  readonly aggregate_type: string
  readonly aggregate_id: string
  readonly version: number
  readonly hash: string | null
}

/** What the batch path's first statement found: each stream's head, and how many of the event ids are stored. */
export interface LockedHeads {
  readonly heads: ReadonlyArray<StreamHead>
  readonly stored: number
}

/**
 * The first statement of a batch append: takes the stream locks (as `makeLockStreams` does), and reads each
 * stream's head and how many of the append's event ids are already stored, so that the application can number and
 * chain the events itself. Its snapshot was taken before the locks were granted, so what it reads may be stale when
 * it had to wait for one: `makeInsertChained` checks the heads again, in a statement of its own, before it writes.
 */
export const makeLockAndReadHeads = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (
    lockTexts: ReadonlyArray<string>,
    streams: ReadonlyArray<{ readonly aggregate_type: string; readonly aggregate_id: string }>,
    ids: ReadonlyArray<string>
  ): Effect.Effect<LockedHeads, SqlError> =>
    Effect.map(
      sql<StreamHead & { readonly stored: number }>`WITH locked AS MATERIALIZED (
  ${lockSet(lockTexts)(sql)}
), stored AS (
  -- One primary-key probe per id, as in the general statement.
  SELECT count(*)::integer AS n FROM jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) i
  WHERE EXISTS (SELECT 1 FROM ${table} x WHERE x.id = i::uuid LIMIT 1)
)
SELECT s.aggregate_type, s.aggregate_id::text AS aggregate_id, COALESCE(l.stream_version, 0) AS version,
  encode(l.hash, 'hex') AS hash, (SELECT n FROM stored) AS stored
FROM locked, jsonb_to_recordset(${JSON.stringify(streams)}::jsonb) AS s(aggregate_type text, aggregate_id uuid)
LEFT JOIN LATERAL (
  SELECT e.stream_version, e.hash FROM ${table} e
  WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
  ORDER BY e.stream_version DESC LIMIT 1) l ON true`.withoutTransform,
      (rows) => ({ heads: rows, stored: rows[0]?.stored ?? 0 })
    )
}

/**
 * A batch as `makeInsertChained` takes it, numbered and chained by the application: one array per column, bound as
 * PostgreSQL arrays and read back with `unnest`, which the server parses with no JSON document in between.
 */
export interface ChainedColumns {
  readonly id: ReadonlyArray<string>
  readonly event_type: ReadonlyArray<string>
  readonly aggregate_type: ReadonlyArray<string>
  readonly aggregate_id: ReadonlyArray<string>
  readonly user_id: ReadonlyArray<string>
  readonly timestamp: ReadonlyArray<string>
  readonly version: ReadonlyArray<number>
  /** Canonical JSON texts. */
  readonly data: ReadonlyArray<string>
  readonly metadata: ReadonlyArray<string>
  readonly stream_version: ReadonlyArray<number>
  /** Null when no event of the batch has one: a driver cannot type an array of nothing but nulls. */
  readonly correlation_id: ReadonlyArray<string | null> | null
  readonly causation_id: ReadonlyArray<string | null> | null
  /** SHA-256 of the previous event's hash and this event's canonical record, in hex (`link` in chain.ts). */
  readonly hash: ReadonlyArray<string>
}

/**
 * The statement that writes a batch: inserts events the application numbered and chained from the heads it assumed
 * (read by `makeLockAndReadHeads`, or remembered from the store's last batches; see `heads.ts`), in the order they
 * were given, only if every stream's head is still the one they were
 * chained onto; when they moved, it inserts nothing and returns no row, and the caller runs the general statement
 * instead. Outside a caller's transaction this statement takes the stream locks itself, and under READ COMMITTED its
 * snapshot is older than those locks: a writer that committed between the two is not seen by the head check. Such a
 * writer took the next version of the stream, so the first event here collides with it on the stream's unique key
 * `(aggregate_type, aggregate_id, stream_version)`; the unique violation aborts this statement alone, and the caller
 * runs the general statement. That key, not the head check, is what keeps a chain from being written onto a stale
 * head in that window: it is the table's `stream_version_key` constraint, which no role but the owner can drop.
 */
export const makeInsertChained = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (
    rows: ChainedColumns,
    heads: ReadonlyArray<StreamHead>,
    lockTexts: ReadonlyArray<string>
  ): Effect.Effect<
    ReadonlyArray<{ readonly id: string; readonly stream_version: number; readonly global_position: string }>,
    SqlError
  > =>
    sql<{
      readonly id: string
      readonly stream_version: number
      readonly global_position: string
    }>`WITH locked AS MATERIALIZED (
  ${lockSet(lockTexts)(sql)}
), unchanged AS (
  SELECT bool_and(COALESCE(l.stream_version, 0) = h.version AND l.hash IS NOT DISTINCT FROM decode(h.hash, 'hex'))
    AS ok
  FROM jsonb_to_recordset(${JSON.stringify(heads)}::jsonb) AS h(aggregate_type text, aggregate_id uuid,
    version integer, hash text)
  LEFT JOIN LATERAL (
    SELECT e.stream_version, e.hash FROM ${table} e
    WHERE e.aggregate_type = h.aggregate_type AND e.aggregate_id = h.aggregate_id
    ORDER BY e.stream_version DESC LIMIT 1) l ON true
  CROSS JOIN locked
)
INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
  stream_version, correlation_id, causation_id, hash)
SELECT i.id::uuid, i.event_type, i.aggregate_id::uuid, i.aggregate_type, i.user_id::uuid, i."timestamp"::timestamptz,
  i.version, i.data::jsonb, i.metadata::jsonb, i.stream_version, i.correlation_id, i.causation_id,
  decode(i.hash, 'hex')
-- A null array is an empty one to unnest, which pads it with nulls to the length of the others.
FROM unnest(${rows.id}::text[], ${rows.event_type}::text[], ${rows.aggregate_type}::text[],
  ${rows.aggregate_id}::text[], ${rows.user_id}::text[], ${rows.timestamp}::text[], ${rows.version}::integer[],
  ${rows.data}::text[], ${rows.metadata}::text[], ${rows.stream_version}::integer[],
  ${rows.correlation_id}::text[], ${rows.causation_id}::text[], ${rows.hash}::text[]) WITH ORDINALITY AS i(
  id, event_type, aggregate_type, aggregate_id, user_id, "timestamp", version, data, metadata, stream_version,
  correlation_id, causation_id, hash, ord)
WHERE (SELECT ok FROM unchanged)
ORDER BY i.ord
RETURNING id::text AS id, stream_version, global_position::text AS global_position`.withoutTransform
}

/**
 * Builds the general append statement for one events table, to run after `makeLockStreams` in the same transaction.
 * `expected` is -1 for any, 0 for no stream, else the version. Nothing is inserted unless every stream is at the
 * expected version and every stored id is the same event. `jsonb_to_recordset` reads a payload that is JSON `null`
 * as SQL NULL, so the statement puts it back as jsonb `null`.
 */
export const makeAppend =
  (sql: SqlClient.SqlClient, config: EventTable) =>
  (rows: ReadonlyArray<AppendRow>, expected: number): Effect.Effect<ReadonlyArray<AppendOutcome>, SqlError> => {
    const table = sql(qualify(config, config.table))
    const chain = sql(qualify(config, `${config.table}_chain`))
    return sql<AppendOutcome>`WITH input AS (
  SELECT i.ord, i.id, i.event_type, i.aggregate_type, i.aggregate_id, i.user_id, i."timestamp", i.version,
    COALESCE(i.data, 'null'::jsonb) AS data, i.metadata, i.correlation_id, i.causation_id, i.canonical_head,
    i.canonical_tail
  FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS i(
    ord integer, id uuid, event_type text, aggregate_type text, aggregate_id uuid, user_id uuid,
    "timestamp" timestamptz, version integer, data jsonb, metadata jsonb, correlation_id text, causation_id text,
    canonical_head text, canonical_tail text)
), existing AS (
  -- One primary-key probe per input event. As a join or semi-join, a plan made while the table was small (plans of
  -- prepared statements are cached) hashes the whole table on every append; the LIMIT keeps the probe a probe.
  SELECT i.id, e.stream_version, e.global_position, e.aggregate_type, e.aggregate_id,
    (e.aggregate_type = i.aggregate_type AND e.aggregate_id = i.aggregate_id AND e.event_type = i.event_type
      AND e.version = i.version AND e.user_id = i.user_id AND e.data = i.data AND e.metadata = i.metadata) AS same
  FROM input i
  CROSS JOIN LATERAL (
    SELECT x.stream_version, x.global_position, x.aggregate_type, x.aggregate_id, x.event_type, x.version, x.user_id,
      x.data, x.metadata
    FROM ${table} x WHERE x.id = i.id LIMIT 1) e
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
  SELECT COALESCE(bool_and(${expected}::integer < 0 OR head = ${expected}::integer), true) AS ok,
    NOT EXISTS (SELECT 1 FROM existing WHERE NOT same) AS identical
  FROM heads
), planned AS (
  SELECT f.*, h.head + f.n AS stream_version FROM fresh f
  JOIN heads h ON h.aggregate_type = f.aggregate_type AND h.aggregate_id = f.aggregate_id
  WHERE (SELECT ok AND identical FROM verdict)
), chained AS (
  -- Every planned event with its hash, computed by the chain aggregate as a running window over each stream, seeded
  -- with the head's hash (the n = 0 rows). The planned columns ride along, so the insert below needs no join, which
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
      p.data, p.metadata, p.stream_version, p.correlation_id, p.causation_id,
      convert_to(p.canonical_head || p.stream_version::text || p.canonical_tail, 'UTF8'),
      false
    FROM planned p
  ) c
), inserted AS (
  -- One INSERT in the order the events were given: their global positions follow it, across streams.
  INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id, hash)
  SELECT id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
    stream_version, correlation_id, causation_id, hash
  FROM chained WHERE n > 0 ORDER BY ord
  RETURNING id, stream_version, global_position
)
SELECT i.ord,
  COALESCE(w.stream_version, x.stream_version) AS stream_version,
  COALESCE(w.global_position, x.global_position)::text AS global_position,
  x.id IS NOT NULL AS duplicate,
  x.same,
  x.aggregate_type AS stored_aggregate_type,
  x.aggregate_id::text AS stored_aggregate_id,
  h.head,
  (SELECT ok FROM verdict) AS ok
FROM input i
LEFT JOIN inserted w ON w.id = i.id
LEFT JOIN existing x ON x.id = i.id
LEFT JOIN heads h ON h.aggregate_type = i.aggregate_type AND h.aggregate_id = i.aggregate_id
ORDER BY i.ord`.withoutTransform
  }

/**
 * The append of one event, for the common case where it goes straight in: the stream's head, the version check and
 * the hash are one INSERT ... SELECT over one index probe, without the general statement's CTEs, which cost several
 * times the insert itself. It takes the stream's lock in the statement; when it had to wait for it, its snapshot is
 * older than the head the last holder wrote, the insert meets that head's version and does nothing. When the event is
 * not written (that, or the stream is not at the expected version, or its id is already stored), no row comes back
 * and the caller runs the general statement, which tells which of these it was.
 */
export const makeAppendOne =
  (sql: SqlClient.SqlClient, config: EventTable) =>
  (
    row: AppendRow,
    expected: number
  ): Effect.Effect<ReadonlyArray<{ readonly stream_version: number; readonly global_position: string }>, SqlError> => {
    const table = sql(qualify(config, config.table))
    return sql<{ readonly stream_version: number; readonly global_position: string }>`WITH locked AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(hashtextextended(${streamLockText(config, row.aggregate_type, row.aggregate_id)}, 0))
), head AS (
  SELECT COALESCE(l.stream_version, 0) AS version,
    CASE WHEN l.stream_version IS NULL THEN decode(repeat('00', 32), 'hex') ELSE l.hash END AS hash
  FROM (SELECT 1) one LEFT JOIN LATERAL (
    SELECT e.stream_version, e.hash FROM ${table} e
    WHERE e.aggregate_type = ${row.aggregate_type} AND e.aggregate_id = ${row.aggregate_id}::uuid
    ORDER BY e.stream_version DESC LIMIT 1) l ON true
  CROSS JOIN locked
)
INSERT INTO ${table} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data, metadata,
  stream_version, correlation_id, causation_id, hash)
SELECT ${row.id}::uuid, ${row.event_type}, ${row.aggregate_id}::uuid, ${row.aggregate_type}, ${row.user_id}::uuid,
  ${row.timestamp}::timestamptz, ${row.version}::integer, ${row.data_text}::jsonb,
  ${row.metadata_text}::jsonb, h.version + 1, ${row.correlation_id}::text, ${row.causation_id}::text,
  pg_catalog.sha256(h.hash || convert_to(${row.canonical_head}::text || (h.version + 1)::text
    || ${row.canonical_tail}::text, 'UTF8'))
FROM head h, locked
WHERE ${expected}::integer < 0 OR h.version = ${expected}::integer
ON CONFLICT DO NOTHING
RETURNING stream_version, global_position::text AS global_position`.withoutTransform
  }
