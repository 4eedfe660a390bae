/**
 * Test support for the tamper evidence: hash chains built in memory, and the signing key of a test's digests.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Digest from "../../src/Digest.ts"
import * as Integrity from "../../src/Integrity.ts"

/** A genuine chain of `length` events of one stream, as the chain reads rows back, with no database. */
export const syntheticChain = (aggregateId: string, length: number): ReadonlyArray<Integrity.ChainedEvent> => {
  const out: Array<Integrity.ChainedEvent> = []
  let previous = Integrity.genesis
  for (let version = 1; version <= length; version++) {
    const fields = {
      eventId: `00000000-0000-4000-8000-${String(version).padStart(12, "0")}`,
      eventType: "organization.updated",
      aggregateType: "organization",
      aggregateId,
      userId: aggregateId,
      timestamp: String(1_700_000_000_000_000 + version),
      version: 1,
      data: { n: version },
      metadata: {},
      correlationId: null,
      causationId: null,
      streamVersion: version
    }
    previous = Integrity.link(previous, Integrity.canonical(fields))
    out.push({ ...fields, hash: previous, globalPosition: BigInt(version) })
  }
  return out
}

/** A fresh Ed25519 signing key, made when the layer is built. */
export const signingKey: Layer.Layer<Digest.SigningKey, Digest.DigestError> = Layer.effect(
  Digest.SigningKey,
  Effect.flatMap(Digest.generateSigningKey, (key) => Digest.parseSigningKey(key.privateKeyPem))
)
