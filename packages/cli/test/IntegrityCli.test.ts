import { assert, describe, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { Digest, EventStore } from "@annal/core"
import { GstAdded, OrganizationCreated, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

describe(`annal verify and annal digest (${TestDatabase.engine})`, () => {
  it("digest signs the log; verify checks it, reports a changed event with exit code 1, and checks one aggregate", async () => {
    const database = await CliDatabase.make()
    const { schema, dataDir } = database
    const target = database.flags
    const [org, user] = [uuid(), uuid()]
    const key = await Effect.runPromise(Digest.generateSigningKey)
    try {
      const appended = await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          return yield* store.append([
            OrganizationCreated.make({
              aggregateId: org,
              userId: user,
              data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }
            }),
            GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } }),
            GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "2", state: "KA" } })
          ])
        })
      )

      const signed = await run(["digest", ...target], { ANNAL_DIGEST_SIGNING_KEY: Redacted.value(key.privateKeyPem) })
      assert.strictEqual(signed.code, 0, signed.stderr)
      // The schema is this test's own and its append has committed: the digest's checkpoint is at that append's last
      // event, and covers its three events in their one stream (the fence waits only for commits in flight on this
      // table, which none are).
      const document = await Effect.runPromise(Digest.decode(signed.stdout))
      assert.deepStrictEqual(
        [document.table, document.streams, document.events, document.checkpoint.globalPosition],
        [`${schema}.events`, 1, 3, appended.at(-1)!.globalPosition.toString()]
      )
      const digestFile = join(dataDir, "digest.json")
      writeFileSync(digestFile, signed.stdout)

      const clean = await run(["verify", ...target, "--digest", digestFile, "--public-key", key.publicKey])
      assert.strictEqual(clean.code, 0, clean.stdout + clean.stderr)
      // The key from a file (a PEM key passed inline starts with dashes and reads as a flag), and no key at all:
      // the message alone, no stack trace.
      const keyFile = join(dataDir, "public.key")
      writeFileSync(keyFile, `${key.publicKey}\n`)
      const fromFile = await run(["verify", ...target, "--digest", digestFile, "--public-key-file", keyFile])
      assert.strictEqual(fromFile.code, 0, fromFile.stdout + fromFile.stderr)
      const keyless = await run(["verify", ...target, "--digest", digestFile])
      assert.strictEqual(keyless.code, 1, keyless.stdout + keyless.stderr)
      assert.include(keyless.stderr, "give --public-key or ANNAL_DIGEST_PUBLIC_KEY")
      assert.notMatch(keyless.stderr, /^\s+at /m, "no stack trace")
      assert.include(clean.stdout, "Verified")
      assert.include(clean.stdout, "OK: every link of every chain holds, and the log matches the digest.")
      // The progress display, on standard error: not a terminal here, so whole lines.
      assert.match(clean.stderr, /Verifying .*: 3 of 3 events \(100%\), 1 stream/)

      await database.use(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const events = sql(`${schema}.events`)
          yield* sql.withTransaction(
            Effect.gen(function* () {
              yield* sql`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`
              yield* sql`UPDATE ${events} SET data = '{"gstin": "9", "state": "KA"}'
                WHERE aggregate_id = ${org}::uuid AND stream_version = 2`
              yield* sql`ALTER TABLE ${events} ENABLE ALWAYS TRIGGER events_refuse_update_delete`
            })
          )
        })
      )

      const tampered = await run(["verify", ...target, "--digest", digestFile, "--public-key", key.publicKey])
      assert.strictEqual(tampered.code, 1)
      assert.include(tampered.stdout, `FOUND organization/${org} version 2: changed`)

      const aggregate = await run(["verify", ...target, "--aggregate", `organization/${org}`])
      assert.strictEqual(aggregate.code, 1)
      assert.include(aggregate.stdout, `FOUND organization/${org} version 2: changed`)

      const json = await run(["verify", ...target, "--json"])
      assert.strictEqual(json.code, 1)
      const report = JSON.parse(json.stdout)
      assert.deepStrictEqual(
        [report.ok, report.findings.length, report.findings[0].kind, report.findings[0].streamVersion],
        [false, 1, "changed", 2]
      )

      // The next digest signs the first one's hash: the digests form a chain.
      const signingEnv = { ANNAL_DIGEST_SIGNING_KEY: Redacted.value(key.privateKeyPem) }
      const second = await run(["digest", ...target], signingEnv)
      assert.strictEqual(second.code, 0, second.stderr)
      const chained = await Effect.runPromise(Digest.decode(second.stdout))
      assert.deepStrictEqual([chained.id, chained.previous], [document.id + 1, Digest.hash(document)])

      // A digest row planted by someone who cannot sign: verify names it, and digest refuses to build on it.
      const forged = { ...chained, id: chained.id + 1, events: 999 }
      await database.use(
        SqlClient.SqlClient.use(
          (sql) => sql`INSERT INTO ${sql(`${schema}.events_digests`)} (id, checkpoint_commit_sequence,
            checkpoint_global_position, root, document)
          VALUES (${forged.id}, ${forged.checkpoint.commitSequence}::bigint, ${forged.checkpoint.globalPosition}::bigint,
            decode(${forged.root}, 'hex'), ${Digest.encode(forged)})`
        )
      )
      const planted = await run(["verify", ...target, "--digest", digestFile, "--public-key", key.publicKey])
      assert.strictEqual(planted.code, 1)
      assert.include(planted.stdout, `FOUND digest digest_row_invalid: digest row #${forged.id}`)
      const refused = await run(["digest", ...target], signingEnv)
      assert.strictEqual(refused.code, 1, refused.stdout)
      assert.include(refused.stderr, `digest row #${forged.id}`)
      assert.notMatch(refused.stderr, /^\s+at /m, "no stack trace")
    } finally {
      await database.remove()
    }
  }, 120_000)
})
