/**
 * Which database to use, from configuration: PostgreSQL when a URL is given (`DATABASE_URL`), otherwise embedded
 * PGlite persisted under a data folder (`ANNAL_DATA_DIR`, `.data/annal` by default), or in memory when the folder
 * is `memory://`. The command line and the example apps choose their engine with it; libraries never do.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as PgliteClient from "./PgliteClient.ts"

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

/** A `SqlClient` for the given database. */
export const layer = (database: DatabaseConfig): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  Option.match(database.url, {
    onSome: (url) => PgClient.layer({ url }),
    onNone: () => PgliteClient.layer({ dataDir: database.dataDir })
  })

/** A `SqlClient` for the database the environment names. */
export const layerConfig: Layer.Layer<SqlClient.SqlClient, SqlError | Config.ConfigError> = Layer.unwrap(
  Effect.map(config, layer)
)

/** A one-line description of the database, without secrets, for logs and banners. */
export const describe = (database: DatabaseConfig): string =>
  Option.isSome(database.url) ? "PostgreSQL" : `embedded PGlite in ${database.dataDir}`
