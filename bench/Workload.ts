/**
 * The write workload the append and audit measurements share (`run.ts` and `profileAppend.ts`): the event type they
 * append, the hand-written INSERT of its row, and the business table of the audit section with its one-row UPDATE.
 */
import * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"

/** The event every write measurement appends. */
export const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String })
})

const uuid = () => crypto.randomUUID()

/** The row a hand-written INSERT writes into `table`: the same columns Annal writes. */
export const insertOne = (
  sql: SqlClient.SqlClient,
  table: string,
  aggregateId: string,
  userId: string,
  version: number,
  gstin: string
) =>
  sql`INSERT INTO ${sql(table)} (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
    metadata, stream_version)
    VALUES (${uuid()}::uuid, 'organization.gst.added', ${aggregateId}::uuid, 'organization', ${userId}::uuid,
      ${new Date().toISOString()}::timestamptz, 1, ${JSON.stringify({ gstin, state: "KA" })}::jsonb, '{}'::jsonb,
      ${version})`

/**
 * The audit section's business table in `schema`, 100 accounts, and the business write: one UPDATE of account
 * `i % 100`. The account ids double as the aggregate ids of the events emitted beside it.
 */
export const makeAccounts = Effect.fnUntraced(function* (sql: SqlClient.SqlClient, schema: string) {
  const accounts = `${schema}.accounts`
  yield* sql`CREATE TABLE ${sql(accounts)} (id uuid PRIMARY KEY, balance bigint NOT NULL)`
  const ids = Arr.makeBy(100, () => uuid())
  yield* sql`INSERT INTO ${sql(accounts)} ${sql.insert(Arr.map(ids, (id) => ({ id, balance: 0 })))}`
  const update = (i: number) => sql`UPDATE ${sql(accounts)} SET balance = balance + 1 WHERE id = ${ids[i % 100]!}::uuid`
  return { ids, update }
})
