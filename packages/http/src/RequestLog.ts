/**
 * The server's logs: one line per request that carries the request's correlation id, and the format of every line,
 * text or JSON (`ANNAL_LOG_FORMAT`).
 *
 * Effect's own request logger (`HttpMiddleware.logger`) annotates its line with the method, path and status only,
 * and it runs outside the router, where `RequestContext` has not yet chosen the correlation id (the caller's
 * `X-Correlation-Id`, or a new one). `middleware` takes its place: it logs the same line, `Sent HTTP response` with
 * `http.method`, `http.url` (the path, without the query, which may hold filter values) and `http.status`, and adds
 * `correlationId`, read from the response, where `RequestContext` echoes it on every answer; the request's own
 * header stands in when no response was made (a client that went away).
 *
 * With `ANNAL_LOG_FORMAT=json` every line is one JSON object (Effect's `Logger.consoleJson`: `message`, `level`,
 * `timestamp`, `annotations`, `spans`, `cause`), for a log shipper; the default, `text`, keeps Effect's console
 * logger, for a terminal.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import type * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Schema from "effect/Schema"
import { correlationIdHeader } from "./RequestContext.ts"

/** The formats of the log. */
export const LogFormat = Schema.Literals(["text", "json"])

/** A format of the log. */
export type LogFormat = typeof LogFormat.Type

/** `ANNAL_LOG_FORMAT`: `text` (the default) or `json`. */
export const config: Config.Config<LogFormat> = Config.schema(LogFormat, "ANNAL_LOG_FORMAT").pipe(
  Config.withDefault<LogFormat>("text")
)

/** The loggers of `format`: Effect's console logger for `text`, one JSON object a line for `json`. */
export const layerFormat = (format: LogFormat): Layer.Layer<never> =>
  format === "json" ? Logger.layer([Logger.consoleJson]) : Layer.empty

/** The log format of `ANNAL_LOG_FORMAT`. */
export const layerFormatConfig: Layer.Layer<never, Config.ConfigError> = Layer.unwrap(Effect.map(config, layerFormat))

const pathOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

/**
 * The request log, as `HttpRouter.serve`'s `middleware` (with `disableLogger: true`, so that Effect's own line is
 * not logged too): one line per request with its method, path, status and correlation id.
 */
export const middleware = <E, R>(
  httpApp: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const exit = yield* Effect.exit(httpApp)
    // A failure is answered as Effect's server answers it (499 for a client that went away, 500 otherwise).
    const response = exit._tag === "Success" ? exit.value : HttpServerError.causeResponseStripped(exit.cause)[0]
    const correlationId = response.headers[correlationIdHeader] ?? request.headers[correlationIdHeader]
    const annotations = {
      "http.method": request.method,
      "http.url": pathOf(request.url),
      "http.status": response.status,
      ...(correlationId === undefined ? {} : { correlationId })
    }
    yield* Effect.log("Sent HTTP response").pipe(Effect.annotateLogs(annotations))
    return yield* exit
  }).pipe(Effect.withLogSpan("http.span"))
