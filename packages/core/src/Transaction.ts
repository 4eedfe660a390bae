/**
 * The documented way to run a business transaction that appends events, and to run it again when it lost a race:
 * a `ConcurrencyConflict` (a stream was not at the expected version), a deadlock or a serialization failure among
 * the application's own rows, or a write that met a head its snapshot could not see (REPEATABLE READ, or a writer
 * that takes no stream lock). Each of these rolls the whole transaction back, and running the whole of it again,
 * reading fresh state, is what resolves it; retrying one statement inside it cannot.
 *
 * The body runs again from the start, so it must read what it decides on inside the transaction and have no
 * effects outside the database (or effects that are safe to repeat). Events get new ids on each attempt unless the
 * body gives them ids of its own, which makes a retry after an unknown outcome (a lost connection at COMMIT) safe
 * too: the same event again is a duplicate, never a second copy.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { ConcurrencyConflict, StorageError } from "./AnnalError.ts"

/** Options of `run`. */
export interface RunOptions {
  /** How many times the body runs at most, the first included (default 5). */
  readonly attempts?: number
  /** The first pause before a retry, doubled each time, with jitter (default 10 ms). */
  readonly backoff?: Duration.Input
}

const conflictReasons: ReadonlySet<string> = new Set(["DeadlockError", "SerializationError", "ConcurrentWrite"])

/** Whether an error is a lost race that running the whole transaction again can resolve. */
export const isConflict = (error: unknown): boolean => {
  if (error instanceof ConcurrencyConflict) return true
  if (error instanceof StorageError) return conflictReasons.has(error.reason._tag)
  return (
    Predicate.hasProperty(error, "_tag") &&
    error._tag === "SqlError" &&
    Predicate.hasProperty(error, "reason") &&
    Predicate.hasProperty(error.reason, "_tag") &&
    typeof error.reason._tag === "string" &&
    conflictReasons.has(error.reason._tag)
  )
}

/**
 * Runs `body` in a transaction, and runs it again, from the start and in a new transaction, when it fails with a
 * conflict (`isConflict`), up to `attempts` times; any other failure, or the last conflict, is returned as is.
 */
export const run: <A, E, R>(
  body: Effect.Effect<A, E, R>,
  options?: RunOptions
) => Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> = Effect.fn("Transaction.run")(function* <A, E, R>(
  body: Effect.Effect<A, E, R>,
  options?: RunOptions
): Effect.fn.Return<A, E | SqlError, R | SqlClient.SqlClient> {
  const attempts = options?.attempts ?? 5
  if (!Number.isSafeInteger(attempts) || attempts < 1) {
    return yield* Effect.die(new Error(`Transaction.run: attempts must be a positive integer, not ${attempts}`))
  }
  yield* Effect.annotateCurrentSpan({ attempts })
  const schedule = Schedule.exponential(options?.backoff ?? Duration.millis(10)).pipe(Schedule.jittered)
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(body).pipe(Effect.retry({ while: isConflict, schedule, times: attempts - 1 }))
})
