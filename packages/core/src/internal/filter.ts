/** A `Filter`'s conditions as SQL, on the events table aliased `e`: the one place every read builds them. */
import * as DateTime from "effect/DateTime"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import type { Filter } from "../Filter.ts"

/** The conditions of a checked filter (`Filter.validate`), on the events table aliased `e`. */
export const clauses = (sql: SqlClient.SqlClient, filter: Filter): Array<Statement.Fragment> => {
  const where: Array<Statement.Fragment> = []
  if (filter.eventTypes !== undefined) where.push(sql`e.event_type IN ${sql.in(filter.eventTypes)}`)
  if (filter.aggregateType !== undefined) where.push(sql`e.aggregate_type = ${filter.aggregateType}`)
  if (filter.aggregateId !== undefined) where.push(sql`e.aggregate_id = ${filter.aggregateId}::uuid`)
  if (filter.userId !== undefined) where.push(sql`e.user_id = ${filter.userId}::uuid`)
  if (filter.correlationId !== undefined) where.push(sql`e.correlation_id = ${filter.correlationId}`)
  if (filter.from !== undefined) where.push(sql`e."timestamp" >= ${DateTime.formatIso(filter.from)}::timestamptz`)
  if (filter.to !== undefined) where.push(sql`e."timestamp" < ${DateTime.formatIso(filter.to)}::timestamptz`)
  return where
}
