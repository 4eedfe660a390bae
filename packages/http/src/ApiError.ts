/**
 * The typed errors of Annal's HTTP APIs. Each one is a schema, so it is documented in the OpenAPI document and sent
 * as a JSON body with its `_tag`; each carries its HTTP status. No response leaves the API without a body that says
 * what went wrong, and none of them carries data the caller was not allowed to see.
 *
 * @since 0.1.0
 */
import { AnnalError, EventContext } from "@annal/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SqlError from "effect/sql/SqlError"

/** One problem with a request: the field (`query.limit`, `payload.gstin`, `header.x-correlation-id`) and why. */
export const Issue = Schema.Struct({
  field: Schema.String,
  reason: Schema.String
})

/** One problem with a request: the field and why. */
export type Issue = typeof Issue.Type

/** The request is malformed: every field that is wrong, and why. Nothing was read or written. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@annal/http/InvalidRequest")(
  "InvalidRequest",
  {
    message: Schema.String,
    issues: Schema.NonEmptyArray(Issue)
  },
  { httpApiStatus: 400, description: "The request is malformed; `issues` names each field and why" }
) {
  /** The error for the given problems; the message repeats the first. */
  static fromIssues(issues: readonly [Issue, ...Array<Issue>]): InvalidRequest {
    const [first] = issues
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : ""
    return new InvalidRequest({ message: `${first.field}: ${first.reason}${more}`, issues })
  }

  /** The error for one problem. */
  static field(field: string, reason: string): InvalidRequest {
    return InvalidRequest.fromIssues([{ field, reason }])
  }
}

/** No credentials, or credentials that do not name a known API token. */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>("@annal/http/Unauthenticated")(
  "Unauthenticated",
  { message: Schema.String },
  { httpApiStatus: 401, description: "Missing or unknown bearer token" }
) {}

/** The caller is known but may not do this; the body never says what the refused request would have returned. */
export class Forbidden extends Schema.TaggedError<Forbidden>("@annal/http/Forbidden")(
  "Forbidden",
  { message: Schema.String },
  { httpApiStatus: 403, description: "The token's user or role may not do this" }
) {}

/** Nothing is at this address. */
export class NotFound extends Schema.TaggedError<NotFound>("@annal/http/NotFound")(
  "NotFound",
  { message: Schema.String },
  { httpApiStatus: 404, description: "Nothing is at this address" }
) {}

/** The request conflicts with what is stored, such as a second record with the same unique number. */
export class Conflict extends Schema.TaggedError<Conflict>("@annal/http/Conflict")(
  "Conflict",
  { message: Schema.String },
  { httpApiStatus: 409, description: "The request conflicts with what is stored" }
) {}

/**
 * The server failed; the request's correlation id finds the logged cause. The body never carries the cause itself,
 * which may hold another user's data or the database's internals.
 */
export class InternalError extends Schema.TaggedError<InternalError>("@annal/http/InternalError")(
  "InternalError",
  { message: Schema.String, correlationId: Schema.optionalKey(Schema.String) },
  { httpApiStatus: 500, description: "The server failed; the correlation id finds the logged cause" }
) {}

/**
 * The request did not finish within its time bound (the request timeout, or the database's statement timeout), or
 * the database cancelled its statement. A write that was stopped rolled back, unless it was already committing; the
 * caller may retry, narrowing the query if it was a broad one.
 */
export class Timeout extends Schema.TaggedError<Timeout>("@annal/http/Timeout")(
  "Timeout",
  { message: Schema.String, correlationId: Schema.optionalKey(Schema.String) },
  { httpApiStatus: 503, description: "The request took too long and was stopped; retry, or narrow the query" }
) {}

/**
 * The server cannot answer yet, or any more: it is starting (its migrations are running) or stopping. Nothing was
 * read or written; retry after `Retry-After`, on this server or another.
 */
export class Unavailable extends Schema.TaggedError<Unavailable>("@annal/http/Unavailable")(
  "Unavailable",
  { message: Schema.String },
  { httpApiStatus: 503, description: "The server is starting or stopping; retry after the Retry-After delay" }
) {}

/**
 * Logs `message` and `cause` with `log`, annotated with the request's correlation id, and gives that id as the field
 * of an error body.
 */
const logWithCorrelationId = (log: typeof Effect.logError, message: string, cause: unknown) =>
  Effect.gen(function* () {
    const { correlationId } = (yield* EventContext.EventContext).metadata
    const field = correlationId === undefined ? {} : { correlationId }
    yield* log(message, cause).pipe(Effect.annotateLogs(field))
    return field
  })

/**
 * Logs a failure with the request's correlation id, and fails with an `InternalError` that carries only that id:
 * the cause stays in the server's logs.
 */
export const internal = (doing: string, cause: unknown): Effect.Effect<never, InternalError> =>
  Effect.flatMap(logWithCorrelationId(Effect.logError, `Failed ${doing}`, cause), (field) =>
    Effect.fail(new InternalError({ message: "The server failed; quote the correlation id", ...field }))
  )

/**
 * `internal` for a failure of the database, except a statement the database cancelled (PostgreSQL's
 * `query_canceled`, SQLSTATE 57014: the statement timeout fired, or an operator cancelled it), which is a `Timeout`
 * the caller may retry rather than the server's failure. The cause is logged either way.
 */
export const storage = (doing: string, cause: unknown): Effect.Effect<never, InternalError | Timeout> =>
  isCancelled(cause)
    ? Effect.flatMap(logWithCorrelationId(Effect.logWarning, `Cancelled ${doing}`, cause), (field) =>
        Effect.fail(
          new Timeout({
            message: "The database stopped the request after its time limit; retry, or narrow the query",
            ...field
          })
        )
      )
    : internal(doing, cause)

/**
 * Whether `cause` is a cancelled statement: the driver's `SqlError`, or the `StorageError` Annal's services map it
 * to, which keeps the driver's typed reason.
 */
const isCancelled = (cause: unknown): boolean => {
  const reason = SqlError.isSqlError(cause)
    ? cause.reason
    : cause instanceof AnnalError.StorageError
      ? cause.reason
      : undefined
  return reason?._tag === "StatementTimeoutError"
}
