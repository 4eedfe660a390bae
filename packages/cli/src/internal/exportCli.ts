/**
 * `annal export`: the events that match the audit API's filters, written as CSV or NDJSON by the core's `Export`
 * (the files `GET /audit/export` serves), to standard output or `--output <file>`, with progress on standard error.
 *
 * It reads the table directly, without the application's registry: each event is exported as stored (its stored
 * `version` and `data`), which is what an archive of the log should hold. The events are read a page at a time and
 * the next page only once the last one was written, so an export of any size runs in constant memory, at the pace
 * of the disk or the pipe it writes to.
 */
import { AnnalError, EventRegistry, EventStore, Export, Filter } from "@annal/core"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stdio from "effect/Stdio"
import * as Stream from "effect/Stream"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Database from "../Database.ts"
import * as Flags from "./flags.ts"
import { thousands } from "./format.ts"

/** The flags every database command takes, as `Cli.ts` defines them. */
export interface DatabaseFlags {
  readonly databaseUrl: Flag.Flag<Option.Option<string>>
  readonly dataDir: Flag.Flag<Option.Option<string>>
  readonly schema: Flag.Flag<string>
  readonly table: Flag.Flag<string>
}

/** How often, in events, a progress line is written when standard error is no terminal. */
const progressEvery = 100_000

/** An instant flag's value, or an `InvalidQuery` that names the flag. */
const instant = (field: string, text: string): Effect.Effect<DateTime.Utc, AnnalError.InvalidQuery> =>
  Option.match(DateTime.make(text), {
    onNone: () =>
      Effect.fail(
        new AnnalError.InvalidQuery({
          field,
          reason: `${JSON.stringify(text)} is not an ISO 8601 date-time, such as 2025-04-01T00:00:00Z`
        })
      ),
    onSome: (parsed) => Effect.succeed(DateTime.toUtc(parsed))
  })

/**
 * `annal export`, over the database flags of `Cli.ts` and how it resolves them (passed in, so that this module
 * does not import the one that lists it).
 */
export const makeExportCommand = (
  databaseFlags: DatabaseFlags,
  resolveDatabase: (flags: {
    readonly databaseUrl: Option.Option<string>
    readonly dataDir: Option.Option<string>
  }) => Effect.Effect<Database.DatabaseConfig, unknown>
) =>
  Command.make(
    "export",
    {
      ...databaseFlags,
      eventType: Flag.String("event-type").pipe(
        Flag.withDescription("Only events of this type (repeat the flag for several)"),
        Flag.atLeast(0)
      ),
      aggregateType: Flag.String("aggregate-type").pipe(
        Flag.withDescription("Only this aggregate type"),
        Flag.optional
      ),
      aggregateId: Flag.String("aggregate-id").pipe(Flag.withDescription("Only this aggregate id"), Flag.optional),
      userId: Flag.String("user-id").pipe(Flag.withDescription("Only what this user did"), Flag.optional),
      correlationId: Flag.String("correlation-id").pipe(
        Flag.withDescription("Only the events of this business operation"),
        Flag.optional
      ),
      from: Flag.String("from").pipe(
        Flag.withDescription("Only events at or after this instant (ISO 8601, such as 2025-04-01T00:00:00Z)"),
        Flag.optional
      ),
      to: Flag.String("to").pipe(Flag.withDescription("Only events before this instant (ISO 8601)"), Flag.optional),
      format: Flags.choice(
        "format",
        ["csv", "ndjson"],
        "csv",
        "csv (a header, then one row per event) or ndjson (one event per line)"
      ),
      output: Flag.String("output").pipe(
        Flag.withDescription("The file to write; standard output without it"),
        Flag.optional
      )
    },
    Effect.fn("annal.export")(function* (flags) {
      const database = yield* resolveDatabase(flags)
      const filter = yield* Filter.validate(
        Filter.pick({
          eventTypes: flags.eventType.length === 0 ? undefined : flags.eventType,
          aggregateType: Option.getOrUndefined(flags.aggregateType),
          aggregateId: Option.getOrUndefined(flags.aggregateId),
          userId: Option.getOrUndefined(flags.userId),
          correlationId: Option.getOrUndefined(flags.correlationId),
          from: Option.isSome(flags.from) ? yield* instant("from", flags.from.value) : undefined,
          to: Option.isSome(flags.to) ? yield* instant("to", flags.to.value) : undefined
        })
      )
      const stdio = yield* Stdio.Stdio
      const fs = yield* FileSystem.FileSystem
      const animate = yield* stdio.stderrIsTerminal
      const note = (text: string) => Stream.run(Stream.make(text), stdio.stderr()).pipe(Effect.ignore)
      const where = Option.getOrElse(flags.output, () => "standard output")
      const tableName = `${flags.schema}.${flags.table}`
      let exported = 0
      let shown = 0
      const progress = (events: number) => {
        exported += events
        if (animate) return note(`\rExporting ${tableName}: ${thousands(exported)} events`)
        if (exported - shown < progressEvery) return Effect.void
        shown = exported
        return note(`Exporting ${tableName}: ${thousands(exported)} events\n`)
      }
      const sink = Option.match(flags.output, {
        onNone: () => stdio.stdout({ endOnDone: false }),
        onSome: (path) => fs.sink(path)
      })
      yield* Effect.gen(function* () {
        const store = yield* EventStore.EventStore
        yield* store.stream(EventRegistry.raw, filter).pipe(
          Stream.mapArrayEffect((events) => Effect.as(progress(events.length), events)),
          Export.encode(flags.format),
          Stream.run(sink)
        )
      }).pipe(
        Effect.provide(
          EventStore.layer({ schema: flags.schema, table: flags.table }).pipe(Layer.provide(Database.layer(database)))
        )
      )
      if (animate) yield* note("\n")
      yield* Console.error(`Exported ${thousands(exported)} events of ${tableName} as ${flags.format} to ${where}`)
    })
  ).pipe(
    Command.withDescription(
      "Write the events that match the filters as CSV or NDJSON, to standard output or --output (progress on stderr)"
    )
  )
