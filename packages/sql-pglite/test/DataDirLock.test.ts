/**
 * The data-folder lock: one opener at a time, in this process or another; a dead process's lock taken over by
 * exactly one opener; openers racing in several processes, exactly one winning.
 */
import { DataDirLock, PgliteClient } from "@annal/sql-pglite"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as internal from "../src/internal/dataDirLock.ts"
import { engine } from "../../core/test/support/TestDatabase.ts"
import { exited, holder, nextLine, report } from "./support/FolderHolder.ts"

/** A folder of the test's own, removed with its lock files when the scope closes. */
const tempFolder = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(join(tmpdir(), "annal-lock-"))),
  (root) => Effect.sync(() => fs.rmSync(root, { recursive: true, force: true }))
).pipe(Effect.map((root) => join(root, "db")))

/** The error an exit failed with. */
const failure = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error : undefined

/** A process id that was in use a moment ago and is no more. */
const deadPid = () => {
  const pid = spawnSync(process.execPath, ["-e", ""]).pid
  assert.isDefined(pid)
  return pid!
}

/** A lock file as a process that died left it. */
const writeDeadLock = (folder: string) => {
  const lockFile = internal.lockFileOf(folder)
  fs.mkdirSync(folder, { recursive: true })
  const owner = { ...internal.newOwner(), pid: deadPid() }
  fs.writeFileSync(lockFile, JSON.stringify(owner))
  return { lockFile, owner }
}

/**
 * The takeover a lock without a takeover lock does (read the lock, find its owner dead, remove it, create it again),
 * with the point where another opener acts between the judgement and the removal.
 */
const naiveTakeover = (lockFile: string, owner: internal.Owner, between: () => void): boolean => {
  const holder = internal.readOwner(lockFile)
  if (typeof holder !== "object" || internal.isLive(holder)) return false
  between()
  fs.rmSync(lockFile, { force: true })
  try {
    fs.writeFileSync(lockFile, JSON.stringify(owner), { flag: "wx" })
    return true
  } catch {
    return false
  }
}

describe.skipIf(engine === "postgres")("DataDirLock", () => {
  it.live("a second client of a folder is refused with DataDirInUse while the first lives, and opens after it", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const clientLayer = PgliteClient.layer({ dataDir: folder })
      const first = yield* Scope.make()
      yield* Layer.buildWithScope(clientLayer, first)

      const second = yield* Effect.exit(Effect.scoped(Layer.build(clientLayer)))
      const error = failure(second)
      assert.instanceOf(error, DataDirLock.DataDirInUse)
      if (error instanceof DataDirLock.DataDirInUse) {
        assert.strictEqual(error.pid, process.pid)
        assert.strictEqual(error.lockFile, `${fs.realpathSync(folder)}.lock`)
        assert.include(error.message, `The PGlite data folder ${folder} is in use by this process`)
        assert.include(error.message, `remove ${error.lockFile}`)
      }

      yield* Scope.close(first, Exit.void)
      assert.isFalse(fs.existsSync(`${folder}.lock`), "the lock is released with the scope")
      const rows = yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ readonly one: number }>`SELECT 1 AS one`
      }).pipe(Effect.provide(clientLayer))
      assert.deepStrictEqual(rows, [{ one: 1 }])
    }).pipe(Effect.scoped)
  )

  it.live("another process's lock refuses, naming its pid; once it is killed, its lock is taken over", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const child = yield* holder(folder, "lock")
      assert.deepStrictEqual(yield* report(child), { held: true, pid: child.pid! })

      const refused = failure(yield* Effect.exit(Effect.scoped(DataDirLock.acquire(folder))))
      assert.instanceOf(refused, DataDirLock.DataDirInUse)
      assert.strictEqual((refused as DataDirLock.DataDirInUse).pid, child.pid)
      assert.include((refused as DataDirLock.DataDirInUse).message, `in use by process ${child.pid} on `)

      // SIGKILL: no finalizer, no exit handler; the lock stays behind, naming a dead process.
      child.kill("SIGKILL")
      yield* exited(child)
      assert.isTrue(fs.existsSync(`${folder}.lock`))
      const lock = yield* DataDirLock.acquire(folder)
      assert.deepStrictEqual([lock.pid, lock.tookOverFrom], [process.pid, child.pid])
      const stored = internal.readOwner(lock.lockFile)
      assert.strictEqual(typeof stored === "object" ? stored.pid : stored, process.pid)
    }).pipe(Effect.scoped)
  )

  it.live("a process that exits without closing its scope gives the lock up", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const child = yield* holder(folder, "lock", { exitWithoutClosing: true })
      assert.isTrue((yield* report(child)).held)
      assert.isTrue(fs.existsSync(`${folder}.lock`))
      // It calls process.exit with the lock's scope open: only the exit handler can remove the lock.
      child.stdin?.end()
      assert.strictEqual(yield* exited(child), 0)
      assert.isFalse(fs.existsSync(`${folder}.lock`))
    }).pipe(Effect.scoped)
  )

  it.live(
    "a lock with this process's pid but no client of it (an earlier process with the same pid) is taken over",
    () =>
      Effect.gen(function* () {
        const folder = yield* tempFolder
        fs.mkdirSync(folder, { recursive: true })
        fs.writeFileSync(
          `${folder}.lock`,
          JSON.stringify({
            ...internal.newOwner(),
            token: "an earlier process",
            startedAt: internal.newOwner().startedAt - 3_600_000
          })
        )
        const lock = yield* DataDirLock.acquire(folder)
        assert.strictEqual(lock.tookOverFrom, process.pid)
      }).pipe(Effect.scoped)
  )

  it.live(
    "a lock of this very process that this copy of the module does not hold (another worker thread's) refuses",
    () =>
      Effect.gen(function* () {
        const folder = yield* tempFolder
        fs.mkdirSync(folder, { recursive: true })
        // What a client opened in a worker thread leaves: this pid, this process's start, a token the worker's own
        // copy of the module holds and this one cannot see. Judged by pid and token alone it looked dead.
        fs.writeFileSync(`${folder}.lock`, JSON.stringify({ ...internal.newOwner(), token: "a worker's client" }))
        const error = failure(yield* Effect.exit(Effect.scoped(DataDirLock.acquire(folder))))
        assert.instanceOf(error, DataDirLock.DataDirInUse)
        assert.isTrue(fs.readFileSync(`${folder}.lock`, "utf8").includes("a worker's client"), "the lock is kept")
      }).pipe(Effect.scoped)
  )

  it.live("a takeover left half done by a dead process refuses with DataDirLockError naming the file to remove", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const { lockFile } = writeDeadLock(folder)
      fs.writeFileSync(`${lockFile}.takeover`, JSON.stringify({ ...internal.newOwner(), pid: deadPid() }))
      const error = failure(yield* Effect.exit(Effect.scoped(DataDirLock.acquire(folder))))
      assert.instanceOf(error, DataDirLock.DataDirLockError)
      assert.include((error as DataDirLock.DataDirLockError).message, `remove ${lockFile}.takeover`)
    }).pipe(Effect.scoped)
  )

  it.live("the naive takeover lets two openers in when both judged the same dead lock", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const { lockFile } = writeDeadLock(folder)
      const [a, b] = [internal.newOwner(), internal.newOwner()]
      let bTook = false
      const aTook = naiveTakeover(lockFile, a, () => (bTook = naiveTakeover(lockFile, b, () => {})))
      // Both believe they hold the folder; b's lock was removed by a.
      assert.deepStrictEqual([aTook, bTook], [true, true])
    }).pipe(Effect.scoped)
  )

  it.live("a takeover lets one opener in when another judged the same dead lock and took it over meanwhile", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const { lockFile, owner: dead } = writeDeadLock(folder)
      const [a, b] = [internal.newOwner(), internal.newOwner()]
      let bAttempt: internal.Attempt | undefined
      const aAttempt = internal.attempt(lockFile, a, {
        afterJudgedDead: () => (bAttempt = internal.attempt(lockFile, b))
      })
      assert.deepStrictEqual(bAttempt, { _tag: "Taken", owner: b, tookOverFrom: dead })
      // a finds the lock changed under it, and judging again finds b, live.
      assert.deepStrictEqual(aAttempt, { _tag: "Changed" })
      assert.deepStrictEqual(internal.attempt(lockFile, a), { _tag: "Held", holder: b })
      assert.deepStrictEqual(internal.readOwner(lockFile), b)
      assert.isFalse(fs.existsSync(`${lockFile}.takeover`))
      internal.release(lockFile, b)
      assert.isFalse(fs.existsSync(lockFile))
    }).pipe(Effect.scoped)
  )

  it.live("an opener that finds a live process taking the lock over is refused, naming that process", () =>
    Effect.gen(function* () {
      const folder = yield* tempFolder
      const { lockFile } = writeDeadLock(folder)
      // The process that started this one is alive: it stands for an opener in the middle of its takeover.
      const taker = { ...internal.newOwner(), pid: process.ppid }
      fs.writeFileSync(`${lockFile}.takeover`, JSON.stringify(taker))
      assert.deepStrictEqual(internal.attempt(lockFile, internal.newOwner()), { _tag: "Held", holder: taker })
    }).pipe(Effect.scoped)
  )

  for (const start of ["free", "dead"] as const) {
    it.live(
      `openers racing in four processes for ${start === "free" ? "a free lock" : "a dead process's lock"}: exactly one holds it, the others name it`,
      () =>
        Effect.gen(function* () {
          const folder = yield* tempFolder
          if (start === "dead") writeDeadLock(folder)
          else fs.mkdirSync(folder, { recursive: true })
          const children = yield* Effect.all(
            Array.from({ length: 4 }, () => holder(folder, "lock", { wait: true })),
            { concurrency: "unbounded" }
          )
          for (const child of children) assert.strictEqual(yield* nextLine(child), "ready")
          for (const child of children) child.stdin?.write("go\n")
          const reports = yield* Effect.all(children.map(report), { concurrency: "unbounded" })
          const winners = reports.filter((r) => r.held)
          assert.strictEqual(winners.length, 1, JSON.stringify(reports))
          for (const loser of reports.filter((r) => !r.held)) {
            assert.deepStrictEqual([loser.error?._tag, loser.error?.pid], ["DataDirInUse", winners[0]!.pid])
          }
        }).pipe(Effect.scoped),
      60_000
    )
  }
})
