/**
 * Request validation errors as typed 400s. Effect's HTTP API answers a request whose path, query, headers or body
 * fail their schema with an empty 400; a group that adds this middleware answers with `InvalidRequest`, naming
 * every field that is wrong (`query.limit`, `payload.gstin`) and why. A response that fails its own schema is the
 * server's fault: it is logged and answered with `InternalError`, without the response.
 *
 * Pair it with `parseOptions` on the group, so that unknown query parameters and body fields are refused rather
 * than silently ignored: a misspelt filter must not widen a query.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpApi from "effect/http-api/HttpApi"
import type { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import type * as Layer from "effect/Layer"
import type * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import { InternalError, internal, InvalidRequest, type Issue } from "./ApiError.ts"

/** The middleware. */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("@annal/http/RequestValidation", {
  error: [InvalidRequest, InternalError]
}) {}

/** Turns schema failures into `InvalidRequest` (request) or `InternalError` (response). */
export const layer: Layer.Layer<RequestValidation> = HttpApiMiddleware.layerSchemaErrorTransform(
  RequestValidation,
  (error) =>
    error.kind === "Body" || error.kind === "ResponseHeaders"
      ? internal("encoding a response", error.cause)
      : Effect.fail(toInvalidRequest(error))
)

/**
 * Parse options for a group that uses this middleware: report every problem, not only the first, and refuse unknown
 * query parameters and body fields.
 */
export const parseOptions: Context.Context<never> = Context.make(HttpApi.ParseOptions, { errors: "all" }).pipe(
  Context.add(HttpApi.QueryParseOptions, strict()),
  Context.add(HttpApi.PayloadParseOptions, strict())
)

function strict(): SchemaAST.ParseOptions {
  return { errors: "all", onExcessProperty: "error" }
}

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const slots: Record<HttpApiSchemaError["kind"], string> = {
  Params: "path",
  Query: "query",
  Headers: "header",
  Payload: "payload",
  Body: "response",
  ResponseHeaders: "response"
}

/** Every failing field of a request, as `slot.path`, with Effect's reason or the schema's own message. */
export const toInvalidRequest = (error: HttpApiSchemaError): InvalidRequest => {
  const slot = slots[error.kind]
  const issues: Array<Issue> = formatIssues(error.cause.issue).issues.map((issue) => ({
    field: [
      slot,
      ...(issue.path ?? []).map((segment) => String(typeof segment === "object" ? segment.key : segment))
    ].join("."),
    reason:
      issue.message === "Expected no excess property"
        ? slot === "payload"
          ? "is not a known field"
          : "is not a known parameter"
        : issue.message
  }))
  const [first, ...rest] = issues
  return InvalidRequest.fromIssues(first === undefined ? [{ field: slot, reason: "is malformed" }] : [first, ...rest])
}
