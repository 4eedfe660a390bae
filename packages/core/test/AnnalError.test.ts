/**
 * `StorageError` keeps the driver's reason as a type, and says from it whether a retry may succeed: the driver's
 * classification for its own reasons, Annal's for the ones it adds.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlError from "effect/sql/SqlError"
import { ConcurrentWrite, MigrationFailed, StorageError, UnexpectedRow } from "../src/AnnalError.ts"
import { fromSqlError } from "../src/internal/sqlErrors.ts"

const driverError = (reason: SqlError.SqlErrorReason) => new SqlError.SqlError({ reason })
const cause = new Error("canceling statement due to statement timeout")
const of = (reason: ConcurrentWrite | UnexpectedRow | MigrationFailed) =>
  new StorageError({ operation: "test", reason, detail: "" })

describe("StorageError", () => {
  it("keeps the driver's reason, its type and its retryability", () => {
    const timeout = fromSqlError("EventStore.query", driverError(new SqlError.StatementTimeoutError({ cause })))
    assert.instanceOf(timeout.reason, SqlError.StatementTimeoutError)
    assert.strictEqual(timeout.reason._tag, "StatementTimeoutError")
    assert.isTrue(timeout.isRetryable)
    assert.strictEqual(timeout.detail, "canceling statement due to statement timeout")
    assert.strictEqual(timeout.message, "EventStore.query failed (StatementTimeoutError): " + timeout.detail)

    const syntax = fromSqlError("EventStore.query", driverError(new SqlError.SqlSyntaxError({ cause })))
    assert.instanceOf(syntax.reason, SqlError.SqlSyntaxError)
    assert.isFalse(syntax.isRetryable)

    const deadlock = fromSqlError("EventStore.append", driverError(new SqlError.DeadlockError({ cause })))
    assert.isTrue(deadlock.isRetryable)
  })

  it("says whether Annal's own reasons may succeed on a retry", () => {
    assert.isTrue(of(new ConcurrentWrite()).isRetryable)
    assert.isFalse(of(new UnexpectedRow()).isRetryable)
    assert.isFalse(of(new MigrationFailed({ kind: "Duplicates" })).isRetryable)
  })
})
