/**
 * The feed's statements. Rows are read in `(transaction_id, global_position)` order and only below the fence,
 * `pg_snapshot_xmin(pg_current_snapshot())`: every transaction with a smaller id has ended, and any transaction
 * still to write gets a larger one, so no row can ever appear behind a position already read. `global_position`
 * alone has no such property: it is taken at insert, and a transaction that inserts first may commit last.
 *
 * Both id columns are selected as text, so that neither driver's integer parsing matters, and compared in SQL.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { fromSqlError } from "./sqlErrors.ts"
import type * as Statement from "effect/sql/Statement"
import { StorageError } from "../AnnalError.ts"
import * as Event from "../Event.ts"
import type { EventTableConfig } from "../EventTable.ts"
import { qualify } from "../EventTable.ts"
import { decodeRows, eventColumns } from "./read.ts"

/** A feed position: everything at or before it, in feed order. */
export interface Position {
  readonly transactionId: bigint
  readonly globalPosition: bigint
}

/** Which events a feed reads; all optional, and combined. */
export interface FeedFilter {
  readonly eventTypes?: ReadonlyArray<string> | undefined
  readonly aggregateTypes?: ReadonlyArray<string> | undefined
  readonly aggregateId?: string | undefined
  readonly userId?: string | undefined
  readonly correlationId?: string | undefined
}

/** Whether the filter leaves any event out. */
export const isFiltered = (filter: FeedFilter): boolean =>
  filter.eventTypes !== undefined ||
  filter.aggregateTypes !== undefined ||
  filter.aggregateId !== undefined ||
  filter.userId !== undefined ||
  filter.correlationId !== undefined

/** The oldest transaction that holds a transaction id, as `pg_stat_activity` shows it. */
export interface OpenTransactionRow {
  readonly pid: number
  readonly database: string | null
  readonly applicationName: string | null
  readonly state: string | null
  readonly transactionId: string
  readonly ageMillis: number
  readonly query: string | null
}

/** Builds the feed's statements for one events table; database failures are `StorageError`s named after them. */
export const makeFeedRead = (sql: SqlClient.SqlClient, config: EventTableConfig) => {
  const table = sql(qualify(config, config.table))
  const after = (position: Position) =>
    sql`(e.transaction_id, e.global_position) > (${position.transactionId.toString()}::xid8, ${position.globalPosition.toString()}::bigint)`
  const below = (fence: bigint) => sql`e.transaction_id < ${fence.toString()}::xid8`

  /** The fence: every row of a smaller transaction id is committed or gone for good. */
  const fence: Effect.Effect<bigint, SqlError | StorageError> = sql<{
    readonly fence: string
  }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS fence`.withoutTransform.pipe(
    Effect.flatMap((rows) => decode(FenceRows, rows)),
    Effect.map((rows) => BigInt(rows[0]?.fence ?? "0"))
  )

  /** At most `limit` matching events after `from` and below `fence`, in feed order. */
  const page = (
    filter: FeedFilter,
    from: Position,
    fenceId: bigint,
    limit: number
  ): Effect.Effect<ReadonlyArray<Event.RawEvent>, SqlError | StorageError> =>
    sql`SELECT ${eventColumns(sql)}
FROM ${table} e
WHERE ${sql.and([after(from), below(fenceId), ...clauses(sql, filter)])}
ORDER BY e.transaction_id, e.global_position
LIMIT ${limit}`.withoutTransform.pipe(Effect.flatMap((rows) => decodeRows(rows, "Feed.read")))

  /** The position of the last event after `from` and below `fence`, whatever its type. */
  const lastBelow = (from: Position, fenceId: bigint): Effect.Effect<Position | undefined, SqlError | StorageError> =>
    sql`SELECT transaction_id::text AS transaction_id, global_position::text AS global_position
FROM ${table} e WHERE ${after(from)} AND ${below(fenceId)}
ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(PositionRows, rows)),
      Effect.map((rows) => (rows[0] === undefined ? undefined : toPosition(rows[0])))
    )

  /** How many matching events lie after `from` and below `fence`. */
  const count = (filter: FeedFilter, from: Position, fenceId: bigint): Effect.Effect<number, SqlError | StorageError> =>
    sql`SELECT count(*)::text AS count FROM ${table} e
WHERE ${sql.and([after(from), below(fenceId), ...clauses(sql, filter)])}`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CountRows, rows)),
      Effect.map((rows) => Number(rows[0]?.count ?? "0"))
    )

  /** The committed events at or above the fence, which readers cannot pass yet, and the age of the oldest. */
  const pending = (fenceId: bigint): Effect.Effect<BacklogRow, SqlError | StorageError> =>
    sql`SELECT count(*)::text AS count,
  (extract(epoch FROM clock_timestamp() - min(e.recorded_at)) * 1000)::float8 AS oldest_millis
FROM ${table} e WHERE e.transaction_id >= ${fenceId.toString()}::xid8`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(BacklogRows, rows)),
      Effect.map((rows) => rows[0] ?? { count: "0", oldest_millis: null })
    )

  /**
   * The running transaction with the smallest transaction id on the whole server, which is what holds the fence:
   * any writing transaction does, whether or not it touches the events table.
   */
  const oldestTransaction: Effect.Effect<OpenTransactionRow | undefined, SqlError | StorageError> = sql`SELECT pid,
  datname::text AS database, application_name, state, backend_xid::text AS transaction_id,
  COALESCE((extract(epoch FROM clock_timestamp() - xact_start) * 1000)::float8, 0) AS age_millis,
  left(query, 500) AS query
FROM pg_stat_activity WHERE backend_xid IS NOT NULL
ORDER BY age(backend_xid) DESC LIMIT 1`.withoutTransform.pipe(
    Effect.flatMap((rows) => decode(OpenTransactionRows, rows)),
    Effect.map((rows) => {
      const row = rows[0]
      return row === undefined
        ? undefined
        : {
            pid: row.pid,
            database: row.database,
            applicationName: row.application_name,
            state: row.state,
            transactionId: row.transaction_id,
            ageMillis: row.age_millis,
            query: row.query
          }
    })
  )

  return {
    fence: stored("Feed.fence", fence),
    page: (filter: FeedFilter, from: Position, fenceId: bigint, limit: number) =>
      stored("Feed.page", page(filter, from, fenceId, limit)),
    lastBelow: (from: Position, fenceId: bigint) => stored("Feed.lastBelow", lastBelow(from, fenceId)),
    count: (filter: FeedFilter, from: Position, fenceId: bigint) => stored("Feed.count", count(filter, from, fenceId)),
    pending: (fenceId: bigint) => stored("Feed.pending", pending(fenceId)),
    oldestTransaction: stored("Feed.oldestTransaction", oldestTransaction)
  }
}

const stored = <A>(
  operation: string,
  effect: Effect.Effect<A, SqlError | StorageError>
): Effect.Effect<A, StorageError> =>
  Effect.catchTag(effect, "SqlError", (error) => Effect.fail(fromSqlError(operation, error)))

const clauses = (sql: SqlClient.SqlClient, filter: FeedFilter): Array<Statement.Fragment> => {
  const where: Array<Statement.Fragment> = []
  if (filter.eventTypes !== undefined) where.push(sql`e.event_type IN ${sql.in(filter.eventTypes)}`)
  if (filter.aggregateTypes !== undefined) where.push(sql`e.aggregate_type IN ${sql.in(filter.aggregateTypes)}`)
  if (filter.aggregateId !== undefined) where.push(sql`e.aggregate_id = ${filter.aggregateId}::uuid`)
  if (filter.userId !== undefined) where.push(sql`e.user_id = ${filter.userId}::uuid`)
  if (filter.correlationId !== undefined) where.push(sql`e.correlation_id = ${filter.correlationId}`)
  return where
}

/** Decodes rows the database returned; a row of another shape is a storage fault, not the caller's. */
export const decode = <A, I>(schema: Schema.Codec<A, I>, rows: unknown): Effect.Effect<A, StorageError> =>
  Schema.decodeUnknownEffect(schema)(rows).pipe(
    Effect.mapError(
      (error) =>
        new StorageError({ operation: "Feed.read", reason: "UnexpectedRow", detail: error.message, retryable: false })
    )
  )

export const toPosition = (row: { readonly transaction_id: string; readonly global_position: string }): Position => ({
  transactionId: BigInt(row.transaction_id),
  globalPosition: BigInt(row.global_position)
})

const FenceRows = Schema.Array(Schema.Struct({ fence: Schema.String }))
const PositionRows = Schema.Array(Schema.Struct({ transaction_id: Schema.String, global_position: Schema.String }))
const CountRows = Schema.Array(Schema.Struct({ count: Schema.String }))
const BacklogRow = Schema.Struct({ count: Schema.String, oldest_millis: Schema.NullOr(Schema.Number) })
type BacklogRow = typeof BacklogRow.Type
const BacklogRows = Schema.Array(BacklogRow)
const OpenTransactionRows = Schema.Array(
  Schema.Struct({
    pid: Schema.Number,
    database: Schema.NullOr(Schema.String),
    application_name: Schema.NullOr(Schema.String),
    state: Schema.NullOr(Schema.String),
    transaction_id: Schema.String,
    age_millis: Schema.Number,
    query: Schema.NullOr(Schema.String)
  })
)
