/**
 * One process at a time per PGlite data folder. PGlite keeps no lock of its own: two processes that open the same
 * folder (an app, and `annal verify` or a second copy started beside it) each run their own PostgreSQL over the
 * same files, and the folder is corrupted. `PgliteClient.layer` therefore holds `<folder>.lock`, naming its
 * process, from before the database opens until after it closes; another opener, in this process or another, is
 * refused with `DataDirInUse`. A lock left by a process that died is taken over. PostgreSQL needs none of this.
 *
 * The lock is created atomically (only if absent, so of openers racing exactly one wins), and taking over a dead
 * process's lock cannot let two openers in: see `internal/dataDirLock.ts`. It is released when the scope closes,
 * and when the process exits without closing it.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * Another live process, or another client in this one, holds the data folder.
 *
 * @since 0.1.0
 * @category errors
 */
export class DataDirInUse extends Schema.TaggedError<DataDirInUse>("@annal/sql-pglite/DataDirInUse")("DataDirInUse", {
  dataDir: Schema.String,
  lockFile: Schema.String,
  pid: Schema.Number,
  hostname: Schema.String
}) {
  override get message(): string {
    const where = this.pid === process.pid ? "this process" : `process ${this.pid}`
    return (
      `The PGlite data folder ${this.dataDir} is in use by ${where} on ${this.hostname}: PGlite lets one process at ` +
      `a time open a folder. Stop that process first (or close its client), or use PostgreSQL for several ` +
      `processes. If no such process runs any more, remove ${this.lockFile}.`
    )
  }
}

/**
 * The lock could not be taken: its file cannot be written or read, or a takeover was interrupted.
 *
 * @since 0.1.0
 * @category errors
 */
export class DataDirLockError extends Schema.TaggedError<DataDirLockError>("@annal/sql-pglite/DataDirLockError")(
  "DataDirLockError",
  { dataDir: Schema.String, lockFile: Schema.String, reason: Schema.String, cause: Schema.optional(Schema.Defect()) }
) {
  override get message(): string {
    return `Cannot lock the PGlite data folder ${this.dataDir}: ${this.reason}`
  }
}

/**
 * A held lock.
 *
 * @since 0.1.0
 * @category models
 */
export interface DataDirLock {
  readonly dataDir: string
  readonly lockFile: string
  readonly pid: number
  /** The process whose lock this one replaced, when it was a dead process's. */
  readonly tookOverFrom: number | undefined
}

/**
 * Takes the lock of `dataDir` for as long as the scope lives, as `PgliteClient.layer` does for its folder. Fails
 * with `DataDirInUse` when a live process, or another client of this process, holds it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquire: (dataDir: string) => Effect.Effect<DataDirLock, DataDirInUse | DataDirLockError, Scope.Scope> =
  Effect.fn("DataDirLock.acquire")(function* (dataDir: string) {
    // Loaded when a folder is opened: the lock needs Node's file system, and a browser program (idb://) never
    // asks for it.
    const node = yield* Effect.promise(() => import("./internal/dataDirLock.ts"))
    return yield* node.acquire(dataDir)
  })
