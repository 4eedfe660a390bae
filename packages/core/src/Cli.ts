/**
 * The `annal` command line: `annal migrate` applies the events table's migrations to the database the flags or
 * the environment name (`DATABASE_URL` for PostgreSQL, else PGlite under `ANNAL_DATA_DIR`).
 *
 * @since 0.1.0
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Database from "./Database.ts"
import * as EventTable from "./EventTable.ts"
import * as Migrations from "./Migrations.ts"

const databaseUrl = Flag.String("database-url").pipe(
  Flag.withDescription("PostgreSQL URL; defaults to DATABASE_URL, and without either to embedded PGlite"),
  Flag.optional
)
const dataDir = Flag.String("data-dir").pipe(
  Flag.withDescription("PGlite data folder; defaults to ANNAL_DATA_DIR or .data/annal"),
  Flag.optional
)
const schema = Flag.String("schema").pipe(
  Flag.withDescription("Schema of the events table"),
  Flag.withDefault("public")
)
const table = Flag.String("table").pipe(Flag.withDescription("Name of the events table"), Flag.withDefault("events"))

/** The database the flags name, falling back to the environment. */
export const resolveDatabase = (flags: {
  readonly databaseUrl: Option.Option<string>
  readonly dataDir: Option.Option<string>
}): Effect.Effect<Database.DatabaseConfig, unknown> =>
  Effect.map(Database.config, (fromEnv) => ({
    url: Option.orElse(Option.map(flags.databaseUrl, Redacted.make), () => fromEnv.url),
    dataDir: Option.getOrElse(flags.dataDir, () => fromEnv.dataDir)
  }))

/** `annal migrate`: applies pending migrations and lists them. */
export const migrate = Command.make(
  "migrate",
  { databaseUrl, dataDir, schema, table },
  Effect.fn("annal.migrate")(function* (flags) {
    const database = yield* resolveDatabase(flags)
    yield* Console.log(`Migrating ${flags.schema}.${flags.table} on ${Database.describe(database)}`)
    const applied = yield* Migrations.run.pipe(
      Effect.provide(EventTable.layer({ schema: flags.schema, table: flags.table })),
      Effect.provide(Database.layer(database))
    )
    if (applied.length === 0) yield* Console.log("Nothing to apply: the events table is up to date.")
    for (const [id, name] of applied) yield* Console.log(`Applied ${id}_${name}`)
  })
).pipe(Command.withDescription("Create or upgrade the events table (idempotent, safe to run concurrently)"))

/** The root command. */
export const annal = Command.make("annal").pipe(
  Command.withDescription("Annal: an immutable, queryable audit trail in PostgreSQL"),
  Command.withSubcommands([migrate])
)

/** Runs the command line with the given arguments. */
export const run = Command.run(annal, { version: "0.1.0" })
