/**
 * The tampering campaign: random single tamperings made as a database superuser, each checked by the verifier and
 * rolled back. Every one must be reported at its first bad position with the right kind; and each verifier with a
 * check left out must miss the kind of tampering that check is there for (links not chained: an event rewritten
 * before its stream's head, hashes recomputed; metadata not hashed: changed metadata; signatures not checked: a
 * forged digest), which shows that the campaign tests each check rather than passing whatever the verifier says.
 *
 * The attacker gets past the ENABLE ALWAYS triggers the way a superuser or the table's owner can:
 * `ALTER TABLE ... DISABLE TRIGGER` inside a transaction (`session_replication_role = replica` does not help him, as a
 * test of Integrity.test.ts shows). He knows the hash scheme, so he can recompute hashes; he does not hold the
 * signing key.
 */
import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import * as Base64Url from "effect/encoding/Base64Url"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Signature from "effect/crypto/Signature"
import type * as Checkpoint from "../src/Checkpoint.ts"
import * as Digest from "../src/Digest.ts"
import * as EventStore from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import * as Migrations from "../src/Migrations.ts"
import { type ChainedEvent, genesis } from "../src/internal/integrity/chain.ts"
import { makeReadStream } from "../src/internal/integrity/read.ts"
import { rootOf } from "../src/internal/integrity/digest.ts"
import { GstAdded, OrganizationCreated, OrganizationUpdated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

// -----------------------------------------------------------------------------
// A seeded random source, so that a failing campaign can be replayed
// -----------------------------------------------------------------------------

const seed = Number(process.env["ANNAL_TAMPER_SEED"] ?? 20_240_607)

const makeRandom = (initial: number) => {
  let state = initial >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  /** An integer in [min, max]. */
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1))
  const pick = <A>(items: ReadonlyArray<A>): A => items[int(0, items.length - 1)]!
  return { next, int, pick }
}
type Random = ReturnType<typeof makeRandom>

// -----------------------------------------------------------------------------
// The log
// -----------------------------------------------------------------------------

interface Stream {
  readonly aggregateId: string
  readonly length: number
}

/** Appends a log of `streams` streams of 3 to 14 events, in batches that mix streams, with varied payloads. */
const writeLog = (random: Random, streams: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const user = uuid()
    const plan = Array.from({ length: streams }, () => ({ aggregateId: uuid(), length: random.int(3, 14) }))
    const written = new Map<string, number>()
    const eventFor = (aggregateId: string, version: number) => {
      const metadata = {
        correlationId: `c-${random.int(0, 9)}`,
        ...(random.next() < 0.5 ? { ipAddress: `10.0.0.${random.int(1, 254)}` } : {}),
        ...(random.next() < 0.5
          ? { extras: { tenant: random.pick(["acme", "globex", "ünïcödé ✓"]), nested: { z: 1, a: [2.5, "x"] } } }
          : {})
      }
      if (version === 1) {
        return OrganizationCreated.make({
          aggregateId,
          userId: user,
          data: { name: `Org ${random.int(1, 999)}`, type: "corporation", email: "x@y.z", country: "IN" },
          metadata
        })
      }
      return random.next() < 0.5
        ? GstAdded.make({
            aggregateId,
            userId: user,
            data: {
              state: random.pick(["MH", "KA", "TN"]),
              gstin: `G${random.int(1000, 9999)}`,
              amount: random.int(1, 1e6) / 8
            },
            metadata
          })
        : OrganizationUpdated.make({
            aggregateId,
            userId: user,
            data: { changes: { email: { old: "x@y.z", new: `n${random.int(1, 99)}@y.z` } } },
            metadata
          })
    }
    // Batches take one to three events from one to three random streams, so that one statement chains several
    // streams at once.
    while ([...plan].some((stream) => (written.get(stream.aggregateId) ?? 0) < stream.length)) {
      const open = plan.filter((stream) => (written.get(stream.aggregateId) ?? 0) < stream.length)
      const batch = []
      for (let n = random.int(1, 3); n > 0; n--) {
        const stream = random.pick(open)
        const next = (written.get(stream.aggregateId) ?? 0) + 1
        if (next > stream.length) continue
        written.set(stream.aggregateId, next)
        batch.push(eventFor(stream.aggregateId, next))
      }
      if (batch.length > 0) yield* store.append(batch)
    }
    return plan satisfies ReadonlyArray<Stream>
  })

// -----------------------------------------------------------------------------
// The attacker
// -----------------------------------------------------------------------------

/** What the verifier must report for a tampering. */
type Expected =
  | {
      readonly _tag: "Stream"
      readonly aggregateId: string
      readonly kind: Integrity.BreakKind
      readonly streamVersion: number
    }
  | { readonly _tag: "Digest"; readonly kind: Integrity.DigestProblemKind }

const tamperKinds = [
  "data",
  "metadata",
  "field",
  "delete",
  "swap",
  "insert",
  "truncate",
  "rewrite",
  "forged_digest"
] as const
type TamperKind = (typeof tamperKinds)[number]

/** A far-away stream version, to move rows through without breaking the unique stream key. */
const parked = 1_000_000

const makeAttacker = (schema: string, scheme: Integrity.HashScheme) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = sql(`${schema}.events`)
    const readStream = makeReadStream(sql, events)
    const where = (aggregateId: string) => sql`aggregate_type = 'organization' AND aggregate_id = ${aggregateId}::uuid`

    /** Recomputes and stores the hashes of a stream from `from` on, as someone who knows the scheme would. */
    const rechain = (aggregateId: string, from: number) =>
      Effect.gen(function* () {
        const rows = yield* readStream("organization", aggregateId)
        let previous = genesis
        for (const row of rows) {
          if (row.streamVersion >= from) {
            previous = scheme.link(previous, scheme.canonical(row))
            yield* sql`UPDATE ${events} SET hash = decode(${previous}, 'hex') WHERE id = ${row.eventId}::uuid`
          } else {
            previous = row.hash ?? genesis
          }
        }
      })

    const changeData = (row: ChainedEvent, random: Random) => {
      const data = row.data !== null && typeof row.data === "object" && !Array.isArray(row.data) ? row.data : {}
      const key = random.next() < 0.8 ? random.pick([...Object.keys(data), "forged"]) : "forged"
      return sql`UPDATE ${events} SET data = data || jsonb_build_object(${key}::text, ${`tampered ${random.int(0, 1e9)}`}::text)
        WHERE id = ${row.eventId}::uuid`
    }

    /** Makes one tampering of `kind` on `stream` and says what the verifier must find. */
    const tamper = (kind: TamperKind, stream: Stream, random: Random, checkpoint: Checkpoint.Json) =>
      Effect.gen(function* () {
        yield* sql`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`
        const rows = yield* readStream("organization", stream.aggregateId)
        const n = rows.length
        const at = (kind: Integrity.BreakKind, streamVersion: number): Expected => ({
          _tag: "Stream",
          aggregateId: stream.aggregateId,
          kind,
          streamVersion
        })
        switch (kind) {
          case "data": {
            const row = random.pick(rows)
            yield* changeData(row, random)
            return at("changed", row.streamVersion)
          }
          case "metadata": {
            const row = random.pick(rows)
            yield* random.next() < 0.5
              ? sql`UPDATE ${events} SET metadata = metadata || jsonb_build_object('reason', ${`forged ${random.int(0, 1e9)}`}::text)
                  WHERE id = ${row.eventId}::uuid`
              : sql`UPDATE ${events} SET metadata = metadata - 'correlationId' WHERE id = ${row.eventId}::uuid`
            return at("changed", row.streamVersion)
          }
          case "field": {
            const row = random.pick(rows)
            const field = random.pick(["user", "timestamp", "type", "version", "correlation"] as const)
            yield* field === "user"
              ? sql`UPDATE ${events} SET user_id = ${uuid()}::uuid WHERE id = ${row.eventId}::uuid`
              : field === "timestamp"
                ? // One microsecond: more than a JavaScript Date can even hold.
                  sql`UPDATE ${events} SET "timestamp" = "timestamp" + interval '1 microsecond' WHERE id = ${row.eventId}::uuid`
                : field === "type"
                  ? sql`UPDATE ${events} SET event_type = 'organization.forged' WHERE id = ${row.eventId}::uuid`
                  : field === "version"
                    ? sql`UPDATE ${events} SET version = version + 1 WHERE id = ${row.eventId}::uuid`
                    : sql`UPDATE ${events} SET correlation_id = 'forged' WHERE id = ${row.eventId}::uuid`
            return at("changed", row.streamVersion)
          }
          case "delete": {
            const version = random.int(1, n - 1)
            yield* sql`DELETE FROM ${events} WHERE ${where(stream.aggregateId)} AND stream_version = ${version}`
            return at("missing", version)
          }
          case "swap": {
            const first = random.int(1, n - 1)
            const second = random.int(first + 1, n)
            yield* sql`UPDATE ${events} SET stream_version = ${parked} WHERE ${where(stream.aggregateId)} AND stream_version = ${first}`
            yield* sql`UPDATE ${events} SET stream_version = ${first} WHERE ${where(stream.aggregateId)} AND stream_version = ${second}`
            yield* sql`UPDATE ${events} SET stream_version = ${second} WHERE ${where(stream.aggregateId)} AND stream_version = ${parked}`
            return at("swapped", first)
          }
          case "insert": {
            const version = random.int(1, n + 1)
            if (version <= n) {
              yield* sql`UPDATE ${events} SET stream_version = stream_version + ${parked}
                WHERE ${where(stream.aggregateId)} AND stream_version >= ${version}`
              yield* sql`UPDATE ${events} SET stream_version = stream_version - ${parked - 1}
                WHERE ${where(stream.aggregateId)} AND stream_version >= ${parked}`
            }
            const template = rows[0]!
            const forged = {
              ...template,
              eventId: uuid(),
              eventType: "organization.gst.added",
              data: { gstin: "FORGED", state: "XX" },
              metadata: {},
              correlationId: null,
              causationId: null,
              version: 1,
              streamVersion: version
            }
            const hash = scheme.link(rows[version - 2]?.hash ?? genesis, scheme.canonical(forged))
            // At the end of the stream he also backdates it into the digest's checkpoint, or only the next digest
            // could see it.
            yield* sql`INSERT INTO ${events} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version,
                data, metadata, stream_version, hash, transaction_id, global_position)
              OVERRIDING SYSTEM VALUE
              VALUES (${forged.eventId}::uuid, ${forged.eventType}, ${stream.aggregateId}::uuid, 'organization',
                ${forged.userId}::uuid, 'epoch'::timestamptz + ${forged.timestamp}::bigint * interval '1 microsecond', 1,
                ${JSON.stringify(forged.data)}::jsonb, '{}'::jsonb, ${version}, decode(${hash}, 'hex'),
                (SELECT c.transaction_id FROM ${sql(`${schema}.events_commits`)} c
                  WHERE c.commit_sequence = ${checkpoint.commitSequence}::bigint), ${-random.int(1, 1e9)})`
            return at("inserted", version)
          }
          case "truncate": {
            const kept = random.int(0, n - 1)
            yield* sql`DELETE FROM ${events} WHERE ${where(stream.aggregateId)} AND stream_version > ${kept}`
            return at("truncated", kept + 1)
          }
          case "rewrite":
          case "forged_digest": {
            const row = random.pick(rows)
            yield* changeData(row, random)
            yield* rechain(stream.aggregateId, row.streamVersion)
            return kind === "rewrite" ? at("rewritten", n) : ({ _tag: "Digest", kind: "signature_invalid" } as const)
          }
        }
      })

    /** The heads of every stream now, as the attacker would compute them to forge a digest's root. */
    const currentRoot = Effect.gen(function* () {
      const rows = yield* sql<{
        readonly aggregate_type: string
        readonly aggregate_id: string
        readonly stream_version: number
        readonly hash: string | null
      }>`SELECT DISTINCT ON (aggregate_type, aggregate_id) aggregate_type, aggregate_id::text AS aggregate_id,
          stream_version, encode(hash, 'hex') AS hash
        FROM ${events} ORDER BY aggregate_type, aggregate_id, stream_version DESC`
      return rootOf(
        rows.map((row) => ({
          aggregateType: row.aggregate_type,
          aggregateId: row.aggregate_id,
          streamVersion: row.stream_version,
          hash: row.hash
        }))
      )
    })

    /** Re-hashes every stream with the scheme, for a log written by a verifier variant's own append. */
    const rechainAll = (streams: ReadonlyArray<Stream>) =>
      sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`
          for (const stream of streams) yield* rechain(stream.aggregateId, 1)
          yield* sql`ALTER TABLE ${events} ENABLE ALWAYS TRIGGER events_refuse_update_delete`
        })
      )

    return { tamper, currentRoot, rechainAll }
  })

// -----------------------------------------------------------------------------
// The campaign
// -----------------------------------------------------------------------------

/** Carries a trial's outcome out of its transaction, which this failure rolls back. */
class Rollback extends Data.TaggedError("Rollback")<{ readonly outcome: Outcome }> {}

interface Outcome {
  readonly kind: TamperKind
  readonly expected: Expected
  readonly caught: boolean
  readonly report: Integrity.Report
}

const matches = (expected: Expected, report: Integrity.Report): boolean => {
  if (expected._tag === "Digest") {
    return (
      report.findings.length === 0 && report.digest?.problems.map((problem) => problem.kind).join() === expected.kind
    )
  }
  const [finding, ...others] = report.findings
  return (
    others.length === 0 &&
    (report.digest?.problems.length ?? 0) === 0 &&
    finding !== undefined &&
    finding.aggregateId === expected.aggregateId &&
    finding.kind === expected.kind &&
    finding.streamVersion === expected.streamVersion
  )
}

/**
 * A document for the tampered log, as the attacker can make one: the genuine one with its root replaced, or one
 * signed with his own key, naming his key or claiming the trusted one.
 */
const forgeDocument = (document: Digest.Document, root: string, random: Random) =>
  Effect.gen(function* () {
    const forged = { ...document, root }
    const variant = random.int(0, 2)
    if (variant === 0) return forged
    const own = yield* Effect.flatMap(Digest.generateSigningKey, (key) => Digest.parseSigningKey(key.privateKeyPem))
    const unsigned = { ...forged, publicKey: variant === 1 ? own.publicKeyId : document.publicKey }
    const signature = yield* Signature.Signature.use((service) =>
      service.sign(own.privateKey, Digest.signedBytes(unsigned))
    ).pipe(Effect.provide(Signature.layerWebCrypto.pipe(Layer.provide(SecureRandom.layerWebCrypto))))
    return { ...unsigned, signature: Base64Url.encode(signature) }
  })

/**
 * Runs `trials` tamperings against the log of `schema`, each in a transaction that is rolled back once the verifier
 * has looked at it. Stops early at the first outcome `until` holds for.
 */
const campaign = (options: {
  readonly schema: string
  readonly verifier: Integrity.Verifier
  readonly streams: ReadonlyArray<Stream>
  readonly document: Digest.Document
  readonly publicKey: Signature.PublicKey<Signature.Ed25519>
  readonly trials: number
  readonly random: Random
  readonly until?: (outcome: Outcome) => boolean
}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const integrity = yield* Integrity.makeWith(options.verifier, { schema: options.schema })
    const attacker = yield* makeAttacker(options.schema, options.verifier)
    const outcomes: Array<Outcome> = []
    for (let trial = 0; trial < options.trials; trial++) {
      const kind = options.random.pick(tamperKinds)
      const stream = options.random.pick(options.streams)
      const outcome = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            const expected = yield* attacker.tamper(kind, stream, options.random, options.document.checkpoint)
            const document =
              kind === "forged_digest"
                ? yield* forgeDocument(options.document, yield* attacker.currentRoot, options.random)
                : options.document
            const report = yield* integrity.verify({
              digest: { document, publicKey: options.publicKey },
              // Small pages, so that streams straddle them.
              batchSize: 37
            })
            return yield* new Rollback({ outcome: { kind, expected, caught: matches(expected, report), report } })
          })
        )
        .pipe(
          Effect.catchTag("Rollback", (rollback) => Effect.succeed(rollback.outcome)),
          Effect.orDie
        )
      outcomes.push(outcome)
      if (options.until?.(outcome) === true) break
    }
    return outcomes
  })

/** A fresh schema with a log, a digest of it, and the key that signed it. */
const setUp = (options: { readonly random: Random; readonly streams: number; readonly scheme: Integrity.HashScheme }) =>
  Effect.gen(function* () {
    const schema = TestDatabase.uniqueSchema()
    const sql = yield* SqlClient.SqlClient
    yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    const key = yield* Effect.flatMap(Digest.generateSigningKey, (generated) =>
      Digest.parseSigningKey(generated.privateKeyPem)
    )
    yield* Migrations.run({ schema })
    const store = yield* EventStore.make({ schema })
    const digest = yield* Digest.make({ schema }).pipe(Effect.provideService(Digest.SigningKey, key))
    const streams = yield* writeLog(options.random, options.streams).pipe(
      Effect.provideService(EventStore.EventStore, store)
    )
    if (options.scheme !== Integrity.verifier) {
      const attacker = yield* makeAttacker(schema, options.scheme)
      yield* attacker.rechainAll(streams)
    }
    // Every commit before the digest is at or below its checkpoint: it covers the whole log.
    const total = streams.reduce((sum, stream) => sum + stream.length, 0)
    const document = yield* digest.create()
    assert.strictEqual(document.events, total)
    return { schema, streams, document, publicKey: key.publicKey }
  })

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

/**
 * Verifiers with one check left out, each with the tampering that only that check sees. Each writes its log with its
 * own scheme, so a clean log passes it.
 */
const mutants: ReadonlyArray<readonly [name: string, verifier: Integrity.Verifier, misses: TamperKind]> = [
  // Without links a change stays in its own event's hash: rewritten with hashes recomputed below the head, the
  // stream's head, which the digest signed, is as it was.
  [
    "skips links (an event's hash ignores its predecessor)",
    { ...Integrity.verifier, link: (_, text) => sha256(text) },
    "rewrite"
  ],
  [
    "ignores metadata",
    { ...Integrity.verifier, canonical: (event) => Integrity.canonical({ ...event, metadata: {} }) },
    "metadata"
  ],
  ["accepts a wrong signature", { ...Integrity.verifier, verifySignature: () => Effect.succeed(true) }, "forged_digest"]
]

describe(`tamper evidence (${TestDatabase.engine}), seed ${seed}`, () => {
  it.live(
    "1,000 random single tamperings by a superuser are each reported at their first bad position",
    () =>
      Effect.gen(function* () {
        const random = makeRandom(seed)
        const log = yield* setUp({ random, streams: 12, scheme: Integrity.verifier })
        const integrity = yield* Integrity.makeWith(Integrity.verifier, { schema: log.schema })
        const clean = yield* integrity.verify({ digest: { document: log.document, publicKey: log.publicKey } })
        assert.isTrue(clean.ok, JSON.stringify(clean))
        assert.isTrue(clean.digest?.verified)

        const outcomes = yield* campaign({
          ...log,
          verifier: Integrity.verifier,
          trials: 1000,
          random
        })
        const missed = outcomes.filter((outcome) => !outcome.caught)
        const missedByKind = Object.fromEntries(
          tamperKinds
            .map((kind) => [kind, missed.filter((outcome) => outcome.kind === kind).length] as const)
            .filter(([, count]) => count > 0)
        )
        assert.deepStrictEqual(
          missedByKind,
          {},
          `${missed.length} of ${outcomes.length} tamperings were not reported as expected, for example: ${JSON.stringify(
            missed
              .slice(0, 2)
              .map(({ expected, report }) => ({ expected, found: report.findings, digest: report.digest }))
          )}`
        )
        assert.strictEqual(outcomes.length, 1000)
        for (const kind of tamperKinds) {
          assert.isAtLeast(outcomes.filter((outcome) => outcome.kind === kind).length, 50, kind)
        }
        // Every trial was rolled back: the log verifies as it did.
        const after = yield* integrity.verify({ digest: { document: log.document, publicKey: log.publicKey } })
        assert.deepStrictEqual(after, clean)
      }).pipe(Effect.scoped, Effect.provide(TestDatabase.sqlLayer), Effect.orDie),
    240_000
  )

  for (const [name, verifier, misses] of mutants) {
    it.live(
      `a verifier that ${name} passes a clean log but misses a ${misses} tampering: the campaign catches it`,
      () =>
        Effect.gen(function* () {
          const random = makeRandom(seed + name.length)
          const log = yield* setUp({ random, streams: 6, scheme: verifier })
          const integrity = yield* Integrity.makeWith(verifier, { schema: log.schema })
          const clean = yield* integrity.verify({ digest: { document: log.document, publicKey: log.publicKey } })
          assert.isTrue(clean.ok, `the mutant should pass the clean log it wrote: ${JSON.stringify(clean)}`)
          // Every kind is drawn, as in the real campaign; it stops at the first miss of the kind the check is for.
          const outcomes = yield* campaign({
            ...log,
            verifier,
            trials: 400,
            random,
            until: (outcome) => outcome.kind === misses && !outcome.caught
          })
          const missedByKind = Object.fromEntries(
            tamperKinds
              .map((kind) => [kind, outcomes.filter((outcome) => outcome.kind === kind && !outcome.caught).length])
              .filter(([, count]) => count !== 0)
          )
          assert.isAbove(
            missedByKind[misses] ?? 0,
            0,
            `the mutant should miss a ${misses} tampering; in ${outcomes.length} tamperings it missed ${JSON.stringify(missedByKind)}`
          )
        }).pipe(Effect.scoped, Effect.provide(TestDatabase.sqlLayer), Effect.orDie),
      120_000
    )
  }
})
