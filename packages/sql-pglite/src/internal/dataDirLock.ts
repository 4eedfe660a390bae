/**
 * The steps of the data-folder lock, synchronous so that no other fiber of this process runs between them.
 *
 * The lock is a file, `<folder>.lock`, naming its owner: pid, host, and a token unique to the acquisition. It comes
 * into being with `link(2)` of a fully written temporary file: like `open(O_CREAT | O_EXCL)` the name is created
 * only if absent, so of several openers exactly one succeeds, and no reader ever sees it empty or half written.
 *
 * A lock whose owner is dead may be taken over. Removing it is the dangerous step: a name cannot be removed only if
 * it still holds what was read, so two openers that both found the same dead owner could each remove the lock, the
 * second removing the first's fresh one, and both would hold the folder. The removal therefore happens under a
 * second lock, `<folder>.lock.takeover`, taken the same exclusive way, after reading the lock again: only the one
 * holding the takeover lock removes, and only the very file (same token) it judged dead. The takeover lock lives
 * for a few synchronous system calls; if its owner died in them it is left behind, and then opening refuses and
 * names the file to remove, rather than guess.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type DataDirLock, DataDirInUse, DataDirLockError } from "../DataDirLock.ts"

/** Who holds a lock. */
export interface Owner {
  readonly pid: number
  readonly hostname: string
  readonly token: string
  /**
   * When the owning process started, in epoch milliseconds: with the pid, it tells this process (every worker
   * thread of it reads the same value) from an earlier one that had the same pid, such as a container's pid 1.
   */
  readonly startedAt: number
}

const OwnerJson = Schema.fromJsonString(
  Schema.Struct({
    pid: Schema.Int.check(Schema.isGreaterThan(0)),
    hostname: Schema.String,
    token: Schema.String,
    startedAt: Schema.Finite
  })
)

const decodeOwner = Schema.decodeUnknownOption(OwnerJson)

const encodeOwner = Schema.encodeSync(OwnerJson)

/** The outcome of one attempt. */
export type Attempt =
  | { readonly _tag: "Taken"; readonly owner: Owner; readonly tookOverFrom: Owner | undefined }
  | { readonly _tag: "Held"; readonly holder: Owner }
  | { readonly _tag: "Broken"; readonly reason: string }
  | { readonly _tag: "Changed" }

/** Test hooks: called at the points where another opener may act between two steps. */
export interface Hooks {
  /** After a lock is judged to be a dead owner's, before the takeover lock is taken. */
  readonly afterJudgedDead?: ((lockFile: string) => void) | undefined
}

/**
 * The tokens this process holds, locks and takeover locks, shared by every copy of this module loaded in the
 * process: the pid of a lock says nothing about liveness when it is this process's own pid (a second opener in
 * the same process, or a container's pid 1 after a restart finding its previous incarnation's lock).
 */
const held: Set<string> = ((globalThis as Record<symbol, unknown>)[Symbol.for("@annal/sql-pglite/DataDirLock/held")] ??=
  new Set<string>()) as Set<string>

/**
 * The locks to give up if the process exits with them held, by token: one `exit` listener for all of them, shared
 * like `held`, however many clients the process opens.
 */
const releaseOnExit: Map<string, () => void> = (() => {
  const key = Symbol.for("@annal/sql-pglite/DataDirLock/releaseOnExit")
  const global = globalThis as Record<symbol, unknown>
  if (global[key] === undefined) {
    const releases = new Map<string, () => void>()
    process.once("exit", () => {
      for (const release of releases.values()) release()
    })
    global[key] = releases
  }
  return global[key] as Map<string, () => void>
})()

/** A new owner for this process. */
export const newOwner = (): Owner => ({
  pid: process.pid,
  hostname: os.hostname(),
  token: randomUUID(),
  startedAt: processStartedAt()
})

/** When this process started: the same in every worker thread, to within the clock's reading of it. */
const processStartedAt = (): number => Math.round(Date.now() - process.uptime() * 1000)

/**
 * Two readings of one process's start differ by the time between the clock and uptime reads, well under this; a
 * process that reused the pid started at least as long after the one that died as that one lived.
 */
const sameStart = 1_000

/** Whether the owner may still be using the folder. A lock from another host cannot be checked, so it counts as live. */
export const isLive = (owner: Owner): boolean => {
  if (owner.hostname !== os.hostname()) return true
  // This pid: live when this module holds the token, or when the lock is this very process's (another worker
  // thread, whose tokens this copy of the module cannot see); dead when an earlier process with this pid wrote it.
  if (owner.pid === process.pid) {
    return held.has(owner.token) || Math.abs(owner.startedAt - processStartedAt()) < sameStart
  }
  try {
    // Signal 0 only checks. EPERM: the process exists but belongs to someone else, so it is live.
    process.kill(owner.pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH"
  }
}

const errorCode = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

/**
 * Creates `file` holding `owner`, only if it does not exist: false when it does. The content is written and synced
 * under a temporary name first, so the lock appears whole.
 */
const createExclusive = (file: string, owner: Owner): boolean => {
  const temporary = `${file}.${owner.token}.tmp`
  const fd = fs.openSync(temporary, "wx")
  try {
    fs.writeSync(fd, encodeOwner(owner))
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  try {
    fs.linkSync(temporary, file)
    return true
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false
    throw error
  } finally {
    fs.rmSync(temporary, { force: true })
  }
}

/** The owner a lock file names; `undefined` when it is gone, a string saying why when it cannot be read as one. */
export const readOwner = (file: string): Owner | undefined | string => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined
    throw error
  }
  return Option.getOrElse(decodeOwner(text), () => `${file} is not a lock this package wrote`)
}

/** Removes `file` if it still holds `owner`'s token. */
const removeIfOwned = (file: string, owner: Owner): void => {
  const current = readOwner(file)
  if (typeof current === "object" && current.token === owner.token) fs.rmSync(file, { force: true })
}

/** One attempt to take `lockFile` for `owner`. */
export const attempt = (lockFile: string, owner: Owner, hooks: Hooks = {}): Attempt => {
  if (createExclusive(lockFile, owner)) {
    held.add(owner.token)
    return { _tag: "Taken", owner, tookOverFrom: undefined }
  }
  const holder = readOwner(lockFile)
  // Released between the two steps: try again.
  if (holder === undefined) return { _tag: "Changed" }
  if (typeof holder === "string")
    return { _tag: "Broken", reason: `${holder}; remove it if no process uses the folder` }
  if (isLive(holder)) return { _tag: "Held", holder }
  hooks.afterJudgedDead?.(lockFile)

  const takeoverFile = `${lockFile}.takeover`
  if (!createExclusive(takeoverFile, owner)) {
    const taker = readOwner(takeoverFile)
    if (taker === undefined) return { _tag: "Changed" }
    if (typeof taker === "string")
      return { _tag: "Broken", reason: `${taker}; remove it if no process uses the folder` }
    if (isLive(taker)) {
      // Another opener is taking the lock over this instant. Still the dead owner's: only that opener can remove
      // it, so the folder is theirs. Anyone else's by now (the taker lost to an earlier takeover): it is that one's.
      const current = readOwner(lockFile)
      if (current === undefined) return { _tag: "Changed" }
      if (typeof current === "object" && current.token !== holder.token && isLive(current)) {
        return { _tag: "Held", holder: current }
      }
      return { _tag: "Held", holder: taker }
    }
    return {
      _tag: "Broken",
      reason: `process ${taker.pid} died while taking over the lock of process ${holder.pid}; remove ${takeoverFile} if no process uses the folder`
    }
  }
  // Registered while held, so that an opener in this process sees the takeover as live.
  held.add(owner.token)
  let taken = false
  try {
    const current = readOwner(lockFile)
    // Anything but the very file judged dead (or none) is someone else's: judge again.
    if (current !== undefined && (typeof current === "string" || current.token !== holder.token)) {
      return { _tag: "Changed" }
    }
    if (current !== undefined) fs.rmSync(lockFile, { force: true })
    // A new opener may create the lock between the removal and this: then it is theirs.
    taken = createExclusive(lockFile, owner)
    return taken ? { _tag: "Taken", owner, tookOverFrom: holder } : { _tag: "Changed" }
  } finally {
    if (!taken) held.delete(owner.token)
    fs.rmSync(takeoverFile, { force: true })
  }
}

/** Gives the lock up, if `owner` still holds it. */
export const release = (lockFile: string, owner: Owner): void => {
  held.delete(owner.token)
  removeIfOwned(lockFile, owner)
}

/**
 * The lock file of a data folder: beside it, `<folder>.lock`, so that PGlite's own files stay as PGlite wants them.
 * The folder's real path is used, so two spellings of one folder (relative, through a symbolic link) share it.
 */
export const lockFileOf = (dataDir: string): string => {
  const resolved = path.resolve(dataDir)
  return `${fs.existsSync(resolved) ? fs.realpathSync(resolved) : resolved}.lock`
}

/** How many times the lock is judged again when it changed under an attempt (released, or taken over by another). */
const maxAttempts = 16

/** Takes the lock of `dataDir` for as long as the scope lives. */
export const acquire = Effect.fnUntraced(function* (
  dataDir: string
): Effect.fn.Return<DataDirLock, DataDirInUse | DataDirLockError, Scope.Scope> {
  const lockFile = lockFileOf(dataDir)
  const failed = (reason: string, cause?: unknown) =>
    new DataDirLockError({ dataDir, lockFile, reason, ...(cause === undefined ? {} : { cause }) })
  const owner = newOwner()
  const result = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        fs.mkdirSync(path.dirname(lockFile), { recursive: true })
        const result = take(lockFile, owner)
        // A process that exits without closing the scope (process.exit) still gives the folder up.
        if (result._tag === "Taken") releaseOnExit.set(owner.token, () => release(lockFile, owner))
        return result
      },
      catch: (cause) => failed(String(cause), cause)
    }),
    (result) =>
      result._tag === "Taken"
        ? Effect.sync(() => {
            releaseOnExit.delete(owner.token)
            release(lockFile, owner)
          })
        : Effect.void
  )
  switch (result._tag) {
    case "Taken": {
      const tookOverFrom = result.tookOverFrom?.pid
      yield* Effect.annotateCurrentSpan({ lockFile, tookOverFrom })
      return { dataDir, lockFile, pid: owner.pid, tookOverFrom }
    }
    case "Held":
      return yield* new DataDirInUse({ dataDir, lockFile, pid: result.holder.pid, hostname: result.holder.hostname })
    case "Broken":
      return yield* failed(result.reason)
    case "Changed":
      return yield* failed(`the lock kept changing over ${maxAttempts} attempts; try again`)
  }
})

/** Attempts until the lock is judged, judging again while it changes under an attempt. */
const take = (lockFile: string, owner: Owner): Attempt => {
  let result: Attempt = { _tag: "Changed" }
  for (let i = 0; i < maxAttempts && result._tag === "Changed"; i++) result = attempt(lockFile, owner)
  return result
}
