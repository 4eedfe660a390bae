/**
 * The statements of digests: the `<table>_digests` and `<table>_digest_heads` tables that migration 4 creates beside
 * the events table, read by `Digest` and `Integrity`, written by `Digest.create`.
 *
 * The heads table is incremental: digest `n` stores only the heads that moved since digest `n - 1`, so that a digest
 * of a large, mostly idle log writes a few rows; the heads digest `n` signed are each stream's latest row at or
 * before `n`. Nothing read from these tables is trusted until checked: a digest row against its signature, the
 * heads as of a digest against its signed root. Numbers are sent and selected as text, so that neither driver's integer parsing matters.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import * as Checkpoint from "../../Checkpoint.ts"
import { type EventTable, qualify } from "../../EventTable.ts"
import { commitObjects } from "../feed/commitOrder.ts"
import type { Head } from "./digest.ts"
import type { StoredAt } from "./statements.ts"

/** A digest as its table stores it: the document exactly as it was handed out, and what it is looked up by. */
export interface StoredDigest {
  readonly id: number
  readonly checkpoint: Checkpoint.Checkpoint
  readonly root: string
  /** The previous digest's hash, which this one's document signs; null for the first, and for v2 digests. */
  readonly previousHash: string | null
  readonly document: string
}

/** A stored head row, with the digest it is filed under and what the events table holds at its position. */
export interface HeadRow extends Head {
  readonly digestId: number
  readonly stored: StoredAt
}

/** Builds the digest statements of one events table. */
export const makeDigestStatements = (sql: SqlClient.SqlClient, config: EventTable) => {
  const events = sql(qualify(config, config.table))
  const commits = sql(commitObjects(config).commits)
  const digests = sql(qualify(config, `${config.table}_digests`))
  const heads = sql(qualify(config, `${config.table}_digest_heads`))
  const tableName = `${config.schema}.${config.table}`

  /**
   * Serializes `Digest.create` across processes until the transaction ends: each digest's number and its heads
   * depend on the previous digest, which a concurrent one must not be writing at the same time.
   */
  const lock: Effect.Effect<void, SqlError> = Effect.asVoid(
    sql`SELECT pg_advisory_xact_lock(hashtext(${`annal:digest:${tableName}`}))`
  )

  /** The heads signed by digest `id`: each stream's latest row at or before it. */
  const readHeads = (id: number): Effect.Effect<ReadonlyArray<Head>, SqlError | StorageError> =>
    sql`SELECT DISTINCT ON (h.aggregate_type, h.aggregate_id) h.aggregate_type, h.aggregate_id::text AS aggregate_id,
  h.stream_version, encode(h.hash, 'hex') AS hash
FROM ${heads} h WHERE h.digest_id <= ${id}::bigint
ORDER BY h.aggregate_type, h.aggregate_id, h.digest_id DESC`.withoutTransform.pipe(
      Effect.flatMap(decodeHeadRows),
      Effect.map((rows) => rows.map(headOf)),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /** The head of one stream that digest `id` signed: its latest row at or before `id`, or none. */
  const readStreamHead = (
    id: number,
    aggregateType: string,
    aggregateId: string
  ): Effect.Effect<Head | undefined, SqlError | StorageError> =>
    sql`SELECT h.aggregate_type, h.aggregate_id::text AS aggregate_id, h.stream_version, encode(h.hash, 'hex') AS hash
FROM ${heads} h WHERE h.aggregate_type = ${aggregateType} AND h.aggregate_id = ${aggregateId}::uuid
  AND h.digest_id <= ${id}::bigint
ORDER BY h.digest_id DESC LIMIT 1`.withoutTransform.pipe(
      Effect.flatMap(decodeHeadRows),
      Effect.map((rows) => rows.map(headOf)[0]),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /** Stored digests, the latest first, or only the one with `id`. */
  const readDigests = (id?: number): Effect.Effect<ReadonlyArray<StoredDigest>, SqlError | StorageError> =>
    // Qualified: the select list renames id to its text form, which an unqualified ORDER BY would sort by.
    sql`SELECT d.id::text AS id, d.checkpoint_commit_sequence::text AS commit_sequence,
  d.checkpoint_global_position::text AS global_position, encode(d.root, 'hex') AS root,
  encode(d.previous_hash, 'hex') AS previous_hash, d.document
FROM ${digests} d ${id === undefined ? sql`` : sql`WHERE d.id = ${id}::bigint`} ORDER BY d.id DESC`.withoutTransform.pipe(
      Effect.flatMap(decodeDigestRows),
      Effect.map((rows) => rows.map(storedDigestOf)),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /** The latest stored digest, or none. */
  const readLatestDigest: Effect.Effect<StoredDigest | undefined, SqlError | StorageError> =
    sql`SELECT d.id::text AS id, d.checkpoint_commit_sequence::text AS commit_sequence,
  d.checkpoint_global_position::text AS global_position, encode(d.root, 'hex') AS root,
  encode(d.previous_hash, 'hex') AS previous_hash, d.document
FROM ${digests} d ORDER BY d.id DESC LIMIT 1`.withoutTransform.pipe(
      Effect.flatMap(decodeDigestRows),
      Effect.map((rows) => rows.map(storedDigestOf)[0]),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /**
   * How long ago, by the database's clock, the latest digest was stored, in milliseconds; none without a digest. Read
   * from `recorded_at`, which the database sets, not from the document's own `createdAt`, which its writer chose.
   */
  const readLatestDigestAge: Effect.Effect<number | undefined, SqlError | StorageError> =
    sql`SELECT (extract(epoch FROM now() - max(d.recorded_at)) * 1000)::bigint::text AS age_ms
FROM ${digests} d`.withoutTransform.pipe(
      Effect.flatMap(decodeAgeRows),
      Effect.map((rows) => {
        const age = rows[0]?.age_ms
        return age === null || age === undefined ? undefined : Math.max(0, Number(age))
      }),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /**
   * The last version of each stream among the events after `from` and at or before `to`, with that event's hash:
   * read from the events table alone, never from the heads table, which a digest only writes. The first condition
   * repeats the row comparison's bound on the commit sequence alone, which the commits index can range over.
   */
  const movedHeads = (
    from: Checkpoint.Checkpoint,
    to: Checkpoint.Checkpoint
  ): Effect.Effect<ReadonlyArray<Head>, SqlError | StorageError> =>
    sql`SELECT d.aggregate_type, d.aggregate_id::text AS aggregate_id, d.stream_version, encode(e.hash, 'hex') AS hash
FROM (
  SELECT x.aggregate_type, x.aggregate_id, max(x.stream_version) AS stream_version
  FROM ${commits} c JOIN ${events} x ON x.transaction_id = c.transaction_id
  WHERE c.commit_sequence >= ${from.commitSequence.toString()}::bigint
    AND (c.commit_sequence, x.global_position) > (${from.commitSequence.toString()}::bigint, ${from.globalPosition.toString()}::bigint)
    AND (c.commit_sequence, x.global_position) <= (${to.commitSequence.toString()}::bigint, ${to.globalPosition.toString()}::bigint)
  GROUP BY x.aggregate_type, x.aggregate_id
) d
JOIN ${events} e ON e.aggregate_type = d.aggregate_type AND e.aggregate_id = d.aggregate_id
  AND e.stream_version = d.stream_version`.withoutTransform.pipe(
      Effect.flatMap(decodeHeadRows),
      Effect.map((rows) => rows.map(headOf)),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /**
   * Head rows filed under a digest number after `id`: no signed digest covers them yet, so each was planted (the
   * next digest would otherwise count it among the heads it signs).
   */
  const headsAfter = (
    id: number
  ): Effect.Effect<ReadonlyArray<Head & { readonly digestId: number }>, SqlError | StorageError> =>
    sql`SELECT h.digest_id::text AS digest_id, h.aggregate_type, h.aggregate_id::text AS aggregate_id,
  h.stream_version, encode(h.hash, 'hex') AS hash
FROM ${heads} h WHERE h.digest_id > ${id}::bigint ORDER BY h.digest_id, h.aggregate_type, h.aggregate_id LIMIT 10`.withoutTransform.pipe(
      Effect.flatMap(decodeNumberedHeadRows),
      Effect.map((rows) => rows.map((row) => ({ ...headOf(row), digestId: Number(row.digest_id) }))),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /**
   * Every head row, in digest order, beside what the events table holds at its position: the event at its version
   * and that event's hash, and the stream's last version. The verifier folds them into the heads as of each digest,
   * checks each digest's root, and names a row that no root covers or that the log no longer matches.
   */
  const readHeadRows: Effect.Effect<ReadonlyArray<HeadRow>, SqlError | StorageError> = sql`SELECT
  h.digest_id::text AS digest_id, h.aggregate_type, h.aggregate_id::text AS aggregate_id, h.stream_version,
  encode(h.hash, 'hex') AS hash, e.id::text AS event_id, encode(e.hash, 'hex') AS event_hash,
  (SELECT max(x.stream_version) FROM ${events} x
    WHERE x.aggregate_type = h.aggregate_type AND x.aggregate_id = h.aggregate_id) AS last
FROM ${heads} h
LEFT JOIN ${events} e ON e.aggregate_type = h.aggregate_type AND e.aggregate_id = h.aggregate_id
  AND e.stream_version = h.stream_version
ORDER BY h.digest_id, h.aggregate_type, h.aggregate_id`.withoutTransform.pipe(
    Effect.flatMap(decodeLoggedHeadRows),
    Effect.map((rows) =>
      rows.map((row): HeadRow => ({
        ...headOf(row),
        digestId: Number(row.digest_id),
        stored: { eventId: row.event_id ?? undefined, hash: row.event_hash, last: row.last ?? 0 }
      }))
    ),
    Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
  )

  /** Stores `moved`, the heads that moved since the previous digest, as digest `id`'s. */
  const insertHeads = (id: number, moved: ReadonlyArray<Head>): Effect.Effect<void, SqlError> =>
    moved.length === 0
      ? Effect.void
      : Effect.asVoid(sql`INSERT INTO ${heads} (digest_id, aggregate_type, aggregate_id, stream_version, hash)
SELECT ${id}::bigint, v.aggregate_type, v.aggregate_id, v.stream_version, decode(v.hash, 'hex')
FROM jsonb_to_recordset(${JSON.stringify(
          moved.map((head) => ({
            aggregate_type: head.aggregateType,
            aggregate_id: head.aggregateId,
            stream_version: head.streamVersion,
            hash: head.hash
          }))
        )}::jsonb) AS v(aggregate_type text, aggregate_id uuid, stream_version integer, hash text)`)

  /** Stores a digest; its root as bytes, so that the database's copy can be compared with a document's. */
  const insertDigest = (digest: StoredDigest): Effect.Effect<void, SqlError> =>
    Effect.asVoid(sql`INSERT INTO ${digests} (id, checkpoint_commit_sequence, checkpoint_global_position, root,
  previous_hash, document)
VALUES (${digest.id}::bigint, ${digest.checkpoint.commitSequence.toString()}::bigint,
  ${digest.checkpoint.globalPosition.toString()}::bigint, decode(${digest.root}, 'hex'),
  decode(${digest.previousHash}, 'hex'), ${digest.document})`)

  return {
    lock,
    readHeads,
    readHeadRows,
    readStreamHead,
    readDigests,
    readLatestDigest,
    readLatestDigestAge,
    movedHeads,
    headsAfter,
    insertHeads,
    insertDigest
  }
}

const storageError = (detail: string) =>
  new StorageError({ operation: "Digest.read", reason: new UnexpectedRow(), detail })

const HeadRowSchema = Schema.Struct({
  aggregate_type: Schema.String,
  aggregate_id: Schema.String,
  stream_version: Schema.Number,
  hash: Schema.NullOr(Schema.String)
})

const decodeHeadRows = Schema.decodeUnknownEffect(Schema.Array(HeadRowSchema))

const decodeNumberedHeadRows = Schema.decodeUnknownEffect(
  Schema.Array(Schema.Struct({ ...HeadRowSchema.fields, digest_id: Schema.String }))
)

const decodeLoggedHeadRows = Schema.decodeUnknownEffect(
  Schema.Array(
    Schema.Struct({
      ...HeadRowSchema.fields,
      digest_id: Schema.String,
      event_id: Schema.NullOr(Schema.String),
      event_hash: Schema.NullOr(Schema.String),
      last: Schema.NullOr(Schema.Number)
    })
  )
)

const headOf = (row: typeof HeadRowSchema.Type): Head => ({
  aggregateType: row.aggregate_type,
  aggregateId: row.aggregate_id,
  streamVersion: row.stream_version,
  hash: row.hash
})

const DigestRow = Schema.Struct({
  id: Schema.String,
  commit_sequence: Schema.String,
  global_position: Schema.String,
  root: Schema.String,
  previous_hash: Schema.NullOr(Schema.String),
  document: Schema.String
})

const decodeAgeRows = Schema.decodeUnknownEffect(Schema.Array(Schema.Struct({ age_ms: Schema.NullOr(Schema.String) })))

const decodeDigestRows = Schema.decodeUnknownEffect(Schema.Array(DigestRow))

const storedDigestOf = (row: typeof DigestRow.Type): StoredDigest => ({
  id: Number(row.id),
  checkpoint: Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position)),
  root: row.root,
  previousHash: row.previous_hash,
  document: row.document
})
