/**
 * A process that opens a PGlite data folder and holds it, for the tests of the folder's lock:
 * `node holdFolder.ts <folder> <lock|client>` takes the lock alone (`DataDirLock.acquire`) or opens a whole client
 * (`PgliteClient.layer`). With `HOLD_FOLDER_WAIT=1` it first prints `ready` and waits for a `go` line on stdin, so
 * that several start at once. It prints one JSON line, `{ "held": true, "pid" }` or
 * `{ "held": false, "pid", "error": { "_tag", "pid", "message" } }`, then holds the folder until stdin closes (and
 * with `HOLD_FOLDER_EXIT=1` then exits without closing its scope).
 */
import { DataDirLock, PgliteClient } from "@annal/sql-pglite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const [folder, mode] = process.argv.slice(2)
if (folder === undefined || (mode !== "lock" && mode !== "client")) throw new Error("usage: <folder> <lock|client>")

/** Resolves once stdin has sent `line`, or once it closes when `line` is undefined. */
const stdin = (line: string | undefined) =>
  Effect.callback<void>((resume) => {
    let text = ""
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      if (line !== undefined && text.split("\n").includes(line)) done()
    }
    const done = () => {
      process.stdin.off("data", onData)
      process.stdin.off("end", done)
      resume(Effect.void)
    }
    process.stdin.on("data", onData)
    process.stdin.on("end", done)
  })

const open =
  mode === "lock"
    ? Effect.asVoid(DataDirLock.acquire(folder))
    : Effect.asVoid(Layer.build(PgliteClient.layer({ dataDir: folder })))

const program = Effect.gen(function* () {
  if (process.env["HOLD_FOLDER_WAIT"] === "1") {
    console.log("ready")
    yield* stdin("go")
  }
  const opened = yield* Effect.exit(open)
  if (opened._tag === "Success") {
    console.log(JSON.stringify({ held: true, pid: process.pid }))
    yield* stdin(undefined)
    // `HOLD_FOLDER_EXIT=1`: exit at once, without closing the scope, as `process.exit` in a handler does.
    if (process.env["HOLD_FOLDER_EXIT"] === "1") process.exit(0)
    return
  }
  const error = opened.cause.reasons.find((reason) => reason._tag === "Fail")?.error
  console.log(JSON.stringify({ held: false, pid: process.pid, error: { ...error, message: String(error?.message) } }))
}).pipe(Effect.scoped)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(2)
  }
)
