/**
 * A position in the log's order: the one order every reader of the feed, every consumer, every SSE client and every
 * digest agrees on. Transactions are ordered by their commit sequence, a number the database takes at each
 * appending transaction's commit (see `docs/ordering.md`), and the events of one transaction by their global
 * position, which follows the order they were appended in. A checkpoint `(c, p)` stands for every event of the
 * commits before `c`, and those of commit `c` up to position `p`.
 *
 * The same value is a consumer's stored progress, an SSE event id and a digest's cut-off, so it has one codec
 * (`encode` / `decode`, an opaque string) and one order (`compare`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import { InvalidCursor } from "./AnnalError.ts"

/** A position in the log: every event at or before it, in commit order. */
export interface Checkpoint {
  /** The commit sequence of the transaction. */
  readonly commitSequence: bigint
  /** The global position of the event within that transaction; the largest bigint stands for all of them. */
  readonly globalPosition: bigint
}

/** The checkpoint before the first event. */
export const start: Checkpoint = { commitSequence: 0n, globalPosition: 0n }

/** The largest global position: `(c, endOfCommit)` stands for every event of commit `c`. */
export const endOfCommit = 9223372036854775807n

/** Builds a checkpoint. */
export const make = (commitSequence: bigint, globalPosition: bigint): Checkpoint => ({
  commitSequence,
  globalPosition
})

/** Orders checkpoints as the log does: by commit sequence, then global position. */
export const compare = (self: Checkpoint, that: Checkpoint): -1 | 0 | 1 =>
  self.commitSequence !== that.commitSequence
    ? self.commitSequence < that.commitSequence
      ? -1
      : 1
    : self.globalPosition === that.globalPosition
      ? 0
      : self.globalPosition < that.globalPosition
        ? -1
        : 1

/** The later of two checkpoints. */
export const max = (self: Checkpoint, that: Checkpoint): Checkpoint => (compare(self, that) >= 0 ? self : that)

const prefix = "annal.feed.v2:"
const pattern = /^annal\.feed\.v2:([0-9]{1,19}):([0-9]{1,19})$/
const legacyPattern = /^annal\.feed\.v1:([0-9]{1,20}):([0-9]{1,19})$/
const maxBigint = 9223372036854775807n

/** The checkpoint as an opaque string, for an SSE event id or anything else a client hands back. */
export const encode = (checkpoint: Checkpoint): string =>
  Base64Url.encode(`${prefix}${checkpoint.commitSequence}:${checkpoint.globalPosition}`)

/**
 * The checkpoint a string from `encode` names, or `InvalidCursor` for anything else. A string of the first format,
 * which named a transaction id, needs the database to be read (`Feed.resolve` does it).
 */
export const decode = (text: string): Effect.Effect<Checkpoint, InvalidCursor> => {
  const match = pattern.exec(decodedText(text) ?? "")
  if (match === null) return Effect.fail(new InvalidCursor({ cursor: text }))
  const commitSequence = BigInt(match[1]!)
  const globalPosition = BigInt(match[2]!)
  return commitSequence <= maxBigint && globalPosition <= maxBigint
    ? Effect.succeed({ commitSequence, globalPosition })
    : Effect.fail(new InvalidCursor({ cursor: text }))
}

/**
 * A checkpoint of the first format, `(transaction id, global position)`, as issued before the log had a commit
 * order (migration 6); undefined for anything else.
 */
export const decodeLegacy = (
  text: string
): { readonly transactionId: bigint; readonly globalPosition: bigint } | undefined => {
  const match = legacyPattern.exec(decodedText(text) ?? "")
  if (match === null) return undefined
  const transactionId = BigInt(match[1]!)
  const globalPosition = BigInt(match[2]!)
  // xid8 is unsigned 64-bit, global_position a bigint.
  return transactionId <= 18446744073709551615n && globalPosition <= maxBigint
    ? { transactionId, globalPosition }
    : undefined
}

const decodedText = (text: string): string | undefined => {
  const decoded = Base64Url.decodeString(text)
  return Result.isSuccess(decoded) ? decoded.success : undefined
}

const Digits = Schema.String.check(Schema.isPattern(/^(0|[1-9][0-9]{0,18})$/))

/**
 * A checkpoint in JSON documents (digests, reports): both numbers as decimal strings, which JSON carries exactly
 * whatever their size.
 */
export const Json = Schema.Struct({ commitSequence: Digits, globalPosition: Digits })

/** A checkpoint in JSON documents. */
export type Json = typeof Json.Type

/** The JSON form of a checkpoint. */
export const toJson = (checkpoint: Checkpoint): Json => ({
  commitSequence: checkpoint.commitSequence.toString(),
  globalPosition: checkpoint.globalPosition.toString()
})

/** The checkpoint a JSON form names. */
export const fromJson = (json: Json): Checkpoint => ({
  commitSequence: BigInt(json.commitSequence),
  globalPosition: BigInt(json.globalPosition)
})
