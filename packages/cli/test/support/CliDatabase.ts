/**
 * A database of one CLI test's own, on the engine the project names: a fresh schema on PostgreSQL, or a fresh PGlite
 * folder. The CLI runs in other processes, and a PGlite folder is opened by one process at a time, so `use` opens
 * the test's own client for one step and closes it before the next command runs.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { Consumers, EventStore, Feed, type FeedSignal, Migrations } from "@annal/core"
import { PgFeedSignal } from "@annal/sql-pg"
import { PgliteClient } from "@annal/sql-pglite"
import * as TestDatabase from "../../../core/test/support/TestDatabase.ts"

/** What a test's own steps can use between the CLI's runs. */
export type Services =
  | Consumers.Consumers
  | Feed.Feed
  | EventStore.EventStore
  | SqlClient.SqlClient
  | FeedSignal.FeedSignal

/** What `make` takes. */
export interface Options {
  /** The schema's name (default a unique one): a test of the CLI's refusal names one it refuses. */
  readonly schema?: string | undefined
  /** Whether the events table is migrated before the test runs (default true); `annal migrate`'s tests start bare. */
  readonly migrate?: boolean | undefined
}

/** An events table of the test's own, migrated unless told: the CLI's flags to reach it, its services, its removal. */
export const make = async (options: Options = {}) => {
  const schema = options.schema ?? TestDatabase.uniqueSchema()
  const dataDir = mkdtempSync(join(tmpdir(), "annal-cli-"))
  const flags =
    TestDatabase.engine === "postgres"
      ? ["--database-url", TestDatabase.postgresUrl, "--schema", schema]
      : ["--data-dir", dataDir, "--schema", schema]
  const client: Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, unknown> =
    TestDatabase.engine === "postgres"
      ? PgFeedSignal.layerClient({ url: Redacted.make(TestDatabase.postgresUrl), maxConnections: 5 })
      : PgliteClient.layer({ dataDir })
  const services = Consumers.layer.pipe(
    Layer.provideMerge(Layer.merge(Feed.layer({ schema }), EventStore.layer({ schema }))),
    Layer.provideMerge(client)
  )
  const use = <A, E>(body: Effect.Effect<A, E, Services | Scope.Scope>): Promise<A> =>
    Effect.runPromise(body.pipe(Effect.provide(services), Effect.scoped))
  const withClient = <A, E>(body: Effect.Effect<A, E, SqlClient.SqlClient | Scope.Scope>): Promise<A> =>
    Effect.runPromise(body.pipe(Effect.provide(client), Effect.scoped))
  if (options.migrate ?? true) await withClient(Migrations.run({ schema }))
  const remove = async () => {
    // Through the client alone: the services' layers die on a schema name the CLI refuses; the quoted drop is harmless.
    if (TestDatabase.engine === "postgres") {
      await withClient(SqlClient.SqlClient.use((sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`))
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  return { schema, dataDir, flags, use, remove }
}
