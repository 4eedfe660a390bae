/**
 * The statements of named consumers: their checkpoints and their leases, in the consumers table that migration 3
 * creates beside the events table. Every write that moves a checkpoint names the owner it expects, so an instance
 * that lost its lease cannot move the checkpoint any more: the lease is also a fencing token.
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { StorageError } from "../../AnnalError.ts"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import { consumersTable } from "./migration.ts"
import type * as Checkpoint from "../../Checkpoint.ts"
import { commitObjects } from "./commitOrder.ts"
import { CheckpointRows, checkpointOfRow, decode } from "./read.ts"
import { Timestamp } from "../store/read.ts"
import { fromSqlError } from "../sqlErrors.ts"

/** One consumer's row with its lag, as `lag` reads it. */
export type LagRow = typeof LagRow.Type

/** Builds the consumers' statements for one events table; failures are `StorageError`s named after them. */
export const makeConsumerStatements = (sql: SqlClient.SqlClient, config: EventTable) => {
  const consumers = sql(consumersTable(config))
  const events = sql(qualify(config, config.table))
  const commits = sql(commitObjects(config).commits)
  // The lease's end, on the database's clock, which all processes share.
  const leaseEnd = (millis: number) =>
    sql`clock_timestamp() + ${Math.max(1, Math.round(millis))}::float8 * interval '1 millisecond'`

  /**
   * Takes the lease when it is free, expired or already ours, creating the consumer at `(0, 0)` on first use.
   * Returns its checkpoint, or nothing when another owner holds a live lease.
   */
  const acquire = (
    name: string,
    owner: string,
    leaseMillis: number
  ): Effect.Effect<Checkpoint.Checkpoint | undefined, StorageError> =>
    sql`INSERT INTO ${consumers} AS c (name, owner, lease_expires_at) VALUES (${name}, ${owner}, ${leaseEnd(leaseMillis)})
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_expires_at = excluded.lease_expires_at
WHERE c.owner IS NULL OR c.owner = excluded.owner OR c.lease_expires_at IS NULL OR c.lease_expires_at < clock_timestamp()
RETURNING c.checkpoint_commit_sequence::text AS commit_sequence, c.checkpoint_global_position::text AS global_position`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CheckpointRows, rows)),
      Effect.map((rows) => (rows[0] === undefined ? undefined : checkpointOfRow(rows[0]))),
      stored("Consumer.acquire")
    )

  /** Extends the lease if it is still ours; false when it is not. */
  const renew = (name: string, owner: string, leaseMillis: number): Effect.Effect<boolean, StorageError> =>
    sql`UPDATE ${consumers} SET lease_expires_at = ${leaseEnd(leaseMillis)}
WHERE name = ${name} AND owner = ${owner} RETURNING name`.withoutTransform.pipe(
      Effect.map((rows) => rows.length > 0),
      stored("Consumer.renew")
    )

  /** Gives the lease up, so that a waiting instance takes over at once. */
  const release = (name: string, owner: string): Effect.Effect<void, StorageError> =>
    sql`UPDATE ${consumers} SET owner = NULL, lease_expires_at = NULL
WHERE name = ${name} AND owner = ${owner}`.withoutTransform.pipe(Effect.asVoid, stored("Consumer.release"))

  /**
   * Moves the checkpoint from `from` to `to` and extends the lease, if the lease is still ours and nobody moved the
   * checkpoint meanwhile; false otherwise. Inside a transaction it commits or rolls back with the consumer's writes.
   */
  const commit = (
    name: string,
    owner: string,
    from: Checkpoint.Checkpoint,
    to: Checkpoint.Checkpoint,
    leaseMillis: number
  ): Effect.Effect<boolean, StorageError> =>
    sql`UPDATE ${consumers} SET checkpoint_commit_sequence = ${to.commitSequence.toString()}::bigint,
  checkpoint_global_position = ${to.globalPosition.toString()}::bigint, checkpoint_updated_at = clock_timestamp(),
  lease_expires_at = ${leaseEnd(leaseMillis)}
WHERE name = ${name} AND owner = ${owner}
  AND checkpoint_commit_sequence = ${from.commitSequence.toString()}::bigint
  AND checkpoint_global_position = ${from.globalPosition.toString()}::bigint
RETURNING name`.withoutTransform.pipe(
      Effect.map((rows) => rows.length > 0),
      stored("Consumer.commit")
    )

  /** Sets the checkpoint to `to` whatever it was, if the lease is ours; false otherwise. */
  const reset = (name: string, owner: string, to: Checkpoint.Checkpoint): Effect.Effect<boolean, StorageError> =>
    sql`UPDATE ${consumers} SET checkpoint_commit_sequence = ${to.commitSequence.toString()}::bigint,
  checkpoint_global_position = ${to.globalPosition.toString()}::bigint, checkpoint_updated_at = clock_timestamp()
WHERE name = ${name} AND owner = ${owner} RETURNING name`.withoutTransform.pipe(
      Effect.map((rows) => rows.length > 0),
      stored("Consumer.reset")
    )

  /**
   * Sets the checkpoint to `to` and revokes the lease, whoever holds it: the holder's next renewal or commit finds
   * the lease gone, so it stops, takes the lease again and resumes from `to`. False when there is no such consumer.
   */
  const revoke = (name: string, to: Checkpoint.Checkpoint): Effect.Effect<boolean, StorageError> =>
    sql`UPDATE ${consumers} SET checkpoint_commit_sequence = ${to.commitSequence.toString()}::bigint,
  checkpoint_global_position = ${to.globalPosition.toString()}::bigint, checkpoint_updated_at = clock_timestamp(),
  owner = NULL, lease_expires_at = NULL
WHERE name = ${name} RETURNING name`.withoutTransform.pipe(
      Effect.map((rows) => rows.length > 0),
      stored("Consumer.revoke")
    )

  /**
   * The checkpoint after the last commit recorded before `instant`, among the commits at or below `fence` (so that
   * no commit still in flight is passed over); undefined when none was.
   */
  const lastCommitBefore = (
    instant: DateTime.Utc,
    fence: bigint
  ): Effect.Effect<Checkpoint.Checkpoint | undefined, StorageError> =>
    sql`SELECT c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
FROM ${commits} c CROSS JOIN LATERAL (
  SELECT e.global_position FROM ${events} e WHERE e.transaction_id = c.transaction_id
  ORDER BY e.global_position DESC LIMIT 1
) e
WHERE c.commit_sequence <= ${fence.toString()}::bigint AND c.committed_at < ${DateTime.formatIso(instant)}::timestamptz
ORDER BY c.commit_sequence DESC LIMIT 1`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CheckpointRows, rows)),
      Effect.map((rows) => (rows[0] === undefined ? undefined : checkpointOfRow(rows[0]))),
      stored("Consumer.lastCommitBefore")
    )

  /**
   * Every consumer, with how many committed events follow its checkpoint and how long the oldest of them has been
   * recorded. Events held back by the fence count too: they are unprocessed, and their age is how a stuck feed shows.
   */
  const lag: Effect.Effect<ReadonlyArray<LagRow>, StorageError> = sql`SELECT c.name,
  c.checkpoint_commit_sequence::text AS commit_sequence, c.checkpoint_global_position::text AS global_position,
  c.owner, c.lease_expires_at, COALESCE(c.lease_expires_at > clock_timestamp(), false) AS lease_active,
  c.checkpoint_updated_at, b.behind::text AS behind, b.oldest_millis
FROM ${consumers} c CROSS JOIN LATERAL (
  SELECT count(*) AS behind,
    (extract(epoch FROM clock_timestamp() - min(m.committed_at)) * 1000)::float8 AS oldest_millis
  FROM ${commits} m JOIN ${events} e ON e.transaction_id = m.transaction_id
  WHERE m.commit_sequence >= c.checkpoint_commit_sequence
    AND (m.commit_sequence, e.global_position) > (c.checkpoint_commit_sequence, c.checkpoint_global_position)
) b
ORDER BY c.name`.withoutTransform.pipe(
    Effect.flatMap((rows) => decode(LagRows, rows)),
    stored("Consumer.lag")
  )

  return { acquire, renew, release, commit, reset, revoke, lastCommitBefore, lag }
}

const stored =
  (operation: string) =>
  <A>(effect: Effect.Effect<A, SqlError | StorageError>): Effect.Effect<A, StorageError> =>
    Effect.catchTag(effect, "SqlError", (error) => Effect.fail(fromSqlError(operation, error)))

const LagRow = Schema.Struct({
  name: Schema.String,
  commit_sequence: Schema.String,
  global_position: Schema.String,
  owner: Schema.NullOr(Schema.String),
  lease_expires_at: Schema.NullOr(Timestamp),
  lease_active: Schema.Boolean,
  checkpoint_updated_at: Timestamp,
  behind: Schema.String,
  oldest_millis: Schema.NullOr(Schema.Number)
})
const LagRows = Schema.Array(LagRow)
