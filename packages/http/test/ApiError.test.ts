/**
 * A statement the database cancelled (its statement timeout fired) is the caller's 503 `Timeout`, matched on the
 * typed reason `StorageError` keeps from the driver; any other storage failure is a logged 500.
 */
import { AnnalError } from "@annal/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlError from "effect/sql/SqlError"
import { InternalError, storage, Timeout } from "../src/ApiError.ts"

const failure = (reason: AnnalError.StorageErrorReason) =>
  new AnnalError.StorageError({ operation: "EventStore.count", reason, detail: "from the test" })
const cause = new Error("canceling statement due to statement timeout")

describe("ApiError.storage", () => {
  it.effect("answers a StorageError whose reason is the driver's statement timeout with a 503 Timeout", () =>
    Effect.gen(function* () {
      const answer = yield* Effect.flip(
        storage("reading events", failure(new SqlError.StatementTimeoutError({ cause })))
      )
      assert.instanceOf(answer, Timeout)
    })
  )

  it.effect("answers the driver's own SqlError the same way", () =>
    Effect.gen(function* () {
      const raw = new SqlError.SqlError({ reason: new SqlError.StatementTimeoutError({ cause }) })
      assert.instanceOf(yield* Effect.flip(storage("reading events", raw)), Timeout)
    })
  )

  it.effect("answers any other storage failure, retryable or not, with a 500", () =>
    Effect.gen(function* () {
      for (const reason of [new SqlError.ConnectionError({ cause }), new AnnalError.UnexpectedRow()]) {
        assert.instanceOf(yield* Effect.flip(storage("reading events", failure(reason))), InternalError)
      }
    })
  )
})
