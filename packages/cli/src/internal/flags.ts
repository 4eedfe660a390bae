/**
 * The flags the commands share, and the database they name: one definition, so that `annal status`, `annal tail`
 * and the others read the same `--database-url`, `--data-dir`, `--schema`, `--table` and `--json`; `annal tail` and
 * `annal export` the same filters, named after the audit API's query parameters; and the commands that write a
 * file the same `--output`.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Flag from "effect/cli/Flag"
import type { Filter } from "@annal/core"
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

/**
 * The audit API's filters as flags, each named after its query parameter: `--event-type` (repeatable),
 * `--aggregate-type`, `--aggregate-id`, `--user-id` and `--correlation-id`.
 */
export const filters = {
  eventTypes: Flag.String("event-type").pipe(
    Flag.withDescription("Only events of this type (repeat the flag for several)"),
    Flag.atLeast(0)
  ),
  aggregateType: optionalString("aggregate-type", "Only events of this entity type"),
  aggregateId: optionalString("aggregate-id", "Only events of this entity (a UUID)"),
  userId: optionalString("user-id", "Only events recorded for this user (a UUID)"),
  correlationId: optionalString("correlation-id", "Only events with this correlation id")
}

/** The filter the `filters` flags give: only the fields given, no type list when no `--event-type` was. */
export const filter = (flags: {
  readonly eventTypes: ReadonlyArray<string>
  readonly aggregateType: Option.Option<string>
  readonly aggregateId: Option.Option<string>
  readonly userId: Option.Option<string>
  readonly correlationId: Option.Option<string>
}): Filter.Filter => ({
  ...(flags.eventTypes.length === 0 ? {} : { eventTypes: flags.eventTypes }),
  ...Option.match(flags.aggregateType, { onNone: () => ({}), onSome: (aggregateType) => ({ aggregateType }) }),
  ...Option.match(flags.aggregateId, { onNone: () => ({}), onSome: (aggregateId) => ({ aggregateId }) }),
  ...Option.match(flags.userId, { onNone: () => ({}), onSome: (userId) => ({ userId }) }),
  ...Option.match(flags.correlationId, { onNone: () => ({}), onSome: (correlationId) => ({ correlationId }) })
})

/** `--output`: the file a command writes, standard output without it. */
export const output = optionalString("output", "The file to write; standard output without it")
