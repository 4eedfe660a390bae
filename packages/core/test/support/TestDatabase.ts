/**
 * A fresh, migrated database for one test file, on the engine the test project names (`ANNAL_ENGINE`): a new
 * in-memory PGlite, or a new schema on the local PostgreSQL that is dropped when the file's tests end. Each file
 * owns its data, so files run in parallel and in any order.
 */
import { PgFeedSignal } from "@annal/sql-pg"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as AuditService from "../../src/AuditService.ts"
import * as EventEmitter from "../../src/EventEmitter.ts"
import * as EventStore from "../../src/EventStore.ts"
import * as Migrations from "../../src/Migrations.ts"
import type * as FeedSignal from "../../src/FeedSignal.ts"
import { PgliteClient } from "@annal/sql-pglite"

/** The engine of this test run. */
export const engine: "pglite" | "postgres" = process.env["ANNAL_ENGINE"] === "postgres" ? "postgres" : "pglite"

/** The local PostgreSQL of this machine and CI. */
export const postgresUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

/** A schema name no other test file uses. */
export const uniqueSchema = (): string => `annal_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`

/** A client for the engine under test, without migrations. */
export const sqlLayer: Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, unknown> =
  engine === "postgres"
    ? PgFeedSignal.layerClient({ url: Redacted.make(postgresUrl), maxConnections: 20 })
    : PgliteClient.layer({})

/** Drops the schema when the scope closes, so that the shared PostgreSQL does not fill up with test data. */
const dropSchemaAfter = (schema: string) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* Effect.addFinalizer(() => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`.pipe(Effect.ignore))
    })
  )

/** The core's services over a fresh, migrated events table in schema `schema`. */
export const layerWith = (schema: string) =>
  Layer.mergeAll(EventEmitter.layer, AuditService.layer).pipe(
    Layer.provideMerge(EventStore.layer({ schema })),
    Layer.provideMerge(Migrations.layer({ schema })),
    Layer.provideMerge(dropSchemaAfter(schema)),
    Layer.provideMerge(sqlLayer),
    Layer.orDie
  )

/** The core's services over a fresh, migrated events table. */
export const layer = () => layerWith(uniqueSchema())
