/**
 * Migration 4, tamper evidence: the `hash` column and the aggregate that chains it in the append statement, the
 * digests tables, and the hashes of the rows written before this migration.
 *
 * The backfill has to UPDATE a table whose triggers refuse every UPDATE, even under
 * `session_replication_role = replica`. It disables the one trigger inside the migration's transaction and enables
 * it ALWAYS again before the transaction ends; `ALTER TABLE ... ADD COLUMN`, the first statement, already holds the
 * table's ACCESS EXCLUSIVE lock until then, so no other session can write, or read, a row while the trigger is off,
 * and a failure anywhere rolls the whole migration back with the trigger as it was.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import { type EventTable, qualify } from "../../EventTable.ts"
import { refuseChanges } from "../store/migration.ts"
import { genesis, scheme } from "./chain.ts"
import { makeReadPage, type Position, positionOf } from "./read.ts"

/** How many rows the backfill hashes per statement. */
const backfillBatch = 1000

/** The migration for one events table. */
export const integrity = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = sql(qualify(config, config.table))
    const name = (suffix: string) => sql(`${config.table}_${suffix}`)
    const qualified = (suffix: string) => sql(qualify(config, `${config.table}_${suffix}`))

    // Nullable: a row that no append of Annal wrote has no hash, and the verifier reports it as inserted.
    yield* sql`ALTER TABLE ${table} ADD COLUMN hash bytea CHECK (hash IS NULL OR octet_length(hash) = 32)`

    // The chain as an aggregate, used as a running window over each stream's new events in the append statement:
    // the first input (seed) is the head's hash, each later one is hashed onto the state. Operators and functions
    // are qualified so that nothing on a caller's search_path can stand in for them.
    yield* sql`CREATE FUNCTION ${qualified("chain_step")}(state bytea, link bytea, seed boolean) RETURNS bytea
      LANGUAGE sql IMMUTABLE PARALLEL SAFE
      AS $$ SELECT CASE WHEN seed THEN link ELSE pg_catalog.sha256(state OPERATOR(pg_catalog.||) link) END $$`
    yield* sql`CREATE AGGREGATE ${qualified("chain")}(bytea, boolean) (SFUNC = ${qualified("chain_step")}, STYPE = bytea)`

    // One row per signed digest, with the document exactly as exported.
    yield* sql`CREATE TABLE ${qualified("digests")} (
      id bigint PRIMARY KEY CHECK (id > 0),
      checkpoint_transaction_id xid8 NOT NULL,
      checkpoint_global_position bigint NOT NULL,
      root bytea NOT NULL CHECK (octet_length(root) = 32),
      document text NOT NULL,
      recorded_at timestamptz NOT NULL DEFAULT now()
    )`
    // The stream heads each digest signed, stored only for the streams whose head moved since the previous digest:
    // the heads as of digest d are each stream's row with the largest digest_id <= d. The verifier uses them to
    // name the stream a mismatch is in; the signed root authenticates them.
    yield* sql`CREATE TABLE ${qualified("digest_heads")} (
      digest_id bigint NOT NULL,
      aggregate_type varchar(50) COLLATE "C" NOT NULL,
      aggregate_id uuid NOT NULL,
      stream_version integer NOT NULL CHECK (stream_version > 0),
      hash bytea,
      PRIMARY KEY (aggregate_type, aggregate_id, digest_id)
    )`
    for (const suffix of ["digests", "digest_heads"]) yield* refuseChanges(config, qualified(suffix), `${suffix}_`)

    yield* sql`ALTER TABLE ${table} DISABLE TRIGGER ${name("refuse_update_delete")}`
    yield* backfill(sql, table)
    yield* sql`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${name("refuse_update_delete")}`
  })

/** Chains every existing row, stream by stream, with the same code the verifier checks them with. */
const backfill = (sql: SqlClient.SqlClient, table: Statement.Identifier) =>
  Effect.gen(function* () {
    const readPage = makeReadPage(sql, table)
    let after: Position | undefined
    let stream = ""
    let previous = genesis
    while (true) {
      const rows = yield* readPage(after, backfillBatch, sql`false`)
      if (rows.length === 0) return
      const hashes: Array<{ readonly id: string; readonly hash: string }> = []
      for (const { event } of rows) {
        const key = `${event.aggregateType}/${event.aggregateId}`
        if (key !== stream) {
          stream = key
          previous = genesis
        }
        previous = scheme.link(previous, scheme.canonical(event))
        hashes.push({ id: event.eventId, hash: previous })
      }
      yield* sql`UPDATE ${table} t SET hash = decode(v.hash, 'hex')
        FROM jsonb_to_recordset(${JSON.stringify(hashes)}::jsonb) AS v(id uuid, hash text) WHERE t.id = v.id`
      after = positionOf(rows.at(-1)!.event)
    }
  })

/**
 * Migration 7, digests as a chain: each digest stores the hash of the previous one (`previous_hash`, which its
 * document signs), and the heads are indexed by digest, which the check for planted head rows ranges over. Adding a
 * column neither updates a row nor touches the triggers: the tables stay append-only. Digests made before it keep a
 * null link; they are of format v2, which signed none.
 */
export const digestChain = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const name = (suffix: string) => sql(`${config.table}_${suffix}`)
    const qualified = (suffix: string) => sql(qualify(config, `${config.table}_${suffix}`))
    yield* sql`ALTER TABLE ${qualified("digests")}
      ADD COLUMN previous_hash bytea CHECK (previous_hash IS NULL OR octet_length(previous_hash) = 32)`
    yield* sql`CREATE INDEX ${name("digest_heads_digest_idx")} ON ${qualified("digest_heads")} (digest_id)`
  })
