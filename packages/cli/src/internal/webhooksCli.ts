/**
 * `annal webhooks`: the operator's side of `@annal/webhooks`. Lists, creates, pauses, resumes, disables and deletes
 * subscriptions; lists and redelivers dead letters; replays a subscription from a point in time; and reads the
 * delivery log, a page at a time. Text by default, JSON with `--json`.
 *
 * It changes subscriptions through the `Webhooks` service, so each change is an audited event like one made through
 * the admin API, by the `--user` that every change requires. Delivery itself runs in the application (`Webhooks.run`): a change made here
 * reaches it within its refresh interval. `redeliver` is the exception, it sends from this process: events go out as
 * stored, since the command line does not know the application's schemas.
 */
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Argument from "effect/cli/Argument"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import { AnnalError, Consumers, EventContext, EventEmitter, EventRegistry, EventStore, Feed } from "@annal/core"
import { Webhooks } from "@annal/webhooks"
import * as Database from "../Database.ts"
import * as Flags from "./flags.ts"
import * as Format from "./format.ts"

/** The flags every webhooks command shares. */
const common = {
  ...Flags.database,
  json: Flags.json,
  user: Flags.optionalString("user", "The user (a UUID) that changes are recorded for; changes require it"),
  allow: Flag.String("allow").pipe(
    Flag.withDescription(
      "An address or CIDR range the SSRF guard lets through despite being loopback or private (repeat for several)"
    ),
    Flag.atLeast(0)
  )
}

/** The flags and argument of a command on one subscription. */
const one = {
  ...common,
  id: Argument.String("id").pipe(Argument.withDescription("The subscription's id"))
}

/** Runs `body` with the `Webhooks` service over the events table the flags name. */
const withWebhooks = <A, E>(
  flags: {
    readonly databaseUrl: Option.Option<string>
    readonly dataDir: Option.Option<string>
    readonly schema: string
    readonly table: string
    readonly user: Option.Option<string>
    readonly allow: ReadonlyArray<string>
  },
  body: (webhooks: Webhooks.Webhooks["Service"]) => Effect.Effect<A, E>,
  changes = true
) =>
  Effect.gen(function* () {
    // A change is an audited event, and an event names who made it: refused here, before the database is opened.
    if (changes && Option.isNone(flags.user)) {
      return yield* new AnnalError.InvalidQuery({
        field: "user",
        reason: "--user is required: changes are recorded for a user"
      })
    }
    const database = yield* Flags.resolveDatabase(flags)
    const options = { schema: flags.schema, table: flags.table }
    const layer = Webhooks.layer({ registry: EventRegistry.raw, allow: flags.allow }).pipe(
      Layer.provideMerge(EventEmitter.layer),
      Layer.provideMerge(Layer.mergeAll(Consumers.layer, EventStore.layer(options))),
      Layer.provideMerge(Feed.layer(options)),
      Layer.provideMerge(Database.layer(database))
    )
    return yield* Webhooks.Webhooks.use(body).pipe(
      EventContext.provide(Option.match(flags.user, { onNone: () => ({}), onSome: (userId) => ({ userId }) })),
      Effect.provide(layer)
    )
  })

/** A subscription in JSON: stable keys, ISO times; its secrets by id only. */
const subscriptionJson = (subscription: Webhooks.Subscription) => ({
  id: subscription.id,
  url: subscription.url,
  filter: subscription.filter,
  state: subscription.state,
  onDeadLetter: subscription.onDeadLetter,
  maxAttempts: subscription.maxAttempts,
  secretIds: subscription.secrets.map((secret) => secret.id),
  replayFrom: Option.getOrNull(Option.map(subscription.replayFrom, Format.iso)),
  revision: subscription.revision,
  createdAt: Format.iso(subscription.createdAt),
  updatedAt: Format.iso(subscription.updatedAt)
})

const filterText = (filter: Webhooks.SubscriptionFilter): string => {
  const parts = [
    ...(filter.eventTypes === undefined ? [] : [`types ${filter.eventTypes.join(",")}`]),
    ...(filter.aggregateType === undefined ? [] : [`entity ${filter.aggregateType}`]),
    ...(filter.aggregateId === undefined ? [] : [`id ${filter.aggregateId}`]),
    ...(filter.userId === undefined ? [] : [`user ${filter.userId}`])
  ]
  return parts.length === 0 ? "every event" : parts.join("; ")
}

/** Rows as aligned columns under a header. */
const columns = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

/** A listing: JSON, a line saying there is nothing, or aligned columns. */
const printRows = <A>(
  json: boolean,
  items: ReadonlyArray<A>,
  view: {
    readonly json: (item: A) => unknown
    readonly empty: string
    readonly header: ReadonlyArray<string>
    readonly row: (item: A) => ReadonlyArray<string>
  }
) =>
  Console.log(
    json
      ? Format.printJson(items.map(view.json))
      : items.length === 0
        ? view.empty
        : columns(view.header, items.map(view.row))
  )

const describeOne = (subscription: Webhooks.Subscription): string =>
  `${subscription.id}  ${subscription.state}  ${subscription.url}  (${filterText(subscription.filter)})`

/** `annal webhooks create <url>`. */
const create = Command.make(
  "create",
  {
    ...common,
    url: Argument.String("url").pipe(Argument.withDescription("Where to deliver (http or https)")),
    eventTypes: Flag.String("event-type").pipe(
      Flag.withDescription("Only events of this type (repeat the flag for several)"),
      Flag.atLeast(0)
    ),
    aggregateType: Flags.optionalString("aggregate-type", "Only events of this entity type"),
    aggregateId: Flags.optionalString("aggregate-id", "Only events of this entity (a UUID)"),
    userId: Flags.optionalString("user-id", "Only events recorded for this user (a UUID)"),
    onDeadLetter: Flags.choice(
      "on-dead-letter",
      ["pause", "disable"],
      "pause",
      "What a dead letter does to the subscription"
    ),
    maxAttempts: Flag.Int("max-attempts").pipe(
      Flag.withDescription("Attempts per event before it is dead-lettered (1 to 100)"),
      Flag.optional
    ),
    secret: Flags.optionalString("secret", "A whsec_… secret; one is generated when none is given")
  },
  Effect.fn("annal.webhooks.create")(function* (flags) {
    const created = yield* withWebhooks(flags, (webhooks) =>
      webhooks.create({
        url: flags.url,
        filter: {
          ...(flags.eventTypes.length === 0 ? {} : { eventTypes: flags.eventTypes }),
          ...Option.match(flags.aggregateType, { onNone: () => ({}), onSome: (aggregateType) => ({ aggregateType }) }),
          ...Option.match(flags.aggregateId, { onNone: () => ({}), onSome: (aggregateId) => ({ aggregateId }) }),
          ...Option.match(flags.userId, { onNone: () => ({}), onSome: (userId) => ({ userId }) })
        },
        secret: Option.getOrUndefined(flags.secret),
        onDeadLetter: flags.onDeadLetter,
        maxAttempts: Option.getOrUndefined(flags.maxAttempts)
      })
    )
    if (flags.json) {
      return yield* Console.log(
        Format.printJson({ subscription: subscriptionJson(created.subscription), secret: created.secret })
      )
    }
    yield* Console.log(
      [
        `Created ${describeOne(created.subscription)}`,
        `Secret (shown this once; receivers verify with it): ${created.secret}`
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Create an active subscription; prints its secret once"))

/** `annal webhooks pause|resume|disable <id>`. */
const stateCommand = (name: "pause" | "resume" | "disable", state: Webhooks.State, description: string) =>
  Command.make(
    name,
    one,
    Effect.fn(`annal.webhooks.${name}`)(function* (flags) {
      const subscription = yield* withWebhooks(flags, (webhooks) => webhooks.setState(flags.id, state))
      yield* Console.log(flags.json ? Format.printJson(subscriptionJson(subscription)) : `${describeOne(subscription)}`)
    })
  ).pipe(Command.withDescription(description))

/** `annal webhooks delete <id>`. */
const remove = Command.make(
  "delete",
  one,
  Effect.fn("annal.webhooks.delete")(function* (flags) {
    yield* withWebhooks(flags, (webhooks) => webhooks.remove(flags.id))
    yield* Console.log(
      flags.json ? Format.printJson({ deleted: flags.id }) : `Deleted ${flags.id}, its log and its dead letters.`
    )
  })
).pipe(Command.withDescription("Delete a subscription, its checkpoint, its log and its dead letters"))

/** `annal webhooks dead-letters <id>`. */
const deadLetters = Command.make(
  "dead-letters",
  one,
  Effect.fn("annal.webhooks.deadLetters")(function* (flags) {
    const letters = yield* withWebhooks(flags, (webhooks) => webhooks.deadLetters(flags.id), false)
    yield* printRows(flags.json, letters, {
      json: (letter) => ({
        eventId: letter.eventId,
        reason: letter.reason,
        attempts: letter.attempts,
        deadAt: Format.iso(letter.deadAt),
        redeliveredAt: Option.getOrNull(Option.map(letter.redeliveredAt, Format.iso))
      }),
      empty: "No dead letters.",
      header: ["EVENT", "DEAD AT", "ATTEMPTS", "REDELIVERED", "REASON"],
      row: (letter) => [
        letter.eventId,
        Format.iso(letter.deadAt),
        String(letter.attempts),
        Option.match(letter.redeliveredAt, { onNone: () => "-", onSome: Format.iso }),
        letter.reason.replaceAll(/\s+/g, " ")
      ]
    })
  })
).pipe(Command.withDescription("List a subscription's dead letters"))

/** `annal webhooks redeliver <id>`. */
const redeliver = Command.make(
  "redeliver",
  one,
  Effect.fn("annal.webhooks.redeliver")(function* (flags) {
    const delivered = yield* withWebhooks(flags, (webhooks) => webhooks.redeliver(flags.id))
    yield* Console.log(
      flags.json
        ? Format.printJson({ delivered })
        : `Redelivered ${Format.count(delivered.length, "dead letter")}${delivered.length === 0 ? "" : `: ${delivered.join(", ")}`}.`
    )
  })
).pipe(Command.withDescription("Send the dead letters not yet redelivered again, from this process"))

/** `annal webhooks replay <id> --from <ISO time>`. */
const replay = Command.make(
  "replay",
  { ...one, from: Flag.String("from").pipe(Flag.withDescription("An ISO 8601 time: events recorded from it on")) },
  Effect.fn("annal.webhooks.replay")(function* (flags) {
    const from = yield* Option.match(DateTime.make(flags.from), {
      onNone: () =>
        Effect.fail(
          new AnnalError.InvalidQuery({
            field: "from",
            reason: `${JSON.stringify(flags.from)} is not an ISO 8601 time`
          })
        ),
      onSome: (instant) => Effect.succeed(DateTime.toUtc(instant))
    })
    const subscription = yield* withWebhooks(flags, (webhooks) => webhooks.replay(flags.id, from))
    yield* Console.log(
      flags.json
        ? Format.printJson(subscriptionJson(subscription))
        : `Replaying ${subscription.id} from ${Format.iso(from)}; it is ${subscription.state}, and the running service sends again in feed order.`
    )
  })
).pipe(Command.withDescription("Deliver again every event recorded from a time on, and activate the subscription"))

/** `annal webhooks log <id>`. */
const log = Command.make(
  "log",
  {
    ...one,
    limit: Flag.Int("limit").pipe(
      Flag.withDescription("At most this many attempts (1 to 1,000)"),
      Flag.withDefault(50)
    ),
    before: Flags.optionalString("before", "Only attempts logged before this attempt id (the next page)")
  },
  Effect.fn("annal.webhooks.log")(function* (flags) {
    const attempts = yield* withWebhooks(
      flags,
      (webhooks) => webhooks.attempts(flags.id, flags.limit, Option.getOrUndefined(flags.before)),
      false
    )
    yield* printRows(flags.json, attempts, {
      json: (attempt) => ({
        id: attempt.id,
        eventId: attempt.eventId,
        attempt: attempt.attempt,
        outcome: attempt.outcome,
        status: Option.getOrNull(attempt.status),
        latencyMs: Format.millis(attempt.latency),
        error: Option.getOrNull(attempt.error),
        at: Format.iso(attempt.at)
      }),
      empty: "No attempts logged.",
      header: ["ID", "AT", "EVENT", "TRY", "OUTCOME", "STATUS", "LATENCY", "ERROR"],
      row: (attempt) => [
        attempt.id,
        Format.iso(attempt.at),
        attempt.eventId,
        String(attempt.attempt),
        attempt.outcome,
        Option.match(attempt.status, { onNone: () => "-", onSome: String }),
        Format.age(attempt.latency),
        Option.getOrElse(attempt.error, () => "").replaceAll(/\s+/g, " ")
      ]
    })
  })
).pipe(Command.withDescription("The delivery log, newest first; --before pages back"))

/** `annal webhooks`: the subscriptions, and their subcommands. */
export const webhooks = Command.make(
  "webhooks",
  common,
  Effect.fn("annal.webhooks")(function* (flags) {
    const subscriptions = yield* withWebhooks(flags, (service) => service.list, false)
    yield* printRows(flags.json, subscriptions, {
      json: subscriptionJson,
      empty: "No webhook subscriptions.",
      header: ["ID", "STATE", "URL", "FILTER", "ON DEAD LETTER"],
      row: (subscription) => [
        subscription.id,
        subscription.state,
        subscription.url,
        filterText(subscription.filter),
        subscription.onDeadLetter
      ]
    })
  })
).pipe(
  Command.withDescription(
    "List webhook subscriptions; create, pause, resume, disable or delete one; its dead letters, replay and log"
  ),
  Command.withSubcommands([
    create,
    stateCommand("pause", "paused", "Pause a subscription: it stops delivering, and resumes where it stopped"),
    stateCommand("resume", "active", "Resume a subscription, after its last delivered or dead-lettered event"),
    stateCommand("disable", "disabled", "Disable a subscription"),
    remove,
    deadLetters,
    redeliver,
    replay,
    log
  ])
)
