/**
 * Maps driver errors to Annal's at the service edge, so that nothing raw from the driver leaves a public method.
 */
import { hasProperty } from "effect/Predicate"
import type * as SqlError from "effect/sql/SqlError"
import { StorageError } from "../AnnalError.ts"

/** A `StorageError` that keeps the driver's typed reason (and so whether a retry may succeed) and its message. */
export const fromSqlError = (operation: string, error: SqlError.SqlError): StorageError =>
  new StorageError({ operation, reason: error.reason, detail: describe(error) })

/** The constraint a unique violation names, if the error is one. */
export const uniqueViolation = (error: SqlError.SqlError): string | undefined =>
  error.reason._tag === "UniqueViolation" ? error.reason.constraint : undefined

/** The database's own message where the driver kept it (both engines keep the server error as the cause). */
export const describe = (error: SqlError.SqlError): string => {
  const cause = error.reason.cause
  return hasProperty(cause, "message") && typeof cause.message === "string" && cause.message.length > 0
    ? cause.message
    : error.message
}
