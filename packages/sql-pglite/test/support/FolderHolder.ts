/** A process holding a PGlite data folder (`holdFolder.ts`), and what it reports, for the tests of the folder's lock. */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"

/** What a holder process printed. */
export interface Report {
  readonly held: boolean
  readonly pid: number
  readonly error?: { readonly _tag: string; readonly pid: number; readonly message: string }
}

const holdFolder = join(import.meta.dirname, "holdFolder.ts")

/** A process holding (or trying to hold) `folder`, killed if the test leaves it running. */
export const holder = (
  folder: string,
  mode: "lock" | "client",
  options: { readonly wait?: boolean; readonly exitWithoutClosing?: boolean } = {}
) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["--conditions=@annal/source", holdFolder, folder, mode], {
        env: {
          ...process.env,
          HOLD_FOLDER_WAIT: options.wait === true ? "1" : "0",
          HOLD_FOLDER_EXIT: options.exitWithoutClosing === true ? "1" : "0"
        },
        stdio: ["pipe", "pipe", "inherit"]
      })
    ),
    (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

/** The holder exited before printing the line a test waited for. */
export class HolderExited extends Data.TaggedError("HolderExited")<{
  readonly code: number | null
  readonly output: string
}> {}

/** The next line the process prints. */
export const nextLine = (child: ChildProcess) =>
  Effect.callback<string, HolderExited>((resume) => {
    let text = ""
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      const end = text.indexOf("\n")
      if (end < 0) return
      child.stdout?.off("data", onData)
      child.stdout?.unshift(text.slice(end + 1))
      resume(Effect.succeed(text.slice(0, end)))
    }
    child.stdout?.on("data", onData)
    child.once("exit", (code) => resume(Effect.fail(new HolderExited({ code, output: text }))))
  })

export const report = (child: ChildProcess) => Effect.map(nextLine(child), (line) => JSON.parse(line) as Report)

/** Resolves once the process has exited. */
export const exited = (child: ChildProcess) =>
  Effect.callback<number | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.exitCode))
    child.once("exit", (code) => resume(Effect.succeed(code)))
  })
