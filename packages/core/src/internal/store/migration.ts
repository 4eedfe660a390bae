/**
 * Migrations 1 and 2, the events table itself: its columns, constraints and indexes, and the triggers that make it
 * append-only; and the statements every run of the migrations starts with.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import { type EventTable, qualify } from "../../EventTable.ts"

/**
 * What a run of the migrations does first, in its transaction, before the `Migrator` looks at its own table: lifts
 * the statement timeout and takes the table's migration lock, then makes sure the schema exists.
 */
export const prepare = (config: EventTable): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // A server bounds its statements (`Database.layer`'s `statementTimeout`); a migration of a big table may
    // take longer than any request, and must not fail the start for it.
    yield* sql`SET LOCAL statement_timeout = 0`
    // Serializes concurrent runs across processes, before the Migrator looks at its own table.
    yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`annal:migrate:${config.schema}.${config.table}`}))`
    yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(config.schema)}`
  })

/** Migration 1: the events table and its indexes. */
export const createEvents = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = sql(qualify(config, config.table))
    const name = (suffix: string) => sql(`${config.table}_${suffix}`)
    // docs/design.md's table, with the stream version, global position, transaction id and tracing ids added. The
    // checks repeat the application's validation so that no other writer can store a malformed row either.
    yield* sql`CREATE TABLE ${table} (
      id uuid NOT NULL,
      event_type varchar(100) NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$'),
      aggregate_id uuid NOT NULL,
      aggregate_type varchar(50) NOT NULL CHECK (aggregate_type ~ '^[a-z][a-z0-9_]*$'),
      user_id uuid NOT NULL,
      "timestamp" timestamptz NOT NULL,
      version integer NOT NULL CHECK (version > 0),
      data jsonb NOT NULL,
      metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
      stream_version integer NOT NULL CHECK (stream_version > 0),
      global_position bigint GENERATED ALWAYS AS IDENTITY,
      transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
      correlation_id text,
      causation_id text,
      recorded_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ${name("pkey")} PRIMARY KEY (id),
      CONSTRAINT ${name("stream_version_key")} UNIQUE (aggregate_type, aggregate_id, stream_version),
      CONSTRAINT ${name("global_position_key")} UNIQUE (global_position)
    )`
    // The original design's single-column indexes, each extended by global_position so that every filtered read is one
    // ordered index range that keyset pagination can resume from. Its (aggregate_id, aggregate_type,
    // timestamp) index serves entity history "as of" a time; the stream key serves the rest of entity history.
    yield* sql`CREATE INDEX ${name("event_type_idx")} ON ${table} (event_type, global_position)`
    yield* sql`CREATE INDEX ${name("aggregate_type_idx")} ON ${table} (aggregate_type, global_position)`
    yield* sql`CREATE INDEX ${name("aggregate_id_idx")} ON ${table} (aggregate_id, aggregate_type, "timestamp")`
    yield* sql`CREATE INDEX ${name("user_id_idx")} ON ${table} (user_id, global_position)`
    yield* sql`CREATE INDEX ${name("timestamp_idx")} ON ${table} ("timestamp", global_position)`
    yield* sql`CREATE INDEX ${name("transaction_idx")} ON ${table} (transaction_id, global_position)`
    yield* sql`CREATE INDEX ${name("correlation_id_idx")} ON ${table} (correlation_id) WHERE correlation_id IS NOT NULL`
    yield* sql`CREATE INDEX ${name("causation_id_idx")} ON ${table} (causation_id) WHERE causation_id IS NOT NULL`
  })

/** Migration 2: triggers that refuse every UPDATE, DELETE and TRUNCATE of the events table. */
export const appendOnly = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = sql(qualify(config, config.table))
    const refuse = sql(qualify(config, `${config.table}_refuse_change`))
    yield* sql`CREATE FUNCTION ${refuse}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% on %.% is refused: the event log is append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
          USING ERRCODE = 'restrict_violation',
                HINT = 'Events are never changed or removed; record a new event that corrects the old one.';
      END
    $$`
    yield* refuseChanges(config, table, "")
  })

/**
 * Makes `relation` append-only with the events table's `refuse_change` function: triggers named
 * `<table>_<prefix>refuse_update_delete` and `<table>_<prefix>refuse_truncate`. Statement-level, so an UPDATE or
 * DELETE that matches no row is refused too; ENABLE ALWAYS, so the triggers fire even under
 * session_replication_role = replica, which disables ordinary triggers.
 */
export const refuseChanges = (config: EventTable, relation: Statement.Identifier, prefix: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const refuse = sql(qualify(config, `${config.table}_refuse_change`))
    const updateDelete = sql(`${config.table}_${prefix}refuse_update_delete`)
    const truncate = sql(`${config.table}_${prefix}refuse_truncate`)
    yield* sql`CREATE TRIGGER ${updateDelete} BEFORE UPDATE OR DELETE ON ${relation}
      FOR EACH STATEMENT EXECUTE FUNCTION ${refuse}()`
    yield* sql`CREATE TRIGGER ${truncate} BEFORE TRUNCATE ON ${relation} FOR EACH STATEMENT EXECUTE FUNCTION ${refuse}()`
    yield* sql`ALTER TABLE ${relation} ENABLE ALWAYS TRIGGER ${updateDelete}`
    yield* sql`ALTER TABLE ${relation} ENABLE ALWAYS TRIGGER ${truncate}`
  })
