/**
 * The core's services over a fresh, migrated events table in a schema of its own, on the shared PostgreSQL or on a
 * client a test builds itself (a throwaway cluster, PGlite). The schema is dropped when the layer's scope closes, so
 * the shared server does not fill up with the battery's data.
 */
import { PgClient } from "@effect/sql-pg"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventEmitter from "../../../packages/core/src/EventEmitter.ts"
import * as EventStore from "../../../packages/core/src/EventStore.ts"
import * as Migrations from "../../../packages/core/src/Migrations.ts"

/** The shared PostgreSQL of this machine and CI. */
export const postgresUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

/** A schema name no other test uses. */
export const uniqueSchema = (): string => `annal_rel_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`

/** A pooled client of the shared PostgreSQL. */
export const postgres = (options: Omit<PgClient.PgPoolConfig, "url"> = {}) =>
  PgFeedSignal.layerClient({ url: Redacted.make(postgresUrl), ...options })

const dropSchemaAfter = (schema: string) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    })
  )

/** The store and the emitter over a fresh, migrated events table in `schema`, with the client they use. */
export const layer = <A, E, R>(schema: string, client: Layer.Layer<A | SqlClient.SqlClient, E, R>) =>
  EventEmitter.layer.pipe(
    Layer.provideMerge(EventStore.layer({ schema })),
    Layer.provideMerge(Migrations.layer({ schema })),
    Layer.provideMerge(dropSchemaAfter(schema)),
    Layer.provideMerge(client),
    Layer.orDie
  )

/** A stored event as the checkers read it: raw, straight from the table. */
export interface StoredRow {
  readonly id: string
  readonly aggregate_id: string
  readonly stream_version: number
  readonly global_position: string
  readonly data: unknown
}

const StoredRows = Schema.Array(
  Schema.Struct({
    id: Schema.String,
    aggregate_id: Schema.String,
    stream_version: Schema.Int,
    global_position: Schema.String,
    data: Schema.Unknown
  })
)

/** Every event in `schema`'s table, in log order, read with plain SQL so that the checkers trust no code under test. */
export const storedRows = (schema: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`SELECT id::text AS id, aggregate_id::text AS aggregate_id, stream_version,
      global_position::text AS global_position, data
      FROM ${sql(`${schema}.events`)} ORDER BY global_position`.withoutTransform
    return yield* Schema.decodeUnknownEffect(StoredRows)(rows)
  }).pipe(Effect.orDie)
