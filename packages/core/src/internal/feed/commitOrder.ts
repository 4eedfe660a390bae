/**
 * Migration 6, the log's commit order: a sequence number taken by each appending transaction at its commit, and the
 * statement-level machinery that takes it. The feed reads transactions in this order (see `docs/ordering.md` for the
 * options weighed and the measurements behind this one).
 *
 * How it works:
 * - Every INSERT statement on the events table, whoever writes it, runs one statement-level trigger that records
 *   the transaction in `<table>_pending_commits` (once per transaction: `ON CONFLICT DO NOTHING`). That table is
 *   unlogged: its rows live for one transaction and are never needed after a crash, which aborts the transaction.
 * - The pending row carries a deferred constraint trigger, so it fires once per transaction, at COMMIT, after the
 *   application's own statements. It takes the commit lock in shared mode, then `nextval` of the commit sequence,
 *   and records `(commit sequence, transaction id)` in `<table>_commits`. The shared lock is held until the
 *   transaction has ended, and PostgreSQL releases locks only after a commit is visible.
 * - A reader (`<table>_fence`) reads the sequence's last value `S`. If every commit up to `S` is visible there is
 *   nothing to wait for. Otherwise it takes and releases the same lock exclusively, which waits only for the
 *   transactions that took a number and have not finished committing; after that, every number up to `S` is visible
 *   or was rolled back for good. Idle and running transactions hold no lock, so they hold no reader back.
 *
 * Commit order is then consistent with what transactions could see: a transaction that saw another's events (its
 * stream's previous version, say) took its number after that one had committed. Within a transaction the events keep
 * their global positions, the order they were appended in.
 */
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import { refuseChanges } from "../store/migration.ts"
import { consumersTable } from "./migration.ts"

/** The first key of the commit lock, `'anna'` in ASCII; the second is `tableKey`. */
export const commitLockClass = 0x616e6e61

/**
 * A 32-bit key for one events table (FNV-1a of `schema.table`, signed), so that two tables in one database take
 * different commit locks.
 */
export const tableKey = (config: EventTable): number => {
  let hash = 0x811c9dc5
  for (const char of `${config.schema}.${config.table}`) {
    hash ^= char.charCodeAt(0)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash | 0
}

/** The names of the commit order's objects for one events table. */
export const commitObjects = (config: EventTable) => ({
  sequence: qualify(config, `${config.table}_commit_sequence`),
  commits: qualify(config, `${config.table}_commits`),
  pending: qualify(config, `${config.table}_pending_commits`),
  fence: qualify(config, `${config.table}_fence`),
  legacyCheckpoint: qualify(config, `${config.table}_legacy_checkpoint`)
})

/**
 * How many numbers above the known fence the fence function checks one by one before it waits instead: a reader far
 * behind (a new process) waits once, for at most the commits in flight, rather than reading that many rows.
 */
export const fenceWindow = 10_000

/** Creates the commit order and numbers the transactions already in the log. */
export const commitOrderMigration = (config: EventTable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = sql(qualify(config, config.table))
    const objects = commitObjects(config)
    const sequence = sql(objects.sequence)
    const commits = sql(objects.commits)
    const pending = sql(objects.pending)
    const name = (suffix: string) => sql(`${config.table}_${suffix}`)
    const qualified = (suffix: string) => sql(qualify(config, `${config.table}_${suffix}`))
    // Names are validated identifiers (Migrations.validateIdentifier), so they can be written as literals into the
    // functions' bodies, where no parameter can go.
    const sequenceLiteral = sql.literal(`'${objects.sequence}'`)
    const lockKey = sql.literal(`${commitLockClass}, ${tableKey(config)}`)

    // No writer may insert while the existing transactions are numbered, and none may still be in flight: this waits
    // for the transactions that have written events and blocks new ones until the migration commits.
    yield* sql`LOCK TABLE ${table} IN SHARE ROW EXCLUSIVE MODE`

    // CACHE 1 (the default) hands numbers out in increasing order across sessions, which the fence relies on.
    yield* sql`CREATE SEQUENCE ${sequence} AS bigint MINVALUE 1 NO CYCLE CACHE 1`
    yield* sql`CREATE TABLE ${commits} (
      commit_sequence bigint NOT NULL,
      transaction_id xid8 NOT NULL,
      committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      CONSTRAINT ${name("commits_pkey")} PRIMARY KEY (commit_sequence),
      CONSTRAINT ${name("commits_transaction_key")} UNIQUE (transaction_id)
    )`
    yield* sql`CREATE UNLOGGED TABLE ${pending} (
      transaction_id xid8 NOT NULL,
      CONSTRAINT ${name("pending_commits_pkey")} PRIMARY KEY (transaction_id)
    )`

    // SECURITY DEFINER with a fixed search_path: the application's role writes neither table, and nothing on its
    // search_path can stand in for what these functions call.
    yield* sql`CREATE FUNCTION ${qualified("mark_commit")}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp AS $$
      BEGIN
        INSERT INTO ${pending} (transaction_id) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
        RETURN NULL;
      END
    $$`
    yield* sql`CREATE FUNCTION ${qualified("take_commit")}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
      SET search_path = pg_catalog, pg_temp AS $$
      BEGIN
        -- Deferred, this fires at COMMIT with no trigger around it. Fired any earlier (SET CONSTRAINTS ... IMMEDIATE
        -- before an append), it runs inside the marking trigger, and the transaction would take its place in the log
        -- before it has finished writing.
        IF pg_trigger_depth() > 1 THEN
          RAISE EXCEPTION 'Annal takes a transaction''s place in the log at its commit; its commit trigger on % was made immediate', TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Do not SET CONSTRAINTS ALL IMMEDIATE in a transaction that appends events after it; name your own constraints instead.';
        END IF;
        PERFORM pg_advisory_xact_lock_shared(${lockKey});
        INSERT INTO ${commits} (commit_sequence, transaction_id)
          VALUES (nextval(${sequenceLiteral}::regclass), NEW.transaction_id)
          ON CONFLICT (transaction_id) DO NOTHING;
        IF NOT FOUND THEN
          RAISE EXCEPTION 'events were appended to the log after this transaction took its place in it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A SET CONSTRAINTS ... IMMEDIATE, or a deferred trigger, appended events after the commit order was taken.';
        END IF;
        DELETE FROM ${pending} WHERE transaction_id = NEW.transaction_id;
        RETURN NULL;
      END
    $$`
    // ENABLE ALWAYS, like the append-only triggers: rows applied under session_replication_role = replica (logical
    // replication, restores) take their place in the log too.
    yield* sql`CREATE TRIGGER ${name("mark_commit")} AFTER INSERT ON ${table}
      FOR EACH STATEMENT EXECUTE FUNCTION ${qualified("mark_commit")}()`
    yield* sql`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${name("mark_commit")}`
    yield* sql`CREATE CONSTRAINT TRIGGER ${name("take_commit")} AFTER INSERT ON ${pending}
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${qualified("take_commit")}()`
    yield* sql`ALTER TABLE ${pending} ENABLE ALWAYS TRIGGER ${name("take_commit")}`

    // The commits are part of the record: refused like the events' own changes.
    yield* refuseChanges(config, commits, "commits_")

    // The reader's fence: the largest commit sequence at or below which every transaction is visible or gone, and
    // whether it covers every number taken at the call. With `complete`, it covers everything that committed before
    // the call, waiting for commits in flight; without, it returns what is readable without waiting when that is more
    // than `known`, and waits only when nothing is. The wait takes and releases the lock at session level inside a
    // block that releases it on any error, so that neither a transaction around the call nor a cancelled statement
    // can keep it.
    yield* sql`CREATE FUNCTION ${qualified("fence")}(known bigint, want_complete boolean,
      OUT fence bigint, OUT complete boolean)
      LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
      DECLARE
        last bigint;
        readable bigint;
      BEGIN
        SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END INTO last FROM ${sequence} s;
        IF last <= known THEN
          fence := known;
          complete := true;
          RETURN;
        END IF;
        IF last - known <= ${sql.literal(String(fenceWindow))} THEN
          -- The run of consecutive visible numbers after known.
          SELECT known + count(*) INTO readable FROM (
            SELECT c.commit_sequence, row_number() OVER (ORDER BY c.commit_sequence) AS n FROM ${commits} c
            WHERE c.commit_sequence > known AND c.commit_sequence <= last
          ) r WHERE r.commit_sequence = known + r.n;
          IF readable = last OR (readable > known AND NOT want_complete) THEN
            fence := readable;
            complete := readable = last;
            RETURN;
          END IF;
        END IF;
        BEGIN
          PERFORM pg_advisory_lock(${lockKey});
          PERFORM pg_advisory_unlock(${lockKey});
        EXCEPTION WHEN OTHERS OR query_canceled THEN
          IF EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
              AND l.classid = ${sql.literal(String(commitLockClass))}::oid
              AND l.objid = ${sql.literal(String(tableKey(config) >>> 0))}::oid AND l.objsubid = 2 AND l.granted) THEN
            PERFORM pg_advisory_unlock(${lockKey});
          END IF;
          RAISE;
        END;
        fence := last;
        complete := true;
      END
    $$`

    // The transactions already in the log, numbered in the order the feed read them until now: by transaction id.
    // Their commit time is not known; the latest recorded_at of each stands in for it.
    yield* sql`INSERT INTO ${commits} (commit_sequence, transaction_id, committed_at)
      SELECT row_number() OVER (ORDER BY t.transaction_id), t.transaction_id, t.recorded_at
      FROM (SELECT transaction_id, max(recorded_at) AS recorded_at FROM ${table} GROUP BY transaction_id) t`
    const [numbered] = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM ${commits}`.withoutTransform
    const migrated = numbered?.n ?? "0"
    if (migrated !== "0") yield* sql`SELECT setval(${sequenceLiteral}::regclass, ${migrated}::bigint)`

    // Checkpoints of the first format, (transaction id, global position), in the new order: the same transaction's
    // number with the same position; or, for a checkpoint between transactions, all of the last transaction before
    // it among those numbered here, which is where the old order put it.
    yield* sql`CREATE FUNCTION ${qualified("legacy_checkpoint")}(tx xid8, pos bigint,
      OUT commit_sequence bigint, OUT global_position bigint)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
      SELECT COALESCE(e.commit_sequence, b.commit_sequence, 0),
        CASE WHEN e.commit_sequence IS NOT NULL THEN pos
             WHEN b.commit_sequence IS NOT NULL THEN 9223372036854775807 ELSE 0 END
      FROM (SELECT 1) one
      LEFT JOIN ${commits} e ON e.transaction_id = tx
      LEFT JOIN LATERAL (
        SELECT m.commit_sequence FROM ${commits} m
        WHERE m.transaction_id < tx AND m.commit_sequence <= ${sql.literal(migrated)}
        ORDER BY m.commit_sequence DESC LIMIT 1) b ON true
    $$`

    // The stored checkpoints move to the new order.
    const legacy = qualified("legacy_checkpoint")
    const consumers = sql(consumersTable(config))
    yield* sql`ALTER TABLE ${consumers} ADD COLUMN checkpoint_commit_sequence bigint NOT NULL DEFAULT 0`
    yield* sql`UPDATE ${consumers} c SET (checkpoint_commit_sequence, checkpoint_global_position) = (
      SELECT l.commit_sequence, l.global_position
      FROM ${legacy}(c.checkpoint_transaction_id, c.checkpoint_global_position) l)`
    yield* sql`ALTER TABLE ${consumers} DROP COLUMN checkpoint_transaction_id`
    const digests = qualified("digests")
    yield* sql`ALTER TABLE ${digests} ADD COLUMN checkpoint_commit_sequence bigint NOT NULL DEFAULT 0`
    yield* sql`ALTER TABLE ${digests} DISABLE TRIGGER ${name("digests_refuse_update_delete")}`
    yield* sql`UPDATE ${digests} d SET (checkpoint_commit_sequence, checkpoint_global_position) = (
      SELECT l.commit_sequence, l.global_position
      FROM ${legacy}(d.checkpoint_transaction_id, d.checkpoint_global_position) l)`
    yield* sql`ALTER TABLE ${digests} ENABLE ALWAYS TRIGGER ${name("digests_refuse_update_delete")}`
    yield* sql`ALTER TABLE ${digests} DROP COLUMN checkpoint_transaction_id`
  })
