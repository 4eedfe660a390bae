/**
 * The flags every database command shares, and the database they name: one definition, so that `annal status`,
 * `annal tail` and the others read the same `--database-url`, `--data-dir`, `--schema`, `--table` and `--json`.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Flag from "effect/cli/Flag"
import * as Database from "../Database.ts"

/** `--database-url`. */
export const databaseUrl = Flag.String("database-url").pipe(
  Flag.withDescription("PostgreSQL URL; defaults to DATABASE_URL, and without either to embedded PGlite"),
  Flag.optional
)

/** `--data-dir`. */
export const dataDir = Flag.String("data-dir").pipe(
  Flag.withDescription("PGlite data folder; defaults to ANNAL_DATA_DIR or .data/annal"),
  Flag.optional
)

/** `--schema`. */
export const schema = Flag.String("schema").pipe(
  Flag.withDescription("Schema of the events table"),
  Flag.withDefault("public")
)

/** `--table`. */
export const table = Flag.String("table").pipe(
  Flag.withDescription("Name of the events table"),
  Flag.withDefault("events")
)

/** An optional string flag. */
export const optionalString = (name: string, description: string) =>
  Flag.String(name).pipe(Flag.withDescription(description), Flag.optional)

/** A flag that takes one of `literals`, `fallback` when it is not given. */
export const choice = <const L extends ReadonlyArray<string>>(
  name: string,
  literals: L,
  fallback: L[number],
  description: string
) => Flag.Literals(name, literals).pipe(Flag.withDescription(description), Flag.withDefault(fallback))

/** `--json`: machine-readable output on stdout. */
export const json = Flag.Boolean("json").pipe(
  Flag.withDescription("Print JSON (stable keys, ISO times, numbers) instead of text"),
  Flag.withDefault(false)
)

/** The flags that choose the database and the events table. */
export const database = { databaseUrl, dataDir, schema, table }

/** The database the flags name, falling back to the environment. */
export const resolveDatabase = (flags: {
  readonly databaseUrl: Option.Option<string>
  readonly dataDir: Option.Option<string>
}): Effect.Effect<Database.DatabaseConfig, unknown> =>
  Effect.map(Database.config, (fromEnv) => ({
    url: Option.orElse(Option.map(flags.databaseUrl, Redacted.make), () => fromEnv.url),
    dataDir: Option.getOrElse(flags.dataDir, () => fromEnv.dataDir)
  }))
