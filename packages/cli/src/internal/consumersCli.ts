/**
 * `annal consumers`: lists the named consumers with their position, lag and lease; `annal consumers reset` moves
 * one to the start, a checkpoint or an instant; `annal consumers replay` moves one to the start and follows the
 * running consumer as it works through the log again, with a progress bar on standard error.
 *
 * The command line cannot run a consumer's handler, which lives in the application. Both move the checkpoint and
 * revoke the lease (`Consumers.reset`), so the instance that runs it resumes from the new checkpoint within a third
 * of its lease duration; what the consumer built is kept, so a replay suits a handler that writes idempotently.
 * To clear a projection's tables with its checkpoint, the application runs `Consumers.replay` with `reset`.
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { AnnalError, Checkpoint, Consumers, Feed } from "@annal/core"
import * as Database from "../Database.ts"
import * as Flags from "./flags.ts"
import * as Format from "./format.ts"
import { consumerJson } from "./statusCli.ts"

/** The `Feed` and `Consumers` of the events table the flags name. */
const services = (flags: {
  readonly databaseUrl: Option.Option<string>
  readonly dataDir: Option.Option<string>
  readonly schema: string
  readonly table: string
}) =>
  Effect.map(Flags.resolveDatabase(flags), (database) =>
    Consumers.layer.pipe(
      Layer.provideMerge(Feed.layer({ schema: flags.schema, table: flags.table })),
      Layer.provideMerge(Database.layer(database))
    )
  )

/** The consumer's current row, or `UnknownConsumer`. */
const find = Effect.fnUntraced(function* (name: string) {
  const lag = yield* Consumers.Consumers.use((consumers) => consumers.lag)
  const found = lag.find((consumer) => consumer.name === name)
  if (found === undefined) return yield* new Consumers.UnknownConsumer({ consumer: name })
  return found
})

/** The flags and argument of a command on one consumer. */
const oneConsumer = {
  ...Flags.database,
  json: Flags.json,
  name: Argument.String("name").pipe(Argument.withDescription("The consumer's name"))
}

/** `annal consumers reset <name> --to <start | checkpoint | ISO time>`. */
export const reset = Command.make(
  "reset",
  {
    ...oneConsumer,
    to: Flag.String("to").pipe(
      Flag.withDescription(
        "Where to: 'start', a checkpoint (a cursor from --json output), or an ISO 8601 time (every commit recorded before it counts as handled)"
      )
    )
  },
  Effect.fn("annal.consumers.reset")(function* (flags) {
    const layer = yield* services(flags)
    yield* Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const feed = yield* Feed.Feed
      const before = yield* find(flags.name)
      const target = yield* parseTarget(flags.to, feed)
      const checkpoint = yield* consumers.reset(flags.name, target)
      if (flags.json) {
        const was = consumerJson(before)
        return yield* Console.log(
          Format.printJson({
            consumer: flags.name,
            from: was.checkpoint,
            to: Format.checkpointJson(checkpoint),
            revokedOwner: was.owner
          })
        )
      }
      yield* Console.log(
        `Reset ${flags.name} to ${Format.checkpoint(checkpoint)} (it was at ${Format.checkpoint(before.checkpoint)}).`
      )
      yield* Console.log(
        Option.match(before.owner, {
          onNone: () => "No instance held its lease: it starts from there when it next runs.",
          onSome: (owner) =>
            `Its lease was revoked from ${owner}: that instance resumes from there within a third of its lease.`
        })
      )
    }).pipe(Effect.provide(layer))
  })
).pipe(Command.withDescription("Move a consumer to the start, a checkpoint or a time; its running instance follows"))

/** `annal consumers replay <name>`: to the start, then the running consumer's progress to the head as of now. */
export const replay = Command.make(
  "replay",
  {
    ...oneConsumer,
    wait: Flag.Boolean("wait").pipe(
      Flag.withDescription("Follow the replay to its end (--no-wait returns once the checkpoint is reset)"),
      Flag.withDefault(true)
    )
  },
  Effect.fn("annal.consumers.replay")(function* (flags) {
    const layer = yield* services(flags)
    yield* Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const feed = yield* Feed.Feed
      const before = yield* find(flags.name)
      // Where the replay ends: the last event readable now; what commits later is the consumer's ordinary work.
      const target = yield* feed.head
      yield* consumers.reset(flags.name, Checkpoint.start)
      const startedAt = yield* Clock.currentTimeMillis
      const total = (yield* find(flags.name)).eventsBehind
      const display = yield* makeReplayDisplay(flags.name, total, startedAt)
      let current = yield* find(flags.name)
      if (flags.wait) {
        let warned = false
        while (Checkpoint.compare(current.checkpoint, target) < 0) {
          yield* display.update(current)
          if (!warned && Option.isNone(current.owner) && (yield* Clock.currentTimeMillis) - startedAt > 5_000) {
            warned = true
            yield* Console.error(`No instance of ${flags.name} holds its lease: the replay goes on when one runs.`)
          }
          yield* Effect.sleep(pollInterval)
          current = yield* find(flags.name)
        }
        yield* display.update(current, true)
        yield* display.end
      }
      const elapsed = (yield* Clock.currentTimeMillis) - startedAt
      const done = Checkpoint.compare(current.checkpoint, target) >= 0
      if (flags.json) {
        return yield* Console.log(
          Format.printJson({
            consumer: flags.name,
            from: Format.checkpointJson(before.checkpoint),
            target: Format.checkpointJson(target),
            checkpoint: Format.checkpointJson(current.checkpoint),
            events: total,
            done,
            elapsedMs: Math.round(elapsed)
          })
        )
      }
      yield* Console.log(
        done
          ? `Replayed ${flags.name}: ${Format.count(total, "event")} to ${Format.checkpoint(target)} in ${Format.age(Duration.millis(elapsed))}.`
          : `Reset ${flags.name} to the start; it replays ${Format.count(total, "event")} to ${Format.checkpoint(target)} as it runs (annal consumers shows its progress).`
      )
    }).pipe(Effect.provide(layer))
  })
).pipe(
  Command.withDescription(
    "Move a consumer back to the start and follow its running instance through the log again, with a progress bar"
  )
)

/** `annal consumers`: every consumer, and its subcommands. */
export const consumers = Command.make(
  "consumers",
  { ...Flags.database, json: Flags.json },
  Effect.fn("annal.consumers")(function* (flags) {
    const layer = yield* services(flags)
    const lag = yield* Consumers.Consumers.use((service) => service.lag).pipe(Effect.provide(layer))
    const at = DateTime.makeUnsafe(yield* Clock.currentTimeMillis)
    if (flags.json) return yield* Console.log(Format.printJson(lag.map(consumerJson)))
    if (lag.length === 0) return yield* Console.log("No consumer has run against this events table.")
    yield* Console.log(table(lag, at))
  })
).pipe(
  Command.withDescription("List the consumers with their position, lag and lease; reset or replay one"),
  Command.withSubcommands([reset, replay])
)

const pollInterval = "500 millis"

/** Where `--to` points: the start, an instant, or a checkpoint. */
const parseTarget = (text: string, feed: Feed.Feed["Service"]) => {
  if (text === "start") return Effect.succeed<Consumers.ResetTarget>(Checkpoint.start)
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    return Option.match(DateTime.make(text), {
      onNone: () =>
        Effect.fail(
          new AnnalError.InvalidQuery({ field: "to", reason: `${JSON.stringify(text)} is not an ISO 8601 time` })
        ),
      onSome: (instant) => Effect.succeed<Consumers.ResetTarget>(DateTime.toUtc(instant))
    })
  }
  return feed.resolve(text)
}

/** The progress of a replay, from the lag the running consumer leaves in its row. */
const makeReplayDisplay = Effect.fnUntraced(function* (consumer: string, total: number, startedAt: number) {
  const progress = yield* Format.makeProgress()
  return {
    update: Effect.fnUntraced(function* (lag: Consumers.Lag, done = false) {
      // The lag counts what commits meanwhile too: the count done is an estimate, the end is the checkpoint's.
      const processed = done ? total : Math.max(0, Math.min(total, total - lag.eventsBehind))
      const percent = total === 0 ? 100 : Math.floor((processed * 100) / total)
      const seconds = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
      const rate = seconds === 0 ? "" : `, ${Format.thousands(Math.round(processed / seconds))} events/s`
      yield* progress.update(
        `Replaying ${consumer}: ${Format.thousands(processed)} of ${Format.thousands(total)} events (${percent}%)${rate}`,
        percent
      )
    }),
    end: progress.end
  }
})

/** The consumers as aligned columns. */
const table = (lag: ReadonlyArray<Consumers.Lag>, at: DateTime.Utc): string => {
  const rows = lag.map((consumer) => [
    consumer.name,
    Format.checkpoint(consumer.checkpoint),
    Format.thousands(consumer.eventsBehind),
    Option.match(consumer.oldestUnprocessedAge, { onNone: () => "-", onSome: Format.age }),
    Option.getOrElse(consumer.owner, () => "-"),
    Format.age(Duration.millis(DateTime.toEpochMillis(at) - DateTime.toEpochMillis(consumer.checkpointUpdatedAt)))
  ])
  const header = ["NAME", "CHECKPOINT", "BEHIND", "OLDEST", "LEASE OWNER", "MOVED"]
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => (column === 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}
