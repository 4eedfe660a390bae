/**
 * The file a command writes with `--output`, written whole or not at all. A command that fails midway (the
 * database gone, the disk full, Ctrl-C) must not leave a truncated file behind: a CSV cut after a row boundary
 * reads as a smaller, valid export. So the command writes a temporary file beside the target, in the same folder
 * so that the rename is atomic, and renames it over the target only once everything was written; on failure or
 * interruption the temporary file is removed and the target keeps what it held before.
 */
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type { PlatformError } from "effect/PlatformError"
import { randomUUID } from "node:crypto"
import { basename, dirname, join } from "node:path"

/**
 * Runs `write` on a new temporary file beside `path`, then renames it to `path`; removes it if `write` or the
 * rename fails or is interrupted.
 */
export const writeWhole = <A, E, R>(
  path: string,
  write: (temporary: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | PlatformError, R | FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    // A dot name, so that a folder listing or a glob over `*.csv` does not pick up a half-written file; random, so
    // that two runs writing the same target do not write into one temporary file.
    const temporary = join(dirname(path), `.${basename(path)}.${randomUUID()}.partial`)
    return yield* Effect.gen(function* () {
      const written = yield* write(temporary)
      yield* fs.rename(temporary, path)
      return written
    }).pipe(Effect.onError(() => fs.remove(temporary, { force: true }).pipe(Effect.ignore)))
  })

/** Flags for opening a command's temporary file: created by this run, never an existing file or a planted link. */
export const createNew = { flag: "wx" } as const
