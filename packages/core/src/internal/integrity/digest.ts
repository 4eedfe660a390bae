/**
 * The root of a digest and the tables that keep digests: a digest signs, for every stream, its head as of a
 * checkpoint (the last version written at or before it, and that event's hash), through one SHA-256 root.
 *
 * `root = SHA-256("annal.digest.v2\n" ‖ for each stream, ordered by aggregate type then aggregate id, bytewise:
 * "<aggregate type> <aggregate id> <head version> <head hash in hex>\n")`. A stream's head hash commits to its
 * whole chain, so the root commits to every event of every stream up to its head.
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import * as Checkpoint from "../../Checkpoint.ts"
import { type EventTable, qualify } from "../../EventTable.ts"

/** The format tag of digests, in the root's preimage and in every document. */
export const format = "annal.digest.v2"

/** A stream's head as a digest signs it. */
export interface Head {
  readonly aggregateType: string
  readonly aggregateId: string
  readonly streamVersion: number
  /** Lowercase hex; null for a head row without a hash, which no digest can sign. */
  readonly hash: string | null
}

/** Orders streams by aggregate type, then aggregate id, by UTF-16 code units (bytewise for these ASCII names). */
export const compareHeads = (
  a: { readonly aggregateType: string; readonly aggregateId: string },
  b: { readonly aggregateType: string; readonly aggregateId: string }
): number =>
  a.aggregateType < b.aggregateType
    ? -1
    : a.aggregateType > b.aggregateType
      ? 1
      : a.aggregateId < b.aggregateId
        ? -1
        : a.aggregateId > b.aggregateId
          ? 1
          : 0

/** The root over a set of heads, in hex. A head without a hash contributes an empty hash, so it never matches. */
export const rootOf = (heads: ReadonlyArray<Head>): string => {
  const hash = createHash("sha256").update(`${format}\n`, "utf8")
  for (const head of heads.toSorted(compareHeads)) {
    hash.update(`${head.aggregateType} ${head.aggregateId} ${head.streamVersion} ${head.hash ?? ""}\n`, "utf8")
  }
  return hash.digest("hex")
}

/** The key of a stream in maps. */
export const streamKey = (aggregateType: string, aggregateId: string): string => `${aggregateType} ${aggregateId}`

/** A digest as its table stores it. */
export interface StoredDigest {
  readonly id: number
  readonly checkpoint: Checkpoint.Checkpoint
  readonly root: string
  readonly document: string
}

/** Reads and writes the digests tables of one events table. */
export const makeDigestTables = (sql: SqlClient.SqlClient, config: EventTable) => {
  const digests = sql(qualify(config, `${config.table}_digests`))
  const heads = sql(qualify(config, `${config.table}_digest_heads`))
  /** The heads signed by digest `id`: each stream's latest row at or before it. */
  const readHeads = (id: number): Effect.Effect<ReadonlyArray<Head>, SqlError | StorageError> =>
    sql`SELECT DISTINCT ON (h.aggregate_type, h.aggregate_id) h.aggregate_type, h.aggregate_id::text AS aggregate_id,
  h.stream_version, encode(h.hash, 'hex') AS hash
FROM ${heads} h WHERE h.digest_id <= ${id}::bigint
ORDER BY h.aggregate_type, h.aggregate_id, h.digest_id DESC`.withoutTransform.pipe(
      Effect.flatMap(decodeHeadRows),
      Effect.map((rows) =>
        rows.map((row): Head => ({
          aggregateType: row.aggregate_type,
          aggregateId: row.aggregate_id,
          streamVersion: row.stream_version,
          hash: row.hash
        }))
      ),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  /** Stored digests, the latest first, or only the one with `id`. */
  const readDigests = (id?: number): Effect.Effect<ReadonlyArray<StoredDigest>, SqlError | StorageError> =>
    // Qualified: the select list renames id to its text form, which an unqualified ORDER BY would sort by.
    sql`SELECT d.id::text AS id, d.checkpoint_commit_sequence::text AS commit_sequence,
  d.checkpoint_global_position::text AS global_position, encode(d.root, 'hex') AS root, d.document
FROM ${digests} d ${id === undefined ? sql`` : sql`WHERE d.id = ${id}::bigint`} ORDER BY d.id DESC`.withoutTransform.pipe(
      Effect.flatMap(decodeDigestRows),
      Effect.map((rows) =>
        rows.map((row): StoredDigest => ({
          id: Number(row.id),
          checkpoint: Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position)),
          root: row.root,
          document: row.document
        }))
      ),
      Effect.mapError((error) => (error._tag === "SchemaError" ? storageError(error.message) : error))
    )

  return { digests, heads, readHeads, readDigests }
}

const storageError = (detail: string) =>
  new StorageError({ operation: "Digest.read", reason: new UnexpectedRow(), detail })

const HeadRow = Schema.Struct({
  aggregate_type: Schema.String,
  aggregate_id: Schema.String,
  stream_version: Schema.Number,
  hash: Schema.NullOr(Schema.String)
})

const decodeHeadRows = Schema.decodeUnknownEffect(Schema.Array(HeadRow))

const DigestRow = Schema.Struct({
  id: Schema.String,
  commit_sequence: Schema.String,
  global_position: Schema.String,
  root: Schema.String,
  document: Schema.String
})

const decodeDigestRows = Schema.decodeUnknownEffect(Schema.Array(DigestRow))
