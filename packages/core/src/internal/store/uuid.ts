/**
 * Event ids: UUIDv7, so that ids sort by the time they were made.
 */

let lastMillis = -1
let counter = 0

/**
 * A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit counter in `rand_a` that makes the ids of one
 * process strictly increasing within a millisecond (method 1 of the RFC's section 6.2; when the counter runs out, or
 * the clock steps back, the timestamp is carried forward instead), then 62 random bits.
 *
 * The random bits are the tail of `crypto.randomUUID()`, whose variant bits are already those of every RFC 9562
 * UUID. Node serves it from a pool of random bytes refilled in bulk; Effect's `SecureRandom.uuidV7Unsafe` asks the
 * system for 16 bytes per id, which was 60% of the time an append of 1,000 events spent preparing them. It reads the
 * wall clock and `globalThis.crypto` directly, rather than `Clock` and a service, so that appending needs no service
 * the caller must provide.
 */
export const generateEventId = (): string => {
  const now = Date.now()
  if (now > lastMillis) {
    lastMillis = now
    counter = 0
  } else if (counter < 0xfff) {
    counter++
  } else {
    lastMillis++
    counter = 0
  }
  const time = lastMillis.toString(16).padStart(12, "0")
  return `${time.slice(0, 8)}-${time.slice(8)}-7${counter.toString(16).padStart(3, "0")}-${crypto.randomUUID().slice(19)}`
}
