/**
 * Which database to use, from configuration: PostgreSQL when a URL is given (`DATABASE_URL`), otherwise embedded
 * PGlite persisted under a data folder (`ANNAL_DATA_DIR`, `.data/annal` by default), or in memory when the folder
 * is `memory://`. The command line and the example apps choose their engine with it; libraries never do.
 *
 * A server can bound every statement of its connections (`statementTimeout`): PostgreSQL cancels a statement that
 * runs longer, and reports `query_canceled` (57014). PGlite runs each statement to its end in this process and has
 * no way to cancel one, so there the bound is not applied: a server on PGlite relies on its request timeout, which
 * answers once the statement in flight returns.
 *
 * @since 0.1.0
 */
import type { FeedSignal } from "@annal/core"
import { PgFeedSignal } from "@annal/sql-pg"
import { type DataDirLock, PgliteClient } from "@annal/sql-pglite"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

/** Where the events are: a PostgreSQL URL, or else a PGlite data folder. */
export interface DatabaseConfig {
  readonly url: Option.Option<Redacted.Redacted>
  readonly dataDir: string
}

/** Reads `DATABASE_URL` and `ANNAL_DATA_DIR`. */
export const config: Config.Config<DatabaseConfig> = Config.all({
  url: Config.option(Config.Redacted("DATABASE_URL")),
  dataDir: Config.withDefault(Config.String("ANNAL_DATA_DIR"), ".data/annal")
})

/** How the connections behave. */
export interface ConnectionOptions {
  /**
   * The longest any one statement may run (PostgreSQL's `statement_timeout`, set on each connection as it opens);
   * unbounded unless given. Ignored on PGlite, which cannot cancel a statement.
   */
  readonly statementTimeout?: Duration.Input | undefined
}

/**
 * Why the database could not be opened: the driver's error, or, on PGlite, the data folder held by another process
 * (each PGlite folder is opened by one process at a time; see `DataDirLock`).
 */
export type OpenError = SqlError | DataDirLock.DataDirInUse | DataDirLock.DataDirLockError

/** A `SqlClient` for the given database, and the feed's `FeedSignal` for its engine. */
export const layer = (
  database: DatabaseConfig,
  options: ConnectionOptions = {}
): Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, OpenError> =>
  Option.match(database.url, {
    onSome: (url): Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, OpenError> =>
      PgFeedSignal.layerClient({ url, ...postgresOptions(options) }),
    onNone: () => PgliteClient.layer({ dataDir: database.dataDir })
  })

/**
 * The settings of a PostgreSQL client for `options`: its startup parameters, which the server applies to the session
 * before the first statement, so a connection that the pool opens later is bounded like the first.
 */
export const postgresOptions = (
  options: ConnectionOptions
): { readonly startupParameters?: Readonly<Record<string, string>> } => {
  const millis = options.statementTimeout === undefined ? Infinity : Duration.toMillis(options.statementTimeout)
  // Milliseconds, PostgreSQL's unit when none is given; 0 would mean no bound, so the shortest is 1.
  return Number.isFinite(millis)
    ? { startupParameters: { statement_timeout: String(Math.max(1, Math.ceil(millis))) } }
    : {}
}

/** A `SqlClient` and `FeedSignal` for the database the environment names. */
export const layerConfig: Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, OpenError | Config.ConfigError> =
  Layer.unwrap(Effect.map(config, layer))

/** A one-line description of the database, without secrets, for logs and banners. */
export const describe = (database: DatabaseConfig): string =>
  Option.isSome(database.url) ? "PostgreSQL" : `embedded PGlite in ${database.dataDir}`
