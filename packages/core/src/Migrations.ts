/**
 * The events table, its indexes and the triggers that make it append-only, as migrations run by Effect's
 * `Migrator`. Running them is idempotent, and safe when two processes start at once: both take one advisory lock
 * first, so the second waits and then finds nothing left to do.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Migrator from "effect/sql/Migrator"
import * as SqlClient from "effect/sql/SqlClient"
import { MigrationFailed, StorageError } from "./AnnalError.ts"
import * as EventTable from "./EventTable.ts"
import { qualify } from "./EventTable.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"
import { dropNotifyTrigger, feedMigration } from "./internal/feed/migration.ts"
import { digestChain, integrity } from "./internal/integrity/migration.ts"
import { commitOrderMigration } from "./internal/feed/commitOrder.ts"
import { appendOnly, createEvents, prepare } from "./internal/store/migration.ts"

/** The migrations for one events table, by `<id>_<name>`. */
export const migrations = (
  config: EventTable.EventTable
): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "1_create_events": createEvents(config),
  "2_append_only": appendOnly(config),
  "3_feed": feedMigration(config),
  "4_integrity": integrity(config),
  "5_notify_after_commit": dropNotifyTrigger(config),
  "6_commit_order": commitOrderMigration(config),
  "7_digest_chain": digestChain(config)
})

/** Applies every pending migration of the events table the options name, and returns the ones it applied. */
export const run: (
  options?: EventTable.Options
) => Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, StorageError, SqlClient.SqlClient> = Effect.fn(
  "Migrations.run"
)(
  function* (options?: EventTable.Options) {
    const sql = yield* SqlClient.SqlClient
    const config = yield* EventTable.make(options)
    const migrate = Migrator.make({})({
      loader: Migrator.fromRecord(migrations(config)),
      table: qualify(config, `${config.table}_migrations`)
    })
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* prepare(config)
        return yield* migrate
      })
    )
  },
  Effect.catchTag("SqlError", (error) => Effect.fail(fromSqlError("Migrations.run", error))),
  Effect.catchTag("MigrationError", (error) =>
    Effect.fail(
      new StorageError({
        operation: "Migrations.run",
        reason: new MigrationFailed({ kind: error.kind }),
        detail: `${error.message}${error.cause === undefined ? "" : `: ${String(error.cause)}`}`
      })
    )
  )
)

/** Runs the migrations of the events table the options name when the layer is built. */
export const layer = (options?: EventTable.Options): Layer.Layer<never, StorageError, SqlClient.SqlClient> =>
  Layer.effectDiscard(run(options))
