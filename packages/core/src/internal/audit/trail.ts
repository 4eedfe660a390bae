/**
 * The statements of the correlation and causation trails: one correlation id's events in commit order (the feed's),
 * over the correlation index; and the events caused by any of a set of events, over the causation index.
 */
import * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { StorageError } from "../../AnnalError.ts"
import type * as Event from "../../Event.ts"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import { commitObjects } from "../feed/commitOrder.ts"
import { decodeRows, eventColumns } from "../store/read.ts"

/** A place in commit order: the transaction's commit number (0 before the commit order existed) and the position. */
export interface TrailPosition {
  readonly commit: bigint
  readonly globalPosition: bigint
}

/** An event and its place in commit order. */
export interface TrailEntry {
  readonly event: Event.RawEvent
  readonly position: TrailPosition
}

/** Builds the correlation statement for one events table. */
export const makeCorrelation = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  const commits = sql(commitObjects(config).commits)
  return (
    correlationId: string,
    after: TrailPosition | undefined,
    limit: number
  ): Effect.Effect<ReadonlyArray<TrailEntry>, SqlError | StorageError> => {
    // Events stored before migration 6 took no commit number: they come first, in their log order, as the feed reads
    // them.
    const commit = sql`COALESCE(c.commit_sequence, 0)`
    const range =
      after === undefined
        ? sql`TRUE`
        : sql`(${commit}, e.global_position) > (${after.commit.toString()}::bigint, ${after.globalPosition.toString()}::bigint)`
    return sql`SELECT ${eventColumns(sql)}, ${commit}::text AS commit_sequence
FROM ${table} e LEFT JOIN ${commits} c ON c.transaction_id = e.transaction_id
WHERE e.correlation_id = ${correlationId} AND ${range}
ORDER BY ${commit} ASC, e.global_position ASC LIMIT ${limit}`.withoutTransform.pipe(
      Effect.flatMap((rows) =>
        Effect.map(decodeRows(rows, "AuditService.getCorrelation"), (events) =>
          events.map((event, index) => ({
            event,
            position: {
              commit: BigInt(String((rows[index] as { readonly commit_sequence: unknown }).commit_sequence)),
              globalPosition: event.globalPosition
            }
          }))
        )
      )
    )
  }
}

/** Builds the causation statement for one events table: at most `limit` events caused by any of `eventIds`. */
export const makeCaused = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (
    eventIds: ReadonlyArray<string>,
    limit: number
  ): Effect.Effect<ReadonlyArray<Event.RawEvent>, SqlError | StorageError> =>
    sql`SELECT ${eventColumns(sql)} FROM ${table} e
WHERE e.causation_id IN ${sql.in(eventIds)} ORDER BY e.global_position ASC LIMIT ${limit}`.withoutTransform.pipe(
      Effect.flatMap((rows) => decodeRows(rows, "AuditService.getEffects"))
    )
}

/** Builds the statement that reads one event by id. */
export const makeEventById = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  return (eventId: string): Effect.Effect<ReadonlyArray<Event.RawEvent>, SqlError | StorageError> =>
    sql`SELECT ${eventColumns(sql)} FROM ${table} e WHERE e.id = ${eventId}::uuid`.withoutTransform.pipe(
      Effect.flatMap((rows) => decodeRows(rows, "AuditService.getEffects"))
    )
}
