/**
 * The root of a digest: a digest signs, for every stream, its head as of a checkpoint (the last version written at
 * or before it, and that event's hash), through one SHA-256 root.
 *
 * `root = SHA-256("<format>\n" ‖ for each stream, ordered by aggregate type then aggregate id, bytewise:
 * "<aggregate type> <aggregate id> <head version> <head hash in hex>\n")`. A stream's head hash commits to its
 * whole chain, so the root commits to every event of every stream up to its head. The tables that keep digests are
 * read and written in `digestStatements.ts`.
 */
import { createHash } from "node:crypto"

/**
 * The format tag of the digests made now, in the root's preimage and in every document: v3 documents also sign the
 * hash of the previous digest (`previous`), so that digests form a chain.
 */
export const format = "annal.digest.v3"

/** The format of the digests made before they were chained: still read and verified, with no link to check. */
export const formatV2 = "annal.digest.v2"

/** The formats a document can have. */
export type Format = typeof format | typeof formatV2

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

/**
 * The root over a set of heads for a document of `tag`'s format, in hex. A head without a hash contributes an empty
 * hash, so it never matches.
 */
export const rootOf = (heads: ReadonlyArray<Head>, tag: Format = format): string => {
  const hash = createHash("sha256").update(`${tag}\n`, "utf8")
  for (const head of heads.toSorted(compareHeads)) {
    hash.update(`${head.aggregateType} ${head.aggregateId} ${head.streamVersion} ${head.hash ?? ""}\n`, "utf8")
  }
  return hash.digest("hex")
}

/** The key of a stream in maps. */
export const streamKey = (aggregateType: string, aggregateId: string): string => `${aggregateType} ${aggregateId}`

/** SHA-256 of `bytes`, in hex: the hash of a digest document, which the next digest signs. */
export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")
