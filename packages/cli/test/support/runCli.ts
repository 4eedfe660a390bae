/** The `annal` command run from its source, as the CLI tests run it. */
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"

const bin = join(import.meta.dirname, "../../src/bin.ts")

/** How a run of the CLI ended. */
export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the CLI to its end: its exit code and output, whether it succeeded or not (it logs its errors on stdout).
 * `DATABASE_URL` is cleared unless `env` sets it, so that the flags choose the database.
 */
export const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  promisify(execFile)(process.execPath, ["--conditions=@annal/source", bin, ...args], {
    env: { ...process.env, DATABASE_URL: "", ...env },
    // A command that hangs fails its test with what it printed, instead of holding it until the test times out.
    timeout: 60_000
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { readonly code?: number; readonly stdout?: string; readonly stderr?: string }) => ({
      code: error.code ?? -1,
      stdout: error.stdout ?? "",
      stderr: error.stderr ?? ""
    })
  )
