/**
 * The root of a digest: a digest signs, for every stream, its head as of a checkpoint (the last version written at
 * or before it, and that event's hash), through one SHA-256 root.
 *
 * `root = SHA-256("annal.digest.v2\n" ‖ for each stream, ordered by aggregate type then aggregate id, bytewise:
 * "<aggregate type> <aggregate id> <head version> <head hash in hex>\n")`. A stream's head hash commits to its
 * whole chain, so the root commits to every event of every stream up to its head. The tables that keep digests are
 * read and written in `digestStatements.ts`.
 */
import { createHash } from "node:crypto"

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
