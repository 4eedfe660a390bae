/**
 * Opaque keyset cursors: the global position of the last event of a page, base64url-encoded with a prefix, so
 * that a cursor is not mistaken for a number to compute with.
 */
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Result from "effect/Result"
import { InvalidCursor } from "../../AnnalError.ts"

const prefix = "annal.v1:"

/** The cursor that resumes after `position`. */
export const encode = (position: bigint): string => Base64Url.encode(`${prefix}${position}`)

/** The position a cursor resumes after, or `InvalidCursor` for anything Annal did not produce. */
export const decode = (cursor: string): Effect.Effect<bigint, InvalidCursor> => {
  const decoded = Base64Url.decodeString(cursor)
  if (Result.isFailure(decoded) || !decoded.success.startsWith(prefix)) {
    return Effect.fail(new InvalidCursor({ cursor }))
  }
  const digits = decoded.success.slice(prefix.length)
  return /^[0-9]{1,19}$/.test(digits) && BigInt(digits) <= 9223372036854775807n
    ? Effect.succeed(BigInt(digits))
    : Effect.fail(new InvalidCursor({ cursor }))
}
