/**
 * Event ids: UUIDv7, so that ids sort by the time they were made.
 */
import * as SecureRandom from "effect/crypto/SecureRandom"

/**
 * A new UUIDv7. It reads the wall clock and `globalThis.crypto` directly rather than `Clock` and the
 * `SecureRandom` service, so that appending needs no service the caller must provide; the ordering it gives is
 * monotonic within the process.
 */
export const generateEventId = (): string => SecureRandom.uuidV7Unsafe()
