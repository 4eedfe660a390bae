/**
 * `annal status`: what an operator looks at first. The feed's fence and what holds it back (the transactions in
 * their commit, from `pg_stat_activity`: pid, application, state, age, query), each consumer's position, lag and
 * lease, the last digest, and the counts; as text, or as JSON with `--json`.
 *
 * It only reads, and it answers while a commit holds the feed back: that is when it is needed most.
 */
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Command from "effect/cli/Command"
import { Consumers, Digest, EventStore, Feed } from "@annal/core"
import * as Database from "../Database.ts"
import * as Flags from "./flags.ts"
import * as Format from "./format.ts"

/** Everything `annal status` reports, read at one moment. */
interface Report {
  readonly table: string
  readonly database: string
  readonly at: DateTime.Utc
  readonly feed: Feed.Status
  readonly consumers: ReadonlyArray<Consumers.Lag>
  readonly digest: Digest.Document | undefined
  readonly events: number
}

const read = Effect.fnUntraced(function* (table: string, database: string) {
  const feed = yield* Feed.Feed
  const consumers = yield* Consumers.Consumers
  const store = yield* EventStore.EventStore
  const [status, lag, digest, events] = yield* Effect.all(
    [feed.status, consumers.lag, Digest.latest(feed.table), store.count({})],
    { concurrency: "unbounded" }
  )
  const at = DateTime.makeUnsafe(yield* Clock.currentTimeMillis)
  return { table, database, at, feed: status, consumers: lag, digest, events } satisfies Report
})

/** `annal status`: the feed, the consumers, the last digest and the counts. */
export const status = Command.make(
  "status",
  { ...Flags.database, json: Flags.json },
  Effect.fn("annal.status")(function* (flags) {
    const database = yield* Flags.resolveDatabase(flags)
    const options = { schema: flags.schema, table: flags.table }
    const services = Layer.mergeAll(Consumers.layer, EventStore.layer(options)).pipe(
      Layer.provideMerge(Feed.layer(options)),
      Layer.provideMerge(Database.layer(database))
    )
    const report = yield* read(`${flags.schema}.${flags.table}`, Database.describe(database)).pipe(
      Effect.provide(services)
    )
    yield* Console.log(flags.json ? Format.printJson(toJson(report)) : toText(report))
  })
).pipe(
  Command.withDescription(
    "Show the feed's fence and what holds it, each consumer's lag and lease, the last digest, and the counts"
  )
)

/** A consumer in JSON: its checkpoint, lag and lease. */
export const consumerJson = (consumer: Consumers.Lag) => ({
  name: consumer.name,
  checkpoint: Format.checkpointJson(consumer.checkpoint),
  eventsBehind: consumer.eventsBehind,
  oldestUnprocessedAgeMs: Format.millisOrNull(consumer.oldestUnprocessedAge),
  owner: Option.getOrNull(consumer.owner),
  leaseExpiresAt: Option.isSome(consumer.owner)
    ? Option.getOrNull(Option.map(consumer.leaseExpiresAt, Format.iso))
    : null,
  checkpointUpdatedAt: Format.iso(consumer.checkpointUpdatedAt)
})

/** The JSON form: stable keys, ISO times, numbers; ages in milliseconds. */
export const toJson = (report: Report) => ({
  table: report.table,
  database: report.database,
  at: Format.iso(report.at),
  feed: {
    fence: Number(report.feed.fence),
    lastCommit: Number(report.feed.lastCommit),
    head: Format.checkpointJson(report.feed.head),
    pending: report.feed.pending,
    oldestPendingAgeMs: Format.millisOrNull(report.feed.oldestPendingAge),
    heldBy: report.feed.committing.map((transaction) => ({
      pid: transaction.pid,
      applicationName: Option.getOrNull(transaction.applicationName),
      database: Option.getOrNull(transaction.database),
      state: Option.getOrNull(transaction.state),
      transactionId: Option.getOrNull(Option.map(transaction.transactionId, Number)),
      ageMs: Format.millis(transaction.age),
      query: Option.getOrNull(transaction.query)
    }))
  },
  consumers: report.consumers.map(consumerJson),
  digest:
    report.digest === undefined
      ? null
      : {
          id: report.digest.id,
          createdAt: report.digest.createdAt,
          ageMs: digestAgeMillis(report.digest, report.at),
          checkpoint: Format.checkpointJson(digestCheckpoint(report.digest)),
          streams: report.digest.streams,
          events: report.digest.events
        },
  counts: {
    events: report.events,
    consumers: report.consumers.length,
    consumersBehind: report.consumers.filter((consumer) => consumer.eventsBehind > 0).length,
    digests: report.digest?.id ?? 0
  }
})

const digestCheckpoint = (document: Digest.Document) => ({
  commitSequence: BigInt(document.checkpoint.commitSequence),
  globalPosition: BigInt(document.checkpoint.globalPosition)
})

const digestAgeMillis = (document: Digest.Document, at: DateTime.Utc): number | null =>
  Option.match(DateTime.make(document.createdAt), {
    onNone: () => null,
    onSome: (created) => Math.max(0, DateTime.toEpochMillis(at) - DateTime.toEpochMillis(created))
  })

/** The text form, in sections an operator scans from the top. */
export const toText = (report: Report): string => {
  const lines: Array<string> = [`Annal status of ${report.table} on ${report.database}, at ${Format.iso(report.at)}`]
  const { feed } = report
  lines.push(
    "",
    "Feed",
    `  head      ${Format.checkpoint(feed.head)}`,
    `  fence     commit ${feed.fence}${feed.lastCommit > feed.fence ? ` (last taken ${feed.lastCommit})` : ""}`,
    `  pending   ${
      feed.pending === 0
        ? "none: readers see every committed event"
        : `${Format.count(feed.pending, "event")} committed but held back${Option.match(feed.oldestPendingAge, {
            onNone: () => "",
            onSome: (age) => `, the oldest for ${Format.age(age)}`
          })}`
    }`
  )
  if (feed.committing.length === 0) {
    lines.push("  held by   nothing")
  } else {
    for (const transaction of feed.committing) {
      const application = Option.getOrElse(transaction.applicationName, () => "")
      lines.push(
        `  held by   pid ${transaction.pid}${application === "" ? "" : ` (${application})`}${Option.match(
          transaction.database,
          { onNone: () => "", onSome: (name) => ` on ${name}` }
        )}, ${Option.getOrElse(transaction.state, () => "state unknown")} for ${Format.age(transaction.age)}${Option.match(
          transaction.transactionId,
          { onNone: () => "", onSome: (id) => `, transaction ${id}` }
        )}`,
        `            query: ${Option.getOrElse(transaction.query, () => "(hidden: the role may not see it)").replaceAll(/\s+/g, " ")}`
      )
    }
  }

  lines.push("", report.consumers.length === 0 ? "Consumers: none" : `Consumers (${report.consumers.length})`)
  const width = Math.max(0, ...report.consumers.map((consumer) => consumer.name.length))
  for (const consumer of report.consumers) {
    const behind =
      consumer.eventsBehind === 0
        ? "caught up"
        : `${Format.count(consumer.eventsBehind, "event")} behind${Option.match(consumer.oldestUnprocessedAge, {
            onNone: () => "",
            onSome: (age) => `, the oldest ${Format.age(age)} old`
          })}`
    const lease = Option.match(consumer.owner, {
      onNone: () => "no lease held (not running)",
      onSome: (owner) =>
        `lease held by ${owner}${Option.match(consumer.leaseExpiresAt, {
          onNone: () => "",
          onSome: (expires) =>
            ` for ${Format.age(Duration.millis(DateTime.toEpochMillis(expires) - DateTime.toEpochMillis(report.at)))} more`
        })}`
    })
    lines.push(`  ${consumer.name.padEnd(width)}  ${behind}; at ${Format.checkpoint(consumer.checkpoint)}; ${lease}`)
  }

  lines.push("", "Last digest")
  if (report.digest === undefined) {
    lines.push("  none yet (annal digest makes one)")
  } else {
    const document = report.digest
    const ageMillis = digestAgeMillis(document, report.at)
    lines.push(
      `  #${document.id}, made ${document.createdAt}${ageMillis === null ? "" : ` (${Format.age(Duration.millis(ageMillis))} ago)`}`,
      `  covers ${Format.count(document.events, "event")} in ${Format.count(document.streams, "stream")}, up to ${Format.checkpoint(digestCheckpoint(document))} (annal verify checks it)`
    )
  }

  lines.push(
    "",
    "Counts",
    `  ${Format.count(report.events, "event")}, ${Format.count(report.consumers.length, "consumer")}, ${Format.count(report.digest?.id ?? 0, "digest")}`
  )
  return lines.join("\n")
}
