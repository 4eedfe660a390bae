/**
 * One process at a time per PGlite data folder. PGlite keeps no lock of its own: two processes that open the same
 * folder (the app, and `npm run demo` started beside it) each write their own copy, and one of them is lost. The
 * app and the demo therefore hold `<data folder>.lock`, with their process id, for as long as they run; a lock
 * whose process is gone is taken over. PostgreSQL needs none of this.
 *
 * @since 0.1.0
 */
import type { Database } from "@annal/cli"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fs from "node:fs"
import * as path from "node:path"

/** Another live process holds the data folder. */
export class DataDirInUse extends Data.TaggedError("DataDirInUse")<{ readonly dataDir: string; readonly pid: number }> {
  override get message(): string {
    return `The data folder ${this.dataDir} is in use by process ${this.pid} (npm start or npm run demo); stop it first`
  }
}

/** Holds the lock of the PGlite data folder while the layer lives; nothing for PostgreSQL or an in-memory PGlite. */
export const layer = (database: Database.DatabaseConfig): Layer.Layer<never, DataDirInUse> =>
  Option.isSome(database.url) || database.dataDir === "" || database.dataDir.startsWith("memory://")
    ? Layer.empty
    : Layer.effectDiscard(Effect.acquireRelease(acquire(database.dataDir), release))

const acquire = (dataDir: string) =>
  Effect.gen(function* () {
    const file = `${path.resolve(dataDir)}.lock`
    yield* Effect.sync(() => fs.mkdirSync(path.dirname(file), { recursive: true }))
    const holder = yield* Effect.sync(() => readPid(file))
    if (holder !== undefined && holder !== process.pid && (yield* isAlive(holder))) {
      return yield* new DataDirInUse({ dataDir, pid: holder })
    }
    yield* Effect.sync(() => fs.writeFileSync(file, String(process.pid)))
    return file
  })

const release = (file: string) =>
  Effect.sync(() => {
    if (readPid(file) === process.pid) fs.rmSync(file, { force: true })
  })

const readPid = (file: string): number | undefined => {
  if (!fs.existsSync(file)) return undefined
  const pid = Number(fs.readFileSync(file, "utf8").trim())
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

/** Whether a process exists: signal 0 only checks, and fails when there is no such process. */
const isAlive = (pid: number): Effect.Effect<boolean> =>
  Effect.try(() => process.kill(pid, 0)).pipe(
    Effect.as(true),
    Effect.catch(() => Effect.succeed(false))
  )
