/**
 * The setup of docs/hardening.md, run as written, with three roles beside the owner: the application appends and
 * reads, the digest signer makes digests, the auditor verifies. Every write a role must not make is tried, and
 * refused; the application cannot write a digest, nor the signer an event, and none of them can change, remove, or
 * get past the triggers. The same changes made as the table's owner succeed, which is what the setup is for.
 */
import { assert, layer } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Digest from "../src/Digest.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Integrity from "../src/Integrity.ts"
import { describe as describeSqlError } from "../src/internal/sqlErrors.ts"
import { rolledBack } from "./support/Chains.ts"
import { GstAdded, OrganizationCreated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const suffix = schema.slice("annal_test_".length)
/**
 * Roles belong to the whole server, not to the run's database: named after the run (`ANNAL_TEST_RUN`), so that the
 * next run's global setup drops them if this one is killed before its finalizer runs.
 */
const run = process.env["ANNAL_TEST_RUN"] ?? "annal_test"
const roles = {
  app: `${run}_app_${suffix}`,
  signer: `${run}_signer_${suffix}`,
  auditor: `${run}_auditor_${suffix}`,
  owner: `${run}_owner_${suffix}`
}

/**
 * The statements of `packages/core/sql/hardening.sql`, with psql's variables filled in as psql fills them (a quoted
 * literal for `:'name'`): a `SELECT` that records them, then one `DO` block.
 */
const hardeningStatements = (): ReadonlyArray<string> => {
  const text = readFileSync(join(import.meta.dirname, "../sql/hardening.sql"), "utf8")
  const filled = text
    .replaceAll(":'schema'", `'${schema}'`)
    .replaceAll(":'table'", "'events'")
    .replaceAll(":'app_role'", `'${roles.app}'`)
    .replaceAll(":'signer_role'", `'${roles.signer}'`)
    .replaceAll(":'auditor_role'", `'${roles.auditor}'`)
  const body = filled
    .split("\n")
    .filter((line) => !line.startsWith("--"))
    .join("\n")
  const block = body.indexOf("DO $hardening$")
  if (block < 0) throw new Error("hardening.sql has no DO $hardening$ block")
  return [body.slice(0, block), body.slice(block)]
    .map((statement) => statement.trim().replace(/;$/, ""))
    .filter((statement) => statement.length > 0)
}

/** Sets up the roles as the doc says, and drops them when the file's tests are done. */
const Roles = Layer.effectDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    for (const role of Object.values(roles)) yield* sql.unsafe(`CREATE ROLE "${role}" NOLOGIN`)
    for (const statement of hardeningStatements()) yield* sql.unsafe(statement)
    yield* Effect.addFinalizer(() =>
      Effect.forEach(Object.values(roles), (role) =>
        Effect.andThen(sql.unsafe(`DROP OWNED BY "${role}"`), sql.unsafe(`DROP ROLE "${role}"`)).pipe(Effect.ignore)
      )
    )
  })
)

const signingKey = Layer.effect(
  Digest.SigningKey,
  Effect.flatMap(Digest.generateSigningKey, (key) => Digest.parseSigningKey(key.privateKeyPem))
)

const TestLayer = Layer.mergeAll(Integrity.layer({ schema }), Digest.layer({ schema }), Roles).pipe(
  Layer.provideMerge(signingKey),
  Layer.provideMerge(TestDatabase.layerWith(schema))
)

class Rollback extends Data.TaggedError("Rollback") {}

/** Runs `body` as `role` in a transaction that is rolled back, and returns its exit's failure or success. */
const as = <A, E, R>(role: string, body: Effect.Effect<A, E, R>) =>
  rolledBack(
    SqlClient.SqlClient.use((sql) => sql.unsafe(`SET LOCAL ROLE "${role}"`)),
    body
  )

/** Runs `body` as `role` in a transaction that commits. */
const asCommitted = <A, E, R>(role: string, body: Effect.Effect<A, E, R>) =>
  SqlClient.SqlClient.use((sql) => sql.withTransaction(Effect.andThen(sql.unsafe(`SET LOCAL ROLE "${role}"`), body)))

/**
 * Every write of the log's tables: INSERT, UPDATE, DELETE and TRUNCATE on the events, commits, digests and digest
 * heads tables, and an event placed with OVERRIDING SYSTEM VALUE, each with the roles allowed to make it.
 */
const writes = (sql: SqlClient.SqlClient, aggregateId: string) => {
  const table = (suffix: string) => sql(`${schema}.events${suffix}`)
  const inserts = {
    "": sql`INSERT INTO ${table("")} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
      stream_version) VALUES (gen_random_uuid(), 'organization.created', ${aggregateId}::uuid, 'organization',
      gen_random_uuid(), now(), 1, '{}', 99)`,
    _commits: sql`INSERT INTO ${table("_commits")} (commit_sequence, transaction_id) VALUES (9000000000, '1')`,
    _digests: sql`INSERT INTO ${table("_digests")} (id, checkpoint_commit_sequence, checkpoint_global_position, root,
      document) VALUES (999999, 9000000000, 9000000000, decode(repeat('ab', 32), 'hex'), '{}')`,
    _digest_heads: sql`INSERT INTO ${table("_digest_heads")} (digest_id, aggregate_type, aggregate_id, stream_version,
      hash) VALUES (999999, 'organization', ${aggregateId}::uuid, 999, decode(repeat('ab', 32), 'hex'))`
  } as const
  const allowed: Record<keyof typeof inserts, ReadonlyArray<string>> = {
    "": [roles.app],
    _commits: [],
    _digests: [roles.signer],
    _digest_heads: [roles.signer]
  }
  const out: Array<readonly [name: string, allowedTo: ReadonlyArray<string>, write: Effect.Effect<unknown, SqlError>]> =
    []
  for (const suffix of Object.keys(inserts) as Array<keyof typeof inserts>) {
    const name = `events${suffix}`
    out.push([`INSERT ${name}`, allowed[suffix], inserts[suffix]])
    out.push([
      `UPDATE ${name}`,
      [],
      sql`UPDATE ${table(suffix)} SET ${sql(updatable[suffix])} = ${sql(updatable[suffix])}`
    ])
    out.push([`DELETE ${name}`, [], sql`DELETE FROM ${table(suffix)}`])
    out.push([`TRUNCATE ${name}`, [], sql`TRUNCATE ${table(suffix)}`])
  }
  out.push([
    "INSERT events OVERRIDING SYSTEM VALUE",
    [],
    sql`INSERT INTO ${table("")} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
      stream_version, global_position) OVERRIDING SYSTEM VALUE VALUES (gen_random_uuid(), 'organization.created',
      ${aggregateId}::uuid, 'organization', gen_random_uuid(), now(), 1, '{}', 99, 9000000000000)`
  ])
  return out
}

/** A column of each table that an UPDATE can name. */
const updatable = { "": "data", _commits: "commit_sequence", _digests: "document", _digest_heads: "hash" } as const

const created = (aggregateId: string, userId: string) =>
  OrganizationCreated.make({
    aggregateId,
    userId,
    data: { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }
  })

/** What the application could try, to change history. */
const attacks = (sql: SqlClient.SqlClient, aggregateId: string) => {
  const events = sql(`${schema}.events`)
  return [
    ["UPDATE", sql`UPDATE ${events} SET data = '{}' WHERE aggregate_id = ${aggregateId}::uuid`],
    ["DELETE", sql`DELETE FROM ${events} WHERE aggregate_id = ${aggregateId}::uuid`],
    ["TRUNCATE", sql`TRUNCATE ${events}`],
    ["DISABLE TRIGGER", sql`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`],
    ["DROP TRIGGER", sql`DROP TRIGGER events_refuse_update_delete ON ${events}`],
    [
      "replace the chain",
      sql`CREATE OR REPLACE FUNCTION ${sql(`${schema}.events_chain_step`)}(state bytea, link bytea, seed boolean)
        RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT link $$`
    ],
    ["session_replication_role", sql`SET LOCAL session_replication_role = replica`],
    // The columns that place an event in the log are the database's to fill in.
    [
      "choose a global position",
      sql`INSERT INTO ${events} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
        stream_version, global_position) OVERRIDING SYSTEM VALUE VALUES (gen_random_uuid(), 'organization.created',
        ${aggregateId}::uuid, 'organization', gen_random_uuid(), now(), 1, '{}', 99, 9000000000000)`
    ],
    [
      "choose a transaction id",
      sql`INSERT INTO ${events} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
        stream_version, transaction_id) VALUES (gen_random_uuid(), 'organization.created', ${aggregateId}::uuid,
        'organization', gen_random_uuid(), now(), 1, '{}', 99, '4611686018427387904')`
    ],
    [
      "choose recorded_at",
      sql`INSERT INTO ${events} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
        stream_version, recorded_at) VALUES (gen_random_uuid(), 'organization.created', ${aggregateId}::uuid,
        'organization', gen_random_uuid(), now(), 1, '{}', 99, '2000-01-01')`
    ],
    [
      "choose a commit sequence",
      sql`INSERT INTO ${sql(`${schema}.events_commits`)} (commit_sequence, transaction_id) VALUES (9000000000, '1')`
    ],
    ["take a commit sequence", sql`SELECT nextval(${`${schema}.events_commit_sequence`}::regclass)`],
    ["move the commit sequence", sql`SELECT setval(${`${schema}.events_commit_sequence`}::regclass, 1)`],
    [
      "UPDATE a commit",
      sql`UPDATE ${sql(`${schema}.events_commits`)} SET commit_sequence = commit_sequence + 1000000000`
    ],
    ["DELETE a commit", sql`DELETE FROM ${sql(`${schema}.events_commits`)}`],
    ["mark a commit pending", sql`INSERT INTO ${sql(`${schema}.events_pending_commits`)} VALUES ('1')`],
    ["UPDATE a digest", sql`UPDATE ${sql(`${schema}.events_digests`)} SET document = ''`],
    ["DELETE digest heads", sql`DELETE FROM ${sql(`${schema}.events_digest_heads`)}`]
  ] as const
}

layer(TestLayer, { timeout: 120_000 })(`hardening (${TestDatabase.engine})`, (it) => {
  it.effect("the application appends, the signer makes a digest over it, and the auditor verifies it", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const integrity = yield* Integrity.Integrity
      const key = yield* Digest.SigningKey
      const [org, user] = [uuid(), uuid()]
      yield* asCommitted(
        roles.app,
        Effect.gen(function* () {
          yield* store.append([created(org, user)])
          yield* store.append([GstAdded.make({ aggregateId: org, userId: user, data: { gstin: "1", state: "KA" } })], {
            expectedVersion: 1
          })
        })
      )
      const document = yield* asCommitted(roles.signer, digest.create())
      assert.isAtLeast(document.events, 2)
      const report = yield* as(roles.auditor, integrity.verify({ digest: { document, publicKey: key.publicKey } }))
      assert.isTrue(report.ok, JSON.stringify(report))
      // The application reads the digests, and verifies against them, too.
      const asApp = yield* as(roles.app, integrity.verify({ digest: { document, publicKey: key.publicKey } }))
      assert.isTrue(asApp.ok, JSON.stringify(asApp))
    })
  )

  it.effect("the application cannot make a digest, and the signer cannot append", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const digest = yield* Digest.Digest
      const byApp = yield* as(roles.app, Effect.flip(digest.create()))
      assert.strictEqual(byApp._tag, "StorageError")
      assert.match(byApp.message, /permission denied/)
      const bySigner = yield* as(roles.signer, Effect.flip(store.append([created(uuid(), uuid())])))
      assert.strictEqual(bySigner._tag, "StorageError")
    })
  )

  it.effect("every write a role must not make is refused, for each of the three roles", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const org = uuid()
      yield* store.append([created(org, uuid())])
      yield* Digest.Digest.use((digest) => digest.create())
      const tried: Array<string> = []
      for (const role of [roles.app, roles.signer, roles.auditor]) {
        for (const [name, allowedTo, write] of writes(sql, org)) {
          if (allowedTo.includes(role)) continue
          const refused = yield* as(role, Effect.flip(write))
          assert.match(describeSqlError(refused), /permission denied|must be owner|append-only/, `${role}: ${name}`)
          tried.push(`${role === roles.app ? "app" : role === roles.signer ? "signer" : "auditor"}: ${name}`)
        }
      }
      // 17 writes each, less the ones a role is there to make: the app's event, the signer's digest and heads.
      assert.strictEqual(tried.length, 17 * 3 - 3)
      // The allowed writes are allowed: each role makes its own (rolled back).
      for (const [name, allowedTo, write] of writes(sql, org)) {
        for (const role of allowedTo)
          yield* as(role, Effect.asVoid(write)).pipe(Effect.orElseSucceed(() => assert.fail(`${role}: ${name}`)))
      }
    })
  )

  it.effect("the auditor's role verifies, and cannot append", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const integrity = yield* Integrity.Integrity
      const report = yield* as(roles.auditor, integrity.verify())
      assert.isTrue(report.ok)
      const refused = yield* as(roles.auditor, Effect.flip(store.append([created(uuid(), uuid())])))
      assert.strictEqual(refused._tag, "StorageError")
    })
  )

  it.effect("the application's role can do none of the things that change history; the owner can do them all", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const org = uuid()
      yield* store.append([created(org, uuid())])
      yield* Digest.Digest.use((digest) => digest.create())
      for (const [name, attack] of attacks(sql, org)) {
        const refused = yield* as(roles.app, Effect.flip(attack))
        assert.match(describeSqlError(refused), /permission denied|must be owner|append-only/, name)
      }
      // The same, as the owner the application must not be: each succeeds, which is why the setup exists. The
      // UPDATE and DELETE get past the trigger once the owner has switched it off.
      const owned = [
        `${schema}.events`,
        `${schema}.events_digests`,
        `${schema}.events_digest_heads`,
        `${schema}.events_commits`,
        `${schema}.events_pending_commits`,
        `${schema}.events_commit_sequence`
      ]
      const succeeded = yield* SqlClient.SqlClient.use((client) => {
        const outcomes: Array<string> = []
        return client
          .withTransaction(
            Effect.gen(function* () {
              yield* client.unsafe(`ALTER SCHEMA "${schema}" OWNER TO "${roles.owner}"`)
              for (const relation of owned) yield* client.unsafe(`ALTER TABLE ${relation} OWNER TO "${roles.owner}"`)
              yield* client.unsafe(
                `ALTER FUNCTION "${schema}".events_chain_step(bytea, bytea, boolean) OWNER TO "${roles.owner}"`
              )
              yield* client.unsafe(`SET LOCAL ROLE "${roles.owner}"`)
              for (const [name, attack] of attacks(client, org)) {
                if (name === "session_replication_role") continue
                const events = client(`${schema}.events`)
                if (name === "UPDATE" || name === "DELETE") {
                  yield* client`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_update_delete`
                }
                if (name === "UPDATE a digest") {
                  yield* client`ALTER TABLE ${client(`${schema}.events_digests`)} DISABLE TRIGGER events_digests_refuse_update_delete`
                }
                if (name === "DELETE digest heads") {
                  yield* client`ALTER TABLE ${client(`${schema}.events_digest_heads`)} DISABLE TRIGGER events_digest_heads_refuse_update_delete`
                }
                if (name === "TRUNCATE") yield* client`ALTER TABLE ${events} DISABLE TRIGGER events_refuse_truncate`
                if (name === "UPDATE a commit" || name === "DELETE a commit") {
                  yield* client`ALTER TABLE ${client(`${schema}.events_commits`)} DISABLE TRIGGER events_commits_refuse_update_delete`
                }
                yield* client`SAVEPOINT attack`
                const exit = yield* Effect.exit(attack)
                yield* client`ROLLBACK TO SAVEPOINT attack`
                if (exit._tag === "Success") outcomes.push(name)
              }
              return yield* new Rollback()
            })
          )
          .pipe(
            Effect.catchIf(
              (error) => error instanceof Rollback,
              () => Effect.succeed(outcomes)
            )
          )
      })
      assert.deepStrictEqual(succeeded, [
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "DISABLE TRIGGER",
        "DROP TRIGGER",
        "replace the chain",
        "choose a global position",
        "choose a transaction id",
        "choose recorded_at",
        "choose a commit sequence",
        "take a commit sequence",
        "move the commit sequence",
        "UPDATE a commit",
        "DELETE a commit",
        "mark a commit pending",
        "UPDATE a digest",
        "DELETE digest heads"
      ])
    })
  )
})
