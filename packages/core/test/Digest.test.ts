import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as KeyFormat from "effect/crypto/KeyFormat"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Signature from "effect/crypto/Signature"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import * as Digest from "../src/Digest.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import { rootOf } from "../src/internal/integrity/digest.ts"
import { makeDigestStatements } from "../src/internal/integrity/digestStatements.ts"
import { makeReadStream } from "../src/internal/integrity/read.ts"
import * as Chains from "./support/Chains.ts"
import { GstAdded, OrganizationCreated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`

const TestLayer = Layer.mergeAll(Integrity.layer({ schema }), Digest.layer({ schema })).pipe(
  Layer.provideMerge(Chains.signingKey),
  Layer.provideMerge(TestDatabase.layerWith(schema))
)

const created = (aggregateId: string, userId: string) =>
  OrganizationCreated.make({
    aggregateId,
    userId,
    data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }
  })

const gst = (aggregateId: string, userId: string, gstin: string) =>
  GstAdded.make({ aggregateId, userId, data: { gstin, state: "KA" } })

/** Waits for `n` items of `made`; the bound is only a hang guard. */
const madeSoon = (made: Queue.Queue<void>, n: number) =>
  Effect.timeout(Effect.replicateEffect(Queue.take(made), n), "30 seconds")

/** A report's digest problems as kind, digest and stream. */
const problemsOf = (report: Integrity.Report) =>
  (report.digest?.problems ?? []).map((problem) => [problem.kind, problem.digestId, problem.aggregateId ?? null])

/** Runs `body` as a superuser who has turned the append-only trigger off, and rolls everything back. */
const asAttacker = Chains.asAttacker(events)

/**
 * A digest that covers every event in the table, as the default checkpoint must: it is the latest event of the
 * table that committed before the call.
 */
const coveringDigest = Effect.gen(function* () {
  const digest = yield* Digest.Digest
  const sql = yield* SqlClient.SqlClient
  const [latest] = yield* sql<{ readonly commit_sequence: string; readonly global_position: string }>`SELECT
      c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
    FROM ${sql(`${events}_commits`)} c JOIN ${sql(events)} e ON e.transaction_id = c.transaction_id
    ORDER BY c.commit_sequence DESC, e.global_position DESC LIMIT 1`
  // Everything committed before the call is covered at once: no transaction elsewhere holds a digest back.
  const document = yield* digest.create()
  assert.deepStrictEqual(document.checkpoint, {
    commitSequence: latest!.commit_sequence,
    globalPosition: latest!.global_position
  })
  return document
})

const verifyWith = (document: Digest.Document) =>
  Effect.gen(function* () {
    const integrity = yield* Integrity.Integrity
    const key = yield* Digest.SigningKey
    return yield* integrity.verify({ digest: { document, publicKey: key.publicKey } })
  })

layer(TestLayer, { timeout: 120_000 })(`Digest (${TestDatabase.engine})`, (it) => {
  it.effect("a digest is signed, stored, exported, and verifies the log it was made of", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const key = yield* Digest.SigningKey
      const user = uuid()
      const [a, b] = [uuid(), uuid()]
      yield* store.append([created(a, user), created(b, user), gst(a, user, "1")])
      const document = yield* coveringDigest
      assert.strictEqual(document.format, "annal.digest.v3")
      assert.strictEqual(document.table, events)
      assert.strictEqual(document.publicKey, key.publicKeyId)
      assert.isAtLeast(document.streams, 2)
      assert.isAtLeast(document.events, 3)

      const decoded = yield* Digest.decode(Digest.encode(document))
      assert.deepStrictEqual(decoded, document)
      assert.isTrue(yield* Digest.verifySignature(decoded, key.publicKey))
      const stored = yield* digest.list
      assert.deepStrictEqual(stored[0], document)

      const report = yield* verifyWith(decoded)
      assert.isTrue(report.ok, JSON.stringify(report))
      assert.deepStrictEqual(report.digest, {
        id: document.id,
        checkpoint: document.checkpoint,
        verified: true,
        problems: []
      })
    })
  )

  it.effect("by default the checkpoint is the latest event of a finished transaction, numerically", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      // Enough events that global positions run past a power of ten, where text order and number order differ.
      const appended = yield* store.append([
        created(org, user),
        ...Array.from({ length: 11 }, (_, n) => gst(org, user, String(n)))
      ])
      const last = appended.at(-1)!
      const [row] = yield* sql<{ readonly commit_sequence: string }>`SELECT c.commit_sequence::text AS commit_sequence
        FROM ${sql(`${events}_commits`)} c JOIN ${sql(events)} e ON e.transaction_id = c.transaction_id
        WHERE e.id = ${last.eventId}::uuid`
      const document = yield* coveringDigest
      assert.deepStrictEqual(document.checkpoint, {
        commitSequence: row!.commit_sequence,
        globalPosition: last.globalPosition.toString()
      })
    })
  )

  it.effect("a document changed in any field, or signed by another key, does not verify", () =>
    Effect.gen(function* () {
      const key = yield* Digest.SigningKey
      const store = yield* EventStore
      yield* store.append([created(uuid(), uuid())])
      const document = yield* coveringDigest
      const changes: ReadonlyArray<Digest.Document> = [
        { ...document, id: document.id + 1 },
        { ...document, table: "public.events" },
        // Each change must change something: a fixed replacement value can equal the original.
        {
          ...document,
          checkpoint: { ...document.checkpoint, globalPosition: `${BigInt(document.checkpoint.globalPosition) + 1n}` }
        },
        { ...document, streams: document.streams + 1 },
        { ...document, events: document.events - 1 },
        { ...document, root: "0".repeat(64) },
        { ...document, createdAt: "2000-01-01T00:00:00.000Z" },
        { ...document, signature: flipCharacter(document.signature, 10) }
      ]
      for (const changed of changes) assert.isFalse(yield* Digest.verifySignature(changed, key.publicKey))
      const other = yield* Effect.flatMap(Digest.generateSigningKey, (generated) =>
        Digest.parseSigningKey(generated.privateKeyPem)
      )
      assert.isFalse(yield* Digest.verifySignature(document, other.publicKey))
      const report = yield* Integrity.Integrity.use((integrity) =>
        integrity.verify({ digest: { document, publicKey: other.publicKey } })
      )
      assert.deepStrictEqual(
        report.digest?.problems.map((problem) => problem.kind),
        ["signature_invalid"]
      )
      assert.isFalse(report.ok)
    })
  )

  it.effect("later digests store only the heads that moved, and every digest still verifies", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const sql = yield* SqlClient.SqlClient
      const user = uuid()
      const [a, b] = [uuid(), uuid()]
      yield* store.append([created(a, user), created(b, user)])
      const first = yield* coveringDigest
      yield* store.append([gst(a, user, "2")])
      const second = yield* coveringDigest
      assert.isAbove(second.id, first.id)
      assert.strictEqual(second.events, first.events + 1)
      const moved = yield* sql<{ readonly aggregate_id: string; readonly stream_version: number }>`SELECT
          aggregate_id::text AS aggregate_id, stream_version FROM ${sql(`${schema}.events_digest_heads`)}
        WHERE digest_id = ${second.id}`
      assert.deepStrictEqual(moved, [{ aggregate_id: a, stream_version: 2 }])
      // A third digest with nothing new signs the same heads.
      const third = yield* digest.create()
      assert.strictEqual(third.root, second.root)
      for (const document of [first, second, third]) {
        const report = yield* verifyWith(document)
        assert.isTrue(report.ok, `digest #${document.id}: ${JSON.stringify(report)}`)
      }
    })
  )

  it.effect(
    "a truncated tail is caught by a later digest, through the stored chain even from an earlier document",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        const [org, user] = [uuid(), uuid()]
        yield* store.append([created(org, user)])
        const before = yield* coveringDigest
        yield* store.append([gst(org, user, "after")])
        const after = yield* coveringDigest
        const reports = yield* asAttacker(
          Effect.gen(function* () {
            yield* sql`DELETE FROM ${sql(events)} WHERE aggregate_id = ${org}::uuid AND stream_version = 2`
            return [yield* verifyWith(before), yield* verifyWith(after)] as const
          })
        )
        // The earlier document cannot know of the later event; the later digest, stored and signed by the trusted
        // key, does, and the check of the stored chain reads it whichever document it was given.
        for (const report of reports) {
          assert.deepStrictEqual(
            report.findings.map((finding) => [finding.aggregateId, finding.kind, finding.streamVersion]),
            [[org, "truncated", 2]]
          )
        }
      })
  )

  it.effect("a consistent rewrite is caught by the digest alone, and a whole stream forged into its past too", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user), gst(org, user, "1"), gst(org, user, "2")])
      const document = yield* coveringDigest
      const [rewritten, forged] = yield* asAttacker(
        Effect.gen(function* () {
          // Changes version 2 and recomputes its hash and the next one's: every link holds again.
          yield* sql`UPDATE ${sql(events)} SET data = '{"gstin": "X", "state": "KA"}' WHERE aggregate_id = ${org}::uuid
            AND stream_version = 2`
          const integrity = yield* Integrity.Integrity
          const rows = yield* sql<{ readonly id: string }>`SELECT id::text AS id FROM ${sql(events)}
            WHERE aggregate_id = ${org}::uuid ORDER BY stream_version`
          const chain = yield* makeReadStream(sql, sql(events))("organization", org)
          let previous = chain[0]!.hash!
          for (const event of chain.slice(1)) {
            previous = Integrity.link(previous, Integrity.canonical(event))
            yield* sql`UPDATE ${sql(events)} SET hash = decode(${previous}, 'hex') WHERE id = ${event.eventId}::uuid`
          }
          assert.strictEqual(rows.length, 3)
          // Every link holds again; only the head the latest digest signed shows the rewrite, to entity history too.
          const aggregate = yield* integrity.verifyAggregate("organization", org)
          assert.deepStrictEqual([aggregate.finding?.kind, aggregate.finding?.streamVersion], ["rewritten", 3])
          const rewritten = yield* verifyWith(document)
          // A stream that did not exist, backdated to before the checkpoint.
          const ghost = uuid()
          const fields = {
            ...chain[0]!,
            eventId: uuid(),
            aggregateId: ghost,
            streamVersion: 1
          }
          yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
              version, data, metadata, stream_version, hash, transaction_id, global_position)
            OVERRIDING SYSTEM VALUE
            VALUES (${fields.eventId}::uuid, ${fields.eventType}, ${ghost}::uuid, 'organization', ${fields.userId}::uuid,
              'epoch'::timestamptz + ${fields.timestamp}::bigint * interval '1 microsecond', ${fields.version},
              ${JSON.stringify(fields.data)}::jsonb, ${JSON.stringify(fields.metadata)}::jsonb, 1,
              decode(${Integrity.link(Integrity.genesis, Integrity.canonical(fields))}, 'hex'),
              (SELECT transaction_id FROM ${sql(`${events}_commits`)} ORDER BY commit_sequence LIMIT 1), -1)`
          // Another, whose transaction id names no commit: no reader of the feed would ever see it.
          const hidden = uuid()
          const hiddenFields = { ...fields, eventId: uuid(), aggregateId: hidden }
          yield* sql`INSERT INTO ${sql(events)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp",
              version, data, metadata, stream_version, hash, transaction_id)
            VALUES (${hiddenFields.eventId}::uuid, ${fields.eventType}, ${hidden}::uuid, 'organization',
              ${fields.userId}::uuid, 'epoch'::timestamptz + ${fields.timestamp}::bigint * interval '1 microsecond',
              ${fields.version}, ${JSON.stringify(fields.data)}::jsonb, ${JSON.stringify(fields.metadata)}::jsonb, 1,
              decode(${Integrity.link(Integrity.genesis, Integrity.canonical(hiddenFields))}, 'hex'),
              '4611686018427387904'::xid8)`
          return [rewritten, { ghost, hidden, report: yield* verifyWith(document) }] as const
        })
      )
      assert.deepStrictEqual(
        rewritten.findings.map((finding) => [finding.aggregateId, finding.kind, finding.streamVersion]),
        [[org, "rewritten", 3]]
      )
      // Still in the attacker's transaction, the rewrite is reported too.
      assert.sameDeepMembers(
        forged.report.findings.map((finding) => [finding.aggregateId, finding.kind, finding.streamVersion]),
        [
          [org, "rewritten", 3],
          [forged.ghost, "inserted", 1],
          [forged.hidden, "unordered", 1]
        ]
      )
    })
  )

  it.effect("the database's copy of a digest is checked too: missing, or its heads altered", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user), gst(org, user, "1")])
      const document = yield* coveringDigest
      const digests = sql(`${schema}.events_digests`)
      const heads = sql(`${schema}.events_digest_heads`)
      const [missing, altered] = yield* asAttacker(
        Effect.gen(function* () {
          yield* sql`ALTER TABLE ${digests} DISABLE TRIGGER events_digests_refuse_update_delete`
          yield* sql`ALTER TABLE ${heads} DISABLE TRIGGER events_digest_heads_refuse_update_delete`
          yield* sql`DELETE FROM ${digests} WHERE id = ${document.id}`
          const missing = yield* verifyWith(document)
          // Rewrites the last event and makes the stored head agree with it.
          yield* sql`UPDATE ${sql(events)} SET hash = decode(${"ab".repeat(32)}, 'hex')
            WHERE aggregate_id = ${org}::uuid AND stream_version = 2`
          yield* sql`UPDATE ${heads} SET hash = decode(${"ab".repeat(32)}, 'hex') WHERE aggregate_id = ${org}::uuid`
          return [missing, yield* verifyWith(document)] as const
        })
      )
      // The digest row is gone; the heads stored under it remain, and no stored digest covers them now.
      assert.deepStrictEqual(
        missing.digest?.problems.map((problem) => [problem.kind, problem.digestId]),
        [
          ["digest_record_altered", undefined],
          ["digest_head_planted", document.id]
        ]
      )
      assert.deepStrictEqual(missing.findings, [])
      assert.deepStrictEqual(
        altered.digest?.problems.map((problem) => problem.kind),
        ["digest_mismatch", "digest_head_planted"]
      )
      assert.isFalse(altered.ok)
    })
  )

  it.effect("a planted head row is not signed: the next digest is refused, naming the row", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user), gst(org, user, "1")])
      const latest = yield* coveringDigest
      const heads = sql(`${schema}.events_digest_heads`)
      // Version 999 of a real stream, filed under the next digest's number, and then under the latest's.
      const plant = (digestId: number) =>
        asAttacker(
          Effect.gen(function* () {
            yield* sql`ALTER TABLE ${heads} DISABLE TRIGGER events_digest_heads_refuse_update_delete`
            yield* sql`INSERT INTO ${heads} (digest_id, aggregate_type, aggregate_id, stream_version, hash)
              VALUES (${digestId}, 'organization', ${org}::uuid, 999, decode(${"ab".repeat(32)}, 'hex'))
              ON CONFLICT (aggregate_type, aggregate_id, digest_id) DO UPDATE SET stream_version = 999`
            return yield* Effect.result(digest.create())
          })
        )
      for (const digestId of [latest.id + 1, latest.id]) {
        const result = yield* plant(digestId)
        assert.isTrue(Result.isFailure(result), `signed over a planted head row: ${JSON.stringify(result)}`)
        if (Result.isFailure(result)) {
          assert.strictEqual(result.failure._tag, "DigestError")
          assert.strictEqual((result.failure as Digest.DigestError).digestId, digestId)
        }
      }
      // Without the planted row, the next digest signs the real head.
      const next = yield* digest.create()
      assert.strictEqual(next.events, latest.events)
      assert.isTrue((yield* verifyWith(next)).ok)
    })
  )

  it.effect("a planted digest row with a huge checkpoint is not built on: the next digest is refused, naming it", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user)])
      const latest = yield* coveringDigest
      const huge = "9000000000000000000"
      const forged = { ...latest, id: latest.id + 1, checkpoint: { commitSequence: huge, globalPosition: huge } }
      const result = yield* asAttacker(
        Effect.gen(function* () {
          yield* sql`INSERT INTO ${sql(`${schema}.events_digests`)} (id, checkpoint_commit_sequence,
              checkpoint_global_position, root, document)
            VALUES (${forged.id}, ${huge}::bigint, ${huge}::bigint, decode(${latest.root}, 'hex'), ${Digest.encode(forged)})`
          yield* store.append([gst(org, user, "after the forged digest")])
          return yield* Effect.result(digest.create())
        })
      )
      assert.isTrue(Result.isFailure(result), `built on a planted digest row: ${JSON.stringify(result)}`)
      if (Result.isFailure(result)) {
        assert.strictEqual(result.failure._tag, "DigestError")
        assert.strictEqual((result.failure as Digest.DigestError).digestId, forged.id)
        assert.include(result.failure.message, `digest row #${forged.id}`)
      }
    })
  )

  it.effect("each digest signs the hash of the one before it, and a forged link does not verify", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const key = yield* Digest.SigningKey
      const user = uuid()
      yield* store.append([created(uuid(), user)])
      const first = yield* coveringDigest
      yield* store.append([created(uuid(), user)])
      const second = yield* coveringDigest
      assert.strictEqual(second.id, first.id + 1)
      assert.strictEqual(second.previous, Digest.hash(first))
      assert.notStrictEqual(Digest.hash(first), Digest.hash(second))
      assert.isFalse(yield* Digest.verifySignature({ ...second, previous: "0".repeat(64) }, key.publicKey))
      assert.isFalse(yield* Digest.verifySignature({ ...second, previous: null }, key.publicKey))
    })
  )

  it.effect("the verifier checks the stored chain: a planted, removed or altered row is reported, naming it", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user)])
      const first = yield* coveringDigest
      yield* store.append([gst(org, user, "1")])
      const middle = yield* coveringDigest
      yield* store.append([gst(org, user, "2")])
      const last = yield* coveringDigest
      assert.isTrue((yield* verifyWith(last)).ok)
      const digests = sql(`${schema}.events_digests`)
      const heads = sql(`${schema}.events_digest_heads`)
      // A row no key signed, with a checkpoint far ahead.
      const planted = yield* asAttacker(
        Effect.gen(function* () {
          const huge = "9000000000000000000"
          const forged = { ...last, id: last.id + 1, checkpoint: { commitSequence: huge, globalPosition: huge } }
          yield* sql`INSERT INTO ${digests} (id, checkpoint_commit_sequence, checkpoint_global_position, root, document)
            VALUES (${forged.id}, ${huge}::bigint, ${huge}::bigint, decode(${last.root}, 'hex'), ${Digest.encode(forged)})`
          return yield* verifyWith(first)
        })
      )
      assert.deepStrictEqual(problemsOf(planted), [["digest_row_invalid", last.id + 1, null]])
      assert.isFalse(planted.ok)
      // The middle digest removed, with its heads: the last one signs a digest that is not there.
      const removed = yield* asAttacker(
        Effect.gen(function* () {
          yield* sql`ALTER TABLE ${digests} DISABLE TRIGGER events_digests_refuse_update_delete`
          yield* sql`ALTER TABLE ${heads} DISABLE TRIGGER events_digest_heads_refuse_update_delete`
          yield* sql`DELETE FROM ${heads} WHERE digest_id = ${middle.id}`
          yield* sql`DELETE FROM ${digests} WHERE id = ${middle.id}`
          return yield* verifyWith(last)
        })
      )
      assert.deepStrictEqual(problemsOf(removed), [["chain_broken", last.id, null]])
      // The middle digest's row altered: its document no longer is the one signed.
      const altered = yield* asAttacker(
        Effect.gen(function* () {
          yield* sql`ALTER TABLE ${digests} DISABLE TRIGGER events_digests_refuse_update_delete`
          yield* sql`UPDATE ${digests} SET document = ${Digest.encode({ ...middle, events: 1000 })} WHERE id = ${middle.id}`
          return yield* verifyWith(last)
        })
      )
      assert.deepStrictEqual(problemsOf(altered), [["digest_row_invalid", middle.id, null]])
      // A head row planted under the latest digest (version 999 of a real stream), and one under no digest.
      const head = yield* asAttacker(
        Effect.gen(function* () {
          yield* sql`ALTER TABLE ${heads} DISABLE TRIGGER events_digest_heads_refuse_update_delete`
          yield* sql`UPDATE ${heads} SET stream_version = 999 WHERE digest_id = ${last.id} AND aggregate_id = ${org}::uuid`
          yield* sql`INSERT INTO ${heads} (digest_id, aggregate_type, aggregate_id, stream_version, hash)
            VALUES (${last.id + 5}, 'organization', ${org}::uuid, 999, decode(${"ab".repeat(32)}, 'hex'))`
          return yield* verifyWith(middle)
        })
      )
      assert.deepStrictEqual(problemsOf(head), [
        ["digest_head_planted", last.id + 5, org],
        ["digest_head_planted", last.id, org]
      ])
      assert.isTrue((yield* verifyWith(last)).ok, "every attack was rolled back")
    })
  )

  it.effect("a v2 digest, made before the chain, is still verified and built on", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const key = yield* Digest.SigningKey
      const sql = yield* SqlClient.SqlClient
      const [org, user] = [uuid(), uuid()]
      yield* store.append([created(org, user)])
      const latest = yield* coveringDigest
      const result = yield* asAttacker(
        Effect.gen(function* () {
          // As a release before migration 7 signed it: no previous, a root of format v2, a null link column.
          const heads = yield* makeDigestStatements(sql, { schema, table: "events" }).readHeads(latest.id)
          const unsigned = {
            format: "annal.digest.v2" as const,
            table: events,
            id: latest.id + 1,
            checkpoint: latest.checkpoint,
            streams: heads.length,
            events: latest.events,
            root: rootOf(heads, "annal.digest.v2"),
            createdAt: latest.createdAt,
            publicKey: key.publicKeyId
          }
          const signature = yield* Signature.Signature.use((service) =>
            service.sign(key.privateKey, Digest.signedBytes(unsigned))
          ).pipe(
            Effect.provide(Signature.layerWebCrypto.pipe(Layer.provide(SecureRandom.layerWebCrypto))),
            Effect.orDie
          )
          const old: Digest.Document = { ...unsigned, signature: Base64Url.encode(signature) }
          yield* sql`INSERT INTO ${sql(`${schema}.events_digests`)} (id, checkpoint_commit_sequence,
              checkpoint_global_position, root, document)
            VALUES (${old.id}, ${old.checkpoint.commitSequence}::bigint, ${old.checkpoint.globalPosition}::bigint,
              decode(${old.root}, 'hex'), ${Digest.encode(old)})`
          yield* store.append([gst(org, user, "after v2")])
          const next = yield* digest.create()
          return { old, next, report: yield* verifyWith(next), oldReport: yield* verifyWith(old) }
        })
      )
      assert.strictEqual(result.next.format, "annal.digest.v3")
      assert.strictEqual(result.next.previous, Digest.hash(result.old))
      assert.isTrue(result.report.ok, JSON.stringify(result.report))
      assert.isTrue(result.oldReport.ok, JSON.stringify(result.oldReport))
    })
  )

  it.effect("a checkpoint must be stable and not before the previous digest's", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const sql = yield* SqlClient.SqlClient
      yield* store.append([created(uuid(), uuid())])
      const latest = yield* digest.create()
      const [taken] = yield* sql<{ readonly last: string }>`SELECT last_value::text AS last
        FROM ${sql(`${events}_commit_sequence`)}`
      const next = (BigInt(taken!.last) + 1n).toString()
      const unstable = yield* Effect.flip(digest.create({ checkpoint: { commitSequence: next, globalPosition: "0" } }))
      assert.include(unstable.message, "not stable")
      const earlier = yield* Effect.flip(digest.create({ checkpoint: { commitSequence: "1", globalPosition: "0" } }))
      assert.include(earlier.message, "before the previous digest")
      const same = yield* digest.create({ checkpoint: latest.checkpoint })
      assert.strictEqual(same.root, latest.root)
    })
  )

  it.effect("concurrent digests are serialized: consecutive ids, each verifying", () =>
    Effect.gen(function* () {
      const digest = yield* Digest.Digest
      const documents = yield* Effect.all(
        Array.from({ length: 4 }, () => digest.create()),
        { concurrency: "unbounded" }
      )
      const ids = documents.map((document) => document.id).toSorted((x, y) => x - y)
      assert.deepStrictEqual(
        ids,
        ids.map((_, index) => ids[0]! + index)
      )
      for (const document of documents) assert.isTrue((yield* verifyWith(document)).ok)
    })
  )

  it.effect("layerSchedule makes digests on its schedule while it lives, and none once it is gone", () =>
    TestClock.withLive(
      Effect.gen(function* () {
        const digest = yield* Digest.Digest
        const count = Effect.map(digest.list, (documents) => documents.length)
        /** Launches `layerSchedule` over a `Digest` that reports each digest it made to `made`. */
        const launch = (schedule: Schedule.Schedule<unknown, unknown>, made: Queue.Queue<void>) =>
          Layer.launch(Digest.layerSchedule(schedule)).pipe(
            Effect.provideService(
              Digest.Digest,
              Digest.Digest.of({
                ...digest,
                create: (options) => Effect.tap(digest.create(options), () => Queue.offer(made, undefined))
              })
            ),
            Effect.forkChild
          )
        const before = yield* count
        const madeByFirst = yield* Queue.unbounded<void>()
        const first = yield* launch(Schedule.spaced("20 millis"), madeByFirst)
        yield* madeSoon(madeByFirst, 2)
        yield* Fiber.interrupt(first)
        const stopped = yield* count
        assert.isAtLeast(stopped, before + 2)
        // The control: a schedule as frequent, launched once the first is gone, makes three digests and ends. In that
        // window the first, were it still running, would have made some too.
        const madeByControl = yield* Queue.unbounded<void>()
        const control = yield* launch(Schedule.max([Schedule.spaced("20 millis"), Schedule.recurs(3)]), madeByControl)
        yield* madeSoon(madeByControl, 3)
        assert.strictEqual(yield* count, stopped + 3, "the schedule stops with its layer")
        yield* Fiber.interrupt(control)
      })
    )
  )
})

describe("Digest keys", () => {
  it.effect("a signing key reads from PKCS#8 PEM or a base64url seed; a public key from SPKI PEM or base64url", () =>
    Effect.gen(function* () {
      const generated = yield* Digest.generateSigningKey
      const fromPem = yield* Digest.parseSigningKey(generated.privateKeyPem)
      assert.strictEqual(fromPem.publicKeyId, generated.publicKey)
      const spki = yield* KeyFormat.encode(KeyFormat.pem(KeyFormat.spki), fromPem.publicKey).pipe(Effect.orDie)
      const fromSpki = yield* Digest.parsePublicKey(spki)
      const fromId = yield* Digest.parsePublicKey(generated.publicKey)
      const unsigned = {
        format: "annal.digest.v2" as const,
        table: "public.events",
        id: 1,
        checkpoint: { commitSequence: "1", globalPosition: "1" },
        streams: 0,
        events: 0,
        root: "0".repeat(64),
        createdAt: "2024-01-01T00:00:00.000Z",
        publicKey: generated.publicKey
      }
      // Both public key forms check a document signed with the key.
      const signature = yield* Signature.Signature.use((service) =>
        service.sign(fromPem.privateKey, Digest.signedBytes(unsigned))
      ).pipe(Effect.provide(Signature.layerWebCrypto.pipe(Layer.provide(SecureRandom.layerWebCrypto))), Effect.orDie)
      const signed = { ...unsigned, signature: Base64Url.encode(signature) }
      assert.isTrue(yield* Digest.verifySignature(signed, fromSpki))
      assert.isTrue(yield* Digest.verifySignature(signed, fromId))

      const seed = yield* Digest.parseSigningKey(Redacted.make("A".repeat(43)))
      assert.strictEqual(seed.publicKeyId.length, 43)
      const garbage = yield* Effect.flip(Digest.parseSigningKey(Redacted.make("not a key")))
      assert.strictEqual(garbage._tag, "DigestError")
      const short = yield* Effect.flip(Digest.parsePublicKey("AAAA"))
      assert.strictEqual(short._tag, "DigestError")
    })
  )
})

/** `text` with the character at `index` replaced by a different one. */
const flipCharacter = (text: string, index: number): string =>
  `${text.slice(0, index)}${text[index] === "A" ? "B" : "A"}${text.slice(index + 1)}`
