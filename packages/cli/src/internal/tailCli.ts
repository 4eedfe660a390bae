/**
 * `annal tail`: the events as they commit, in the feed's order, with the audit API's filters (event types, entity
 * type and id, user, correlation id). One line per event, or NDJSON with `--json`, whose `checkpoint` is the cursor
 * `--after` takes to resume exactly after that event. From the head by default, so it shows what happens from now.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { type Event, EventRegistry, Feed } from "@annal/core"
import * as Database from "../Database.ts"
import * as Flags from "./flags.ts"
import * as Format from "./format.ts"

const optionalString = Flags.optionalString

/** `annal tail`: follows the feed, filtered. */
export const tail = Command.make(
  "tail",
  {
    ...Flags.database,
    json: Flags.json,
    eventTypes: Flag.String("type").pipe(
      Flag.withDescription("Only events of this type (repeat the flag for several)"),
      Flag.atLeast(0)
    ),
    aggregateType: optionalString("aggregate-type", "Only events of this entity type"),
    aggregateId: optionalString("aggregate-id", "Only events of this entity (a UUID)"),
    userId: optionalString("user", "Only events recorded for this user (a UUID)"),
    correlationId: optionalString("correlation-id", "Only events with this correlation id"),
    after: optionalString(
      "after",
      "Start after this checkpoint (a cursor from --json output or an SSE id), or 'start' for the whole log; default the head"
    ),
    follow: Flag.Boolean("follow").pipe(
      Flag.withDescription("Keep following once caught up (--no-follow stops there)"),
      Flag.withDefault(true)
    )
  },
  Effect.fn("annal.tail")(function* (flags) {
    const database = yield* Flags.resolveDatabase(flags)
    const options = { schema: flags.schema, table: flags.table }
    const filter = {
      ...(flags.eventTypes.length === 0 ? {} : { eventTypes: flags.eventTypes }),
      ...Option.match(flags.aggregateType, { onNone: () => ({}), onSome: (aggregateType) => ({ aggregateType }) }),
      ...Option.match(flags.aggregateId, { onNone: () => ({}), onSome: (aggregateId) => ({ aggregateId }) }),
      ...Option.match(flags.userId, { onNone: () => ({}), onSome: (userId) => ({ userId }) }),
      ...Option.match(flags.correlationId, { onNone: () => ({}), onSome: (correlationId) => ({ correlationId }) })
    }
    yield* Effect.gen(function* () {
      const feed = yield* Feed.Feed
      const after = yield* Option.match(flags.after, {
        onNone: () => feed.head,
        onSome: (text) => (text === "start" ? Effect.succeed("start" as const) : feed.resolve(text))
      })
      if (!flags.json) {
        yield* Console.error(
          `${flags.follow ? "Following" : "Reading"} ${flags.schema}.${flags.table} after ${after === "start" ? "the start" : Format.checkpoint(after)}${flags.follow ? " (Ctrl-C stops)" : ""}`
        )
      }
      yield* feed
        .stream(EventRegistry.raw, {
          ...filter,
          ...(after === "start" ? {} : { after }),
          live: flags.follow
        })
        .pipe(
          Stream.runForEach((entry) => Console.log(flags.json ? JSON.stringify(toJson(entry)) : toLine(entry.event)))
        )
    }).pipe(Effect.provide(Feed.layer(options).pipe(Layer.provide(Database.layer(database)))))
  })
).pipe(Command.withDescription("Print events as they commit, in the feed's order, filtered like the audit API"))

/** One event as a JSON line: stable keys, ISO times, and the checkpoint to resume after it. */
export const toJson = (entry: Feed.Entry<Event.RawEvent>) => {
  const { event } = entry
  return {
    checkpoint: Format.checkpointJson(entry.checkpoint).cursor,
    eventId: event.eventId,
    eventType: event.eventType,
    version: event.version,
    aggregateType: event.aggregateType,
    aggregateId: event.aggregateId,
    streamVersion: event.streamVersion,
    userId: event.userId,
    timestamp: Format.iso(event.timestamp),
    recordedAt: Format.iso(event.recordedAt),
    globalPosition: Number(event.globalPosition),
    data: event.data,
    metadata: event.metadata
  }
}

const dataWidth = 160

/** One event on one line: when, what, which entity and version, who, and the start of its data. */
export const toLine = (event: Event.RawEvent): string => {
  const data = JSON.stringify(event.data)
  const shown = data.length > dataWidth ? `${data.slice(0, dataWidth - 1)}…` : data
  const correlation = event.metadata.correlationId === undefined ? "" : `  correlation ${event.metadata.correlationId}`
  return `${Format.iso(event.timestamp)}  ${event.eventType} v${event.version}  ${event.aggregateType}/${event.aggregateId} #${event.streamVersion}  user ${event.userId}${correlation}  ${shown}`
}
