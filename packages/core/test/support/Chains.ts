/**
 * Test support for the tamper evidence: hash chains built in memory, the signing key of a test's digests, and
 * tamperings made in a transaction that is rolled back.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
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

class Rollback extends Data.TaggedError("Rollback") {}

/** Runs `setup`, then `body`, in a transaction that is rolled back, and returns what `body` returned. */
export const rolledBack = <A, E, R, E2, R2>(setup: Effect.Effect<unknown, E2, R2>, body: Effect.Effect<A, E, R>) =>
  SqlClient.SqlClient.use((sql) => {
    const result: Array<A> = []
    return sql
      .withTransaction(
        Effect.gen(function* () {
          yield* setup
          result.push(yield* body)
          return yield* new Rollback()
        })
      )
      .pipe(
        Effect.catchIf(
          (error) => error instanceof Rollback,
          () => Effect.succeed(result[0]!)
        )
      )
  })

/** Runs `body` as a superuser who has turned the append-only trigger of `events` off, and rolls everything back. */
export const asAttacker =
  (events: string) =>
  <A, E, R>(body: Effect.Effect<A, E, R>) =>
    rolledBack(
      SqlClient.SqlClient.use((sql) => sql`ALTER TABLE ${sql(events)} DISABLE TRIGGER events_refuse_update_delete`),
      body
    )
