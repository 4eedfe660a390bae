/**
 * vitest's global setup: a PostgreSQL database of this run's own, so that two runs of the suite (a second clone, or
 * `npm run test:stress`) can share one server without seeing each other's tables, roles' data or notifications.
 *
 * Before any worker starts it creates `annal_run_<pid>_<random>` on the server that `ANNAL_TEST_DATABASE_URL` names
 * (by default the local `test` database), and points `ANNAL_TEST_DATABASE_URL` at it; the workers, and the processes
 * the tests spawn, inherit that. `ANNAL_TEST_RUN` carries the name, so that the databases the example tests create
 * for themselves carry it too, and so do the roles tests create (roles belong to the server, not to a database).
 * At the end it drops them all, and at the start it drops those of runs whose process is gone (a run killed before
 * its teardown), so that a killed run leaves nothing behind for long.
 */
import { PgClient } from "@effect/sql-pg"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"

const serverUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

const runName = `annal_run_${process.pid}_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`

/** The run's name and the process that owns it, read back from a database name. */
const ownerOf = (name: string): number | undefined => {
  const match = /^annal_run_(\d+)_[0-9a-f]{8}(?:_|$)/.exec(name)
  return match === null ? undefined : Number(match[1])
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but is someone else's.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const onServer = <A>(body: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* body(yield* SqlClient.SqlClient)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(serverUrl), maxConnections: 1 })), Effect.scoped)
  )

/** The run's databases and those of dead runs (this machine's only: a pid names a process here). */
const dropDatabases = (which: (name: string) => boolean) =>
  onServer((sql) =>
    Effect.gen(function* () {
      const rows = yield* sql<{ readonly datname: string }>`SELECT datname FROM pg_database
        WHERE datname LIKE 'annal\_run\_%'`
      for (const { datname } of rows) {
        if (which(datname)) yield* sql`DROP DATABASE IF EXISTS ${sql(datname)} WITH (FORCE)`.pipe(Effect.ignore)
      }
    })
  )

/**
 * The roles of the run and those of dead runs. Run after their databases are dropped: what a role owned or was
 * granted there went with them, and `DROP OWNED` clears what it may hold in the server's own database, so that
 * `DROP ROLE` has nothing left in the way.
 */
const dropRoles = (which: (name: string) => boolean) =>
  onServer((sql) =>
    Effect.gen(function* () {
      const rows = yield* sql<{ readonly rolname: string }>`SELECT rolname FROM pg_roles
        WHERE rolname LIKE 'annal\_run\_%'`
      for (const { rolname } of rows) {
        if (!which(rolname)) continue
        yield* sql`DROP OWNED BY ${sql(rolname)}`.pipe(Effect.ignore)
        yield* sql`DROP ROLE IF EXISTS ${sql(rolname)}`.pipe(Effect.ignore)
      }
    })
  )

const ofDeadRun = (name: string): boolean => {
  const owner = ownerOf(name)
  return owner !== undefined && !alive(owner)
}

const ofThisRun = (name: string): boolean => name === runName || name.startsWith(`${runName}_`)

let setups = 0

export const setup = async (): Promise<void> => {
  // Each test project runs this; the run has one database.
  if (setups++ > 0) return
  try {
    await dropDatabases(ofDeadRun)
    await dropRoles(ofDeadRun)
    await onServer((sql) => sql`CREATE DATABASE ${sql(runName)}`)
  } catch (error) {
    // No server: the PGlite project can still run; the postgres tests fail on their own, saying why.
    console.warn(`no database of the run's own on ${new URL(serverUrl).host}: ${String(error)}`)
    return
  }
  const url = new URL(serverUrl)
  url.pathname = `/${runName}`
  process.env["ANNAL_TEST_DATABASE_URL"] = url.toString()
  process.env["ANNAL_TEST_RUN"] = runName
}

export const teardown = async (): Promise<void> => {
  if (--setups > 0) return
  await dropDatabases(ofThisRun)
  await dropRoles(ofThisRun)
}
