/**
 * The statements of webhook subscriptions, their delivery log and their dead letters, in three tables beside the
 * events table (`<table>_webhooks`, `<table>_webhook_attempts`, `<table>_webhook_dead_letters`), created by
 * `migrate` when the service is built. Times are read as epoch milliseconds, the same on PostgreSQL and PGlite; the
 * mappers at the end turn each row into the service's public type.
 */
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import type { Attempt, DeadLetter, State, Subscription, SubscriptionFilter } from "../Webhooks.ts"

/** Where the tables live. */
export interface Tables {
  readonly schema: string
  readonly table: string
}

/** A subscription's row. */
export interface SubscriptionRow {
  readonly id: string
  readonly url: string
  readonly filter: string
  readonly secrets: string
  readonly state: string
  readonly on_dead_letter: string
  readonly max_attempts: number
  readonly replay_from: number | null
  readonly revision: number
  readonly generation: number
  readonly created_at: number
  readonly updated_at: number
}

/** A secret as the `secrets` column holds it: the service signs with it, and shows only its id. */
export interface StoredSecret {
  readonly id: string
  readonly secret: string
  readonly createdAt: number
}

/** One attempt's row. */
export interface AttemptRow {
  readonly id: string
  readonly subscription_id: string
  readonly event_id: string
  readonly attempt: number
  readonly outcome: string
  readonly status: number | null
  readonly latency_ms: number
  readonly error: string | null
  readonly at: number
}

/** One dead letter's row. */
export interface DeadLetterRow {
  readonly subscription_id: string
  readonly event_id: string
  readonly reason: string
  readonly attempts: number
  readonly dead_at: number
  readonly redelivered_at: number | null
}

const millis = (column: string) => `(extract(epoch from ${column}) * 1000)::float8`

/** Builds the statements over one events table's webhook tables. */
export const make = (sql: SqlClient.SqlClient, tables: Tables) => {
  const name = (suffix: string) => `${tables.schema}.${tables.table}_${suffix}`
  const subscriptions = sql(name("webhooks"))
  const attempts = sql(name("webhook_attempts"))
  const deadLetters = sql(name("webhook_dead_letters"))
  // The consumers table of the core (migration 3): a subscription's checkpoint is its consumer's row there.
  const consumers = sql(name("consumers"))
  const subscriptionColumns = sql.literal(`id::text AS id, url, filter::text AS filter, secrets::text AS secrets, state,
    on_dead_letter, max_attempts, ${millis("replay_from")} AS replay_from, revision, generation, ${millis("created_at")} AS created_at,
    ${millis("updated_at")} AS updated_at`)

  const migrate = [
    sql`
    CREATE TABLE IF NOT EXISTS ${subscriptions} (
      id uuid PRIMARY KEY,
      url text NOT NULL,
      filter jsonb NOT NULL,
      secrets jsonb NOT NULL,
      state text NOT NULL CHECK (state IN ('active', 'paused', 'disabled')),
      on_dead_letter text NOT NULL CHECK (on_dead_letter IN ('pause', 'disable')),
      max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
      replay_from timestamptz,
      revision integer NOT NULL DEFAULT 1,
      generation integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`,
    sql`CREATE TABLE IF NOT EXISTS ${attempts} (
      id bigserial PRIMARY KEY,
      subscription_id uuid NOT NULL,
      event_id uuid NOT NULL,
      attempt integer NOT NULL,
      outcome text NOT NULL,
      status integer,
      latency_ms integer NOT NULL,
      error text,
      at timestamptz NOT NULL DEFAULT clock_timestamp()
    )`,
    sql`CREATE INDEX IF NOT EXISTS ${sql(`${tables.table}_webhook_attempts_subscription`)}
      ON ${attempts} (subscription_id, id)`,
    sql`CREATE TABLE IF NOT EXISTS ${deadLetters} (
      subscription_id uuid NOT NULL,
      event_id uuid NOT NULL,
      reason text NOT NULL,
      attempts integer NOT NULL,
      dead_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      redelivered_at timestamptz,
      PRIMARY KEY (subscription_id, event_id)
    )`
  ]

  return {
    migrate,
    insert: (row: {
      readonly id: string
      readonly url: string
      readonly filter: string
      readonly secrets: string
      readonly onDeadLetter: string
      readonly maxAttempts: number
    }) => sql<SubscriptionRow>`INSERT INTO ${subscriptions} (id, url, filter, secrets, state, on_dead_letter, max_attempts)
      VALUES (${row.id}::uuid, ${row.url}, ${row.filter}::jsonb, ${row.secrets}::jsonb, 'active', ${row.onDeadLetter},
        ${row.maxAttempts})
      RETURNING ${subscriptionColumns}`,
    get: (id: string) =>
      sql<SubscriptionRow>`SELECT ${subscriptionColumns} FROM ${subscriptions} WHERE id = ${id}::uuid`,
    /** Locks the row for a change, so that two changes of one subscription apply one after the other. */
    lock: (id: string) =>
      sql<SubscriptionRow>`SELECT ${subscriptionColumns} FROM ${subscriptions} WHERE id = ${id}::uuid FOR UPDATE`,
    list: sql<SubscriptionRow>`SELECT ${subscriptionColumns} FROM ${subscriptions} ORDER BY created_at, id`,
    update: (row: {
      readonly id: string
      readonly url: string
      readonly filter: string
      readonly secrets: string
      readonly state: string
      readonly onDeadLetter: string
      readonly maxAttempts: number
      readonly replayFrom: number | null
      readonly replayed: boolean
    }) => sql<SubscriptionRow>`UPDATE ${subscriptions} SET url = ${row.url}, filter = ${row.filter}::jsonb,
        secrets = ${row.secrets}::jsonb, state = ${row.state}, on_dead_letter = ${row.onDeadLetter},
        max_attempts = ${row.maxAttempts},
        replay_from = CASE WHEN ${row.replayFrom}::float8 IS NULL THEN NULL
          ELSE to_timestamp(${row.replayFrom}::float8 / 1000) END,
        revision = revision + 1, generation = generation + ${row.replayed ? 1 : 0},
        updated_at = clock_timestamp()
      WHERE id = ${row.id}::uuid
      RETURNING ${subscriptionColumns}`,
    /** Sets the state when it is still `from` (the delivery's own pause must not undo an operator's change). */
    setStateIf: (id: string, from: string, to: string) =>
      sql`UPDATE ${subscriptions} SET state = ${to}, revision = revision + 1, updated_at = clock_timestamp()
        WHERE id = ${id}::uuid AND state = ${from}`,
    remove: (id: string) => sql`DELETE FROM ${subscriptions} WHERE id = ${id}::uuid`,
    /**
     * Drops the checkpoints and leases of a subscription's consumers (`webhook:<id>` and `webhook:<id>:<generation>`),
     * but `keep`'s: those of the generations a replay ended, or all of them when it is deleted.
     */
    dropConsumers: (id: string, keep: string | null) =>
      sql`DELETE FROM ${consumers}
        WHERE (name = ${`webhook:${id}`} OR name LIKE ${`webhook:${id}:%`}) AND name IS DISTINCT FROM ${keep}`,
    removeAttempts: (id: string) => sql`DELETE FROM ${attempts} WHERE subscription_id = ${id}::uuid`,
    removeDeadLetters: (id: string) => sql`DELETE FROM ${deadLetters} WHERE subscription_id = ${id}::uuid`,
    logAttempt: (row: {
      readonly subscriptionId: string
      readonly eventId: string
      readonly attempt: number
      readonly outcome: string
      readonly status: number | null
      readonly latencyMs: number
      readonly error: string | null
    }) => sql`INSERT INTO ${attempts} (subscription_id, event_id, attempt, outcome, status, latency_ms, error)
      VALUES (${row.subscriptionId}::uuid, ${row.eventId}::uuid, ${row.attempt}, ${row.outcome}, ${row.status},
        ${row.latencyMs}, ${row.error})`,
    /** A page of the log, newest first: the attempts before `before` (an attempt's id), or the latest. */
    attempts: (
      id: string,
      limit: number,
      before: string | undefined
    ) => sql<AttemptRow>`SELECT id::text AS id, subscription_id::text AS subscription_id,
        event_id::text AS event_id, attempt, outcome, status, latency_ms, error, ${sql.literal(millis("at"))} AS at
      FROM ${attempts} WHERE subscription_id = ${id}::uuid
        ${before === undefined ? sql.literal("") : sql`AND id < ${before}::bigint`}
      ORDER BY id DESC LIMIT ${limit}`,
    deadLetter: (row: {
      readonly subscriptionId: string
      readonly eventId: string
      readonly reason: string
      readonly attempts: number
    }) =>
      sql`INSERT INTO ${deadLetters} (subscription_id, event_id, reason, attempts)
        VALUES (${row.subscriptionId}::uuid, ${row.eventId}::uuid, ${row.reason}, ${row.attempts})
        ON CONFLICT (subscription_id, event_id) DO UPDATE SET reason = excluded.reason, attempts = excluded.attempts,
          dead_at = clock_timestamp(), redelivered_at = NULL`,
    deadLetters: (
      id: string
    ) => sql<DeadLetterRow>`SELECT subscription_id::text AS subscription_id, event_id::text AS event_id,
        reason, attempts, ${sql.literal(millis("dead_at"))} AS dead_at, ${sql.literal(millis("redelivered_at"))} AS redelivered_at
      FROM ${deadLetters} WHERE subscription_id = ${id}::uuid ORDER BY dead_at, event_id`,
    redelivered: (id: string, eventId: string) =>
      sql`UPDATE ${deadLetters} SET redelivered_at = clock_timestamp()
        WHERE subscription_id = ${id}::uuid AND event_id = ${eventId}::uuid`
  }
}

/** A subscription's row as the public type: its secrets by id only. */
export const toSubscription = (row: SubscriptionRow): Subscription => ({
  id: row.id,
  url: row.url,
  filter: JSON.parse(row.filter) as SubscriptionFilter,
  state: row.state as State,
  onDeadLetter: row.on_dead_letter as "pause" | "disable",
  maxAttempts: row.max_attempts,
  secrets: (JSON.parse(row.secrets) as ReadonlyArray<StoredSecret>).map((secret) => ({
    id: secret.id,
    createdAt: DateTime.makeUnsafe(secret.createdAt)
  })),
  replayFrom: Option.map(Option.fromNullishOr(row.replay_from), (at) => DateTime.makeUnsafe(at)),
  revision: row.revision,
  createdAt: DateTime.makeUnsafe(row.created_at),
  updatedAt: DateTime.makeUnsafe(row.updated_at)
})

/** An attempt's row as the public type. */
export const toAttempt = (row: AttemptRow): Attempt => ({
  id: row.id,
  subscriptionId: row.subscription_id,
  eventId: row.event_id,
  attempt: row.attempt,
  outcome: row.outcome as Attempt["outcome"],
  status: Option.fromNullishOr(row.status),
  latency: Duration.millis(row.latency_ms),
  error: Option.fromNullishOr(row.error),
  at: DateTime.makeUnsafe(row.at)
})

/** A dead letter's row as the public type. */
export const toDeadLetter = (row: DeadLetterRow): DeadLetter => ({
  subscriptionId: row.subscription_id,
  eventId: row.event_id,
  reason: row.reason,
  attempts: row.attempts,
  deadAt: DateTime.makeUnsafe(row.dead_at),
  redeliveredAt: Option.map(Option.fromNullishOr(row.redelivered_at), (at) => DateTime.makeUnsafe(at))
})
