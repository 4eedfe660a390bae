/**
 * A time bound on every request of the groups that add this middleware: a handler still running when the bound
 * passes is interrupted, and the caller gets a typed `Timeout` (503) instead of waiting on a query that may never
 * end, or a 500. Interrupting the handler interrupts its database statement too: on PostgreSQL the driver sends the
 * server a cancel request, so the statement stops instead of running on for nobody.
 *
 * It is one of two bounds. The other is the database's own: an application on PostgreSQL sets `statement_timeout` on
 * its connections (`Database.layer`), which also stops statements that no request is waiting for, and whose
 * cancellation `ApiError.storage` answers with the same `Timeout`. PGlite runs each statement to its end in this
 * process and cannot cancel one: there the request bound answers once the statement in flight returns, and nothing
 * bounds the statement itself.
 *
 * The bound covers producing the response, not sending it: a streamed body (server-sent events) is not cut short.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as Layer from "effect/Layer"
import { Timeout } from "./ApiError.ts"

/** The middleware, for the groups whose requests are bounded. */
export class RequestTimeout extends HttpApiMiddleware.Service<RequestTimeout>()("@annal/http/RequestTimeout", {
  error: Timeout
}) {}

/** The bound when the application sets none. */
export const defaultTimeout: Duration.Duration = Duration.seconds(5)

/** Bounds each request by `timeout`. */
export const layer = (timeout: Duration.Input = defaultTimeout): Layer.Layer<RequestTimeout> =>
  Layer.succeed(
    RequestTimeout,
    RequestTimeout.of((httpEffect) =>
      Effect.timeoutOrElse(httpEffect, {
        duration: timeout,
        orElse: () =>
          Effect.fail(
            new Timeout({
              message: `The request took longer than ${Duration.format(Duration.fromInputUnsafe(timeout))} and was stopped; retry, or narrow the query`
            })
          )
      })
    )
  )
