/**
 * Migrations 3 and 5: what the feed needs beside the events table. The table of named consumers with their
 * checkpoints and leases; and, from migration 3 until migration 5 removed it, a trigger that woke feed readers with a
 * `NOTIFY` in the writing transaction. The store now notifies after the commit instead (see `notifier.ts`).
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"

/**
 * The `LISTEN`/`NOTIFY` channel of one events table. Channel names are limited to 63 bytes, so a long schema and
 * table name is cut: two tables that share the cut name only wake each other's readers for nothing, as the
 * notification is a hint and never the data.
 */
export const channelOf = (config: EventTable): string => `annal.${config.schema}.${config.table}`.slice(0, 63)

/** The table of named consumers that lives beside the events table. */
export const consumersTable = (config: EventTable): string => qualify(config, `${config.table}_consumers`)

/** Creates the notify trigger (removed by migration 5) and the consumers table. */
export const feedMigration = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = sql(qualify(config, config.table))
    const notify = sql(qualify(config, `${config.table}_notify_feed`))
    const name = (suffix: string) => sql(`${config.table}_${suffix}`)
    // The channel is computed from the trigger's own table, the same way `channelOf` computes it. The payload is the
    // writer's transaction id, for logs; readers never trust it.
    yield* sql`CREATE FUNCTION ${notify}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify(left('annal.' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 63), pg_current_xact_id()::text);
        RETURN NULL;
      END
    $$`
    // Per statement, not per row: one notification per inserting statement, and PostgreSQL folds the identical ones
    // of a transaction into one, delivered at COMMIT and dropped on ROLLBACK. ENABLE ALWAYS, as for the append-only
    // triggers, so that rows applied by logical replication wake the subscriber's readers too.
    yield* sql`CREATE TRIGGER ${name("notify_feed")} AFTER INSERT ON ${table}
      FOR EACH STATEMENT EXECUTE FUNCTION ${notify}()`
    yield* sql`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${name("notify_feed")}`
    // One row per consumer name. The checkpoint is the feed position of the last event the consumer committed:
    // (0, 0) before the first. owner and lease_expires_at are the lease: a holder renews it while it runs, and anyone
    // may take it once it has expired; every checkpoint write checks the owner, which fences out a holder that lost
    // it. Lease times come from the database clock, the one clock every process shares.
    yield* sql`CREATE TABLE ${sql(consumersTable(config))} (
      name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
      checkpoint_transaction_id xid8 NOT NULL DEFAULT '0',
      checkpoint_global_position bigint NOT NULL DEFAULT 0,
      owner text,
      lease_expires_at timestamptz,
      checkpoint_updated_at timestamptz NOT NULL DEFAULT now(),
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT ${name("consumers_pkey")} PRIMARY KEY (name)
    )`
  })

/**
 * Migration 5: drops the notify trigger. A transaction that has sent a `NOTIFY` takes a lock on the whole server at
 * commit and holds it through its WAL flush, so that notifications are queued in commit order: every transaction that
 * appended an event committed one after another. Measured with pgbench on this project's machine, 16 clients
 * inserting one row per transaction: 12,000 to 25,000 commits/s without the trigger, 3,600 to 5,700 with it, and
 * 12,000 to 15,600 with the `NOTIFY` sent after the commit, in a transaction of its own that writes no WAL to wait
 * for. The store now does that, coalesced (`notifier.ts`); readers poll as before for rows written by others.
 */
export const dropNotifyTrigger = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP TRIGGER IF EXISTS ${sql(`${config.table}_notify_feed`)} ON ${sql(qualify(config, config.table))}`
    yield* sql`DROP FUNCTION IF EXISTS ${sql(qualify(config, `${config.table}_notify_feed`))}()`
  })
