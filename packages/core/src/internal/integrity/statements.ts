/**
 * The statements of `Integrity.verify` beside the page reads of `read.ts`: whether a row falls at or before a
 * digest's checkpoint, the events that have no place in the commit order, what is stored at a signed head, and the
 * size of the table for progress.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import type * as Checkpoint from "../../Checkpoint.ts"
import { type EventTable, qualify } from "../../EventTable.ts"
import { commitObjects } from "../feed/commitOrder.ts"
import type { Head } from "./digest.ts"

/** An event whose transaction id names no commit. */
export interface Unordered {
  readonly aggregateType: string
  readonly aggregateId: string
  readonly streamVersion: number
  readonly eventId: string
  readonly transactionId: string
}

/** What the table holds at a signed head's position: the event there and its hash, and the stream's last version. */
export interface StoredAt {
  /** The event at the head's version, or undefined when there is none. */
  readonly eventId: string | undefined
  readonly hash: string | null
  /** The stream's last version; 0 when the stream has no event left. */
  readonly last: number
}

/** Builds the verifier's statements for one events table. */
export const makeIntegrityStatements = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  const commits = sql(commitObjects(config).commits)

  /**
   * The condition, on the page read's row `e`, that it was committed at or before `checkpoint`: its commit and its
   * global position, in the log's order. Without a checkpoint, no row is.
   */
  const within = (checkpoint: Checkpoint.Checkpoint | undefined): Statement.Fragment =>
    checkpoint === undefined
      ? sql`false`
      : sql`EXISTS (SELECT 1 FROM ${commits} c WHERE c.transaction_id = e.transaction_id
                AND (c.commit_sequence, e.global_position) <= (${checkpoint.commitSequence.toString()}::bigint, ${checkpoint.globalPosition.toString()}::bigint))`

  /** The number of rows, for a progress display: it costs a scan of its own. */
  const count: Effect.Effect<number, SqlError> = sql<{
    readonly total: string
  }>`SELECT count(*)::text AS total FROM ${table}`.withoutTransform.pipe(
    Effect.map((rows) => Number(rows[0]?.total ?? 0))
  )

  /**
   * Each stream's first event whose transaction has no commit: one anti-join over the table. The verifier's own
   * transaction, when it has written events, has no commit yet: those are not counted.
   */
  const unordered: Effect.Effect<ReadonlyArray<Unordered>, SqlError> = sql<{
    readonly aggregate_type: string
    readonly aggregate_id: string
    readonly stream_version: number
    readonly id: string
    readonly transaction_id: string
  }>`SELECT DISTINCT ON (e.aggregate_type, e.aggregate_id) e.aggregate_type, e.aggregate_id::text AS aggregate_id,
  e.stream_version, e.id::text AS id, e.transaction_id::text AS transaction_id
FROM ${table} e WHERE NOT EXISTS (SELECT 1 FROM ${commits} c WHERE c.transaction_id = e.transaction_id)
  AND e.transaction_id IS DISTINCT FROM pg_current_xact_id_if_assigned()
ORDER BY e.aggregate_type, e.aggregate_id, e.stream_version`.withoutTransform.pipe(
    Effect.map((rows) =>
      rows.map((row): Unordered => ({
        aggregateType: row.aggregate_type,
        aggregateId: row.aggregate_id,
        streamVersion: row.stream_version,
        eventId: row.id,
        transactionId: row.transaction_id
      }))
    )
  )

  /**
   * What is stored at a signed head's position. Three scalar subqueries in one row, so that a stream with no event
   * at that version, or none at all, still answers (with nulls) in one round trip.
   */
  const storedAt = (head: Head): Effect.Effect<StoredAt, SqlError> =>
    sql<{
      readonly id: string | null
      readonly hash: string | null
      readonly last: number | null
    }>`SELECT (SELECT e.id::text FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid AND e.stream_version = ${head.streamVersion} LIMIT 1) AS id,
  (SELECT encode(e.hash, 'hex') FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid AND e.stream_version = ${head.streamVersion} LIMIT 1) AS hash,
  (SELECT max(e.stream_version) FROM ${table} e WHERE e.aggregate_type = ${head.aggregateType}
    AND e.aggregate_id = ${head.aggregateId}::uuid) AS last`.withoutTransform.pipe(
      Effect.map(([row]) => ({ eventId: row?.id ?? undefined, hash: row?.hash ?? null, last: row?.last ?? 0 }))
    )

  return { within, count, unordered, storedAt }
}
