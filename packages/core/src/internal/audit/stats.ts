/**
 * The statement of `AuditService.getChangeStats`: counts per time bucket (and group), the top actors, the most-changed
 * aggregates and the most frequent reasons over one time range, in one statement. One statement, not four, so that
 * every part counts the same snapshot (the totals agree) and the server's `statement_timeout` bounds the whole read;
 * each of its four branches is one range of the `("timestamp", global_position)` index (or of the user index when
 * the read is restricted to one user), aggregated as it is read, never materialized.
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Statement from "effect/sql/Statement"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import type { Filter } from "../../Filter.ts"
import { clauses } from "../filter.ts"

/** The width of a bucket. */
export type Bucket = "hour" | "day" | "week" | "month"

/** What the counts of a bucket are split by. */
export type GroupBy = "eventType" | "aggregateType" | "userId"

/** One row of the statement's answer, by part. */
export type StatsRow =
  | { readonly part: "bucket"; readonly start: DateTime.Utc; readonly key: string | undefined; readonly count: number }
  | { readonly part: "actor"; readonly userId: string; readonly count: number }
  | { readonly part: "entity"; readonly aggregateType: string; readonly aggregateId: string; readonly count: number }
  | { readonly part: "reason"; readonly reason: string | undefined; readonly count: number }

/**
 * Where buckets of a fixed width start: `date_bin` counts whole widths from this instant, a Monday at midnight UTC,
 * so days start at midnight UTC and weeks on Mondays (ISO 8601's week).
 */
export const binOrigin = DateTime.makeUnsafe("2001-01-01T00:00:00Z")

/** The width of the fixed buckets, in milliseconds (a month has none: `date_trunc` cuts it). */
export const bucketMillis: Record<Exclude<Bucket, "month">, number> = {
  hour: 3_600_000,
  day: 86_400_000,
  week: 604_800_000
}

const intervals: Record<Exclude<Bucket, "month">, string> = { hour: "1 hour", day: "1 day", week: "7 days" }

/** The bucket widths and groupings there are. */
export const buckets: ReadonlyArray<Bucket> = ["hour", "day", "week", "month"]
export const groupings: ReadonlyArray<GroupBy> = ["eventType", "aggregateType", "userId"]

/** The number of the calendar month (UTC) an instant falls in, counted from year 0. */
const monthIndex = (instant: DateTime.Utc): number =>
  DateTime.getPartUtc(instant, "year") * 12 + DateTime.getPartUtc(instant, "month")

/** How many buckets of `bucket` the range [`from`, `to`) touches, counting the partial first and last ones. */
export const bucketCount = (bucket: Bucket, from: DateTime.Utc, to: DateTime.Utc): number => {
  // The last instant in the range: `to` itself is outside it.
  const last = DateTime.subtract(to, { milliseconds: 1 })
  if (bucket === "month") return monthIndex(last) - monthIndex(from) + 1
  const width = bucketMillis[bucket]
  const index = (instant: DateTime.Utc) =>
    Math.floor((DateTime.toEpochMillis(instant) - DateTime.toEpochMillis(binOrigin)) / width)
  return index(last) - index(from) + 1
}

/** Builds the statistics statement for one events table. */
export const makeStats = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (
    filter: Filter,
    options: {
      readonly bucket: Bucket
      readonly groupBy: GroupBy | undefined
      readonly top: number
      /** The most bucket rows to read: one more than the answer may hold, to tell that it would hold more. */
      readonly seriesLimit: number
    }
  ): Effect.Effect<ReadonlyArray<StatsRow>, SqlError | StorageError> => {
    // Each branch gets its own copy of the conditions: a fragment compiles to fresh parameters wherever it is placed.
    const where = (): Statement.Fragment => sql.and(clauses(sql, filter))
    // Month buckets are calendar months in UTC, named explicitly: the session's time zone must not move them.
    const start =
      options.bucket === "month"
        ? sql`date_trunc('month', e."timestamp", 'UTC')`
        : sql`date_bin(${intervals[options.bucket]}::interval, e."timestamp", ${DateTime.formatIso(binOrigin)}::timestamptz)`
    const key =
      options.groupBy === "eventType"
        ? sql`e.event_type::text`
        : options.groupBy === "aggregateType"
          ? sql`e.aggregate_type::text`
          : options.groupBy === "userId"
            ? sql`e.user_id::text`
            : sql`NULL::text`
    return sql`(SELECT 'bucket' AS part, (extract(epoch FROM s.start) * 1000)::bigint::text AS start, s.key AS key,
    NULL::text AS aggregate_id, count(*)::text AS count
  FROM (SELECT ${start} AS start, ${key} AS key FROM ${table} e WHERE ${where()}) s
  GROUP BY s.start, s.key ORDER BY s.start, s.key LIMIT ${options.seriesLimit})
UNION ALL
(SELECT 'actor', NULL, e.user_id::text, NULL, count(*)::text FROM ${table} e WHERE ${where()}
  GROUP BY e.user_id ORDER BY count(*) DESC, e.user_id LIMIT ${options.top})
UNION ALL
(SELECT 'entity', NULL, e.aggregate_type::text, e.aggregate_id::text, count(*)::text FROM ${table} e WHERE ${where()}
  GROUP BY e.aggregate_type, e.aggregate_id ORDER BY count(*) DESC, e.aggregate_type, e.aggregate_id LIMIT ${options.top})
UNION ALL
(SELECT 'reason', NULL, e.metadata ->> 'reason', NULL, count(*)::text FROM ${table} e WHERE ${where()}
  GROUP BY e.metadata ->> 'reason' ORDER BY count(*) DESC, e.metadata ->> 'reason' NULLS LAST LIMIT ${options.top})`.withoutTransform.pipe(
      Effect.flatMap(decodeRows)
    )
  }
}

const decodeRows = (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<StatsRow>, StorageError> =>
  decodeStatsRows(rows).pipe(
    Effect.map((decoded) => decoded.map(fromRow)),
    Effect.mapError(
      (error) =>
        new StorageError({
          operation: "AuditService.getChangeStats",
          reason: new UnexpectedRow(),
          detail: error.message
        })
    )
  )

const fromRow = (row: typeof StatsRowRow.Type): StatsRow => {
  const count = Number(row.count)
  switch (row.part) {
    case "bucket":
      return { part: "bucket", start: DateTime.makeUnsafe(Number(row.start)), key: row.key ?? undefined, count }
    case "actor":
      return { part: "actor", userId: row.key ?? "", count }
    case "entity":
      return { part: "entity", aggregateType: row.key ?? "", aggregateId: row.aggregate_id ?? "", count }
    case "reason":
      return { part: "reason", reason: row.key ?? undefined, count }
  }
}

const StatsRowRow = Schema.Struct({
  part: Schema.Literals(["bucket", "actor", "entity", "reason"]),
  start: Schema.NullOr(Schema.String),
  key: Schema.NullOr(Schema.String),
  aggregate_id: Schema.NullOr(Schema.String),
  count: Schema.String
})

const decodeStatsRows = Schema.decodeUnknownEffect(Schema.Array(StatsRowRow))
