/**
 * The context of each HTTP request, captured once where the request enters: the client's address and user agent,
 * a correlation id (the caller's `X-Correlation-Id`, or a new one) and the caller's optional reason
 * (`X-Change-Reason`). They become the request's `EventContext`, so every event a handler emits carries them
 * without handler code passing them, and the correlation id is echoed on every response, errors included.
 *
 * It is a global router middleware, so it also sees what escapes the API's own error handling: an unknown route,
 * an unreadable body, a defect. Those are answered here with the same typed JSON errors (`NotFound`,
 * `InvalidRequest`, `InternalError`), so no response leaves the server without a body, and a defect is logged with
 * its correlation id while the caller sees only that id.
 *
 * @since 0.1.0
 */
import { EventContext, type Event } from "@annal/core"
import * as ByteSize from "effect/ByteSize"
import * as Cause from "effect/Cause"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Effect from "effect/Effect"
import * as Headers from "effect/http/Headers"
import * as HttpIncomingMessage from "effect/http/HttpIncomingMessage"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Types from "effect/Types"
import { InternalError, InvalidRequest, NotFound } from "./ApiError.ts"

/** The request header that carries a correlation id, and the response header that echoes it. */
export const correlationIdHeader = "x-correlation-id"

/** The request header that carries the caller's reason for a change. */
export const reasonHeader = "x-change-reason"

/** The longest correlation id and reason accepted. */
export const maxCorrelationIdLength = 128
export const maxReasonLength = 500

/** The largest request body read by default: 1 MiB, far above any audit or business request of the API. */
export const defaultMaxBodySize: ByteSize.ByteSize = ByteSize.mebibytes(1)

/** Options of the middleware. */
export interface Options {
  /**
   * The largest request body the server reads (default 1 MiB). A larger one is answered 413 `InvalidRequest`:
   * before any of it is read when its `Content-Length` says so, and as soon as the limit is passed otherwise.
   */
  readonly maxBodySize?: ByteSize.Input | undefined
}

/** The middleware with `options`, for the router of the application that serves the API. */
export const layerWith = (options: Options = {}): Layer.Layer<never, never, HttpRouter.HttpRouter> => {
  const maxBodySize =
    options.maxBodySize === undefined ? defaultMaxBodySize : ByteSize.fromInputUnsafe(options.maxBodySize)
  return HttpRouter.middleware(
    (
      httpEffect
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const given = headerValue(request, correlationIdHeader)
        const correlationId = given ?? SecureRandom.uuidV4Unsafe()
        const echo = (response: HttpServerResponse.HttpServerResponse) =>
          secured(HttpServerResponse.setHeader(response, correlationIdHeader, correlationId))
        // `;` would end the path for the router (as a query would), so a proxy rule on the path would not see
        // what the route does: refused.
        if (request.url.split("?")[0]!.includes(";")) {
          return echo(errorResponse(400, InvalidRequest.field("path", "must not contain ;")))
        }
        const problem = validate(given, headerValue(request, reasonHeader))
        if (problem !== undefined) return echo(errorResponse(400, problem))
        if (declaresMore(request, maxBodySize)) {
          // Answered before a byte of the body is read; the connection closes rather than draining the rest.
          return echo(HttpServerResponse.setHeader(errorResponse(413, tooLarge(maxBodySize)), "connection", "close"))
        }
        const metadata = metadataOf(request, correlationId)
        const response = yield* httpEffect.pipe(
          Effect.catchCause((cause) => answer(request, cause, correlationId, maxBodySize)),
          EventContext.provide({ metadata }),
          // A body without a length, or one longer than it said, is read up to the limit and no further.
          Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBodySize)
        )
        return echo(typed(request, response, correlationId, maxBodySize))
      }),
    { global: true }
  )
}

/** The middleware, for the router of the application that serves the API, reading bodies of at most 1 MiB. */
export const layer: Layer.Layer<never, never, HttpRouter.HttpRouter> = layerWith()

/**
 * Every response says what it is and where it may appear: no MIME sniffing, never in a frame, and, for JSON, no
 * content of any kind; a page that sets its own policy (the documentation page) keeps it, framing aside.
 */
const secured = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  const contentType = response.body._tag === "Empty" ? "" : (response.body.contentType ?? "")
  const policy = response.headers["content-security-policy"]
  return HttpServerResponse.setHeaders(response, {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy":
      policy !== undefined
        ? policy.includes("frame-ancestors")
          ? policy
          : `${policy}; frame-ancestors 'none'`
        : contentType.includes("json")
          ? "default-src 'none'; frame-ancestors 'none'"
          : "frame-ancestors 'none'"
  })
}

/** Whether the request's `Content-Length` says its body is longer than `max`. */
const declaresMore = (request: HttpServerRequest.HttpServerRequest, max: ByteSize.ByteSize): boolean => {
  const length = request.headers["content-length"]?.trim()
  return length !== undefined && /^\d+$/.test(length) && BigInt(length) > max
}

const tooLarge = (max: ByteSize.ByteSize): InvalidRequest =>
  InvalidRequest.field("body", `is larger than the ${ByteSize.format(max)} this server reads`)

/** The event metadata of a request: where it came from and why. */
export const metadataOf = (
  request: HttpServerRequest.HttpServerRequest,
  correlationId: string
): Event.EventMetadata => {
  const ipAddress = Option.map(request.remoteAddress, unmapIpv4)
  const userAgent = headerValue(request, "user-agent")
  const reason = headerValue(request, reasonHeader)
  return {
    correlationId,
    ...(Option.isSome(ipAddress) ? { ipAddress: ipAddress.value } : {}),
    ...(userAgent === undefined ? {} : { userAgent: userAgent.slice(0, 512) }),
    ...(reason === undefined ? {} : { reason })
  }
}

/**
 * A header's value, or undefined when it is absent or blank. Node reads header bytes as Latin-1, one character per
 * byte; a value whose bytes are UTF-8 (the reason `Überweisung ✓`, as a client sends it) is decoded as UTF-8, and any
 * other is kept as Node read it.
 */
const headerValue = (request: HttpServerRequest.HttpServerRequest, name: string): string | undefined => {
  const value = request.headers[name]?.trim()
  return value === undefined || value.length === 0 ? undefined : decodeUtf8(value)
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const decodeUtf8 = (latin1: string): string => {
  // Plain ASCII, the usual case, reads the same either way.
  if (!/[\u0080-\uffff]/.test(latin1)) return latin1
  // A character above one byte means the value did not come from Node's Latin-1 reading: keep it.
  if (/[\u0100-\uffff]/.test(latin1)) return latin1
  try {
    return utf8.decode(Uint8Array.from(latin1, (character) => character.charCodeAt(0)))
  } catch {
    return latin1
  }
}

// Node reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
const unmapIpv4 = (address: string): string => (address.startsWith("::ffff:") ? address.slice(7) : address)

// Visible ASCII only: a correlation id is copied into logs and other systems' headers.
const correlationIdPattern = /^[\x21-\x7e]+$/
// C0, DEL and C1 (U+0080 to U+009F, which terminals read as control sequences).
// oxlint-disable-next-line no-control-regex
const controlCharacter = /[\u0000-\u001f\u007f-\u009f]/

const validate = (correlationId: string | undefined, reason: string | undefined): InvalidRequest | undefined => {
  if (
    correlationId !== undefined &&
    (correlationId.length > maxCorrelationIdLength || !correlationIdPattern.test(correlationId))
  ) {
    return InvalidRequest.field(
      `header.${correlationIdHeader}`,
      `must be 1 to ${maxCorrelationIdLength} visible ASCII characters`
    )
  }
  if (reason !== undefined && (reason.length > maxReasonLength || controlCharacter.test(reason))) {
    return InvalidRequest.field(
      `header.${reasonHeader}`,
      `must be at most ${maxReasonLength} characters, without control characters`
    )
  }
  return undefined
}

/**
 * The answer to a request whose handling failed outside the API's typed errors: Effect's own response for it
 * (404 for an unknown route, 400 for an unreadable body, 500 for a defect), with a typed body. Interruptions pass
 * through, so that client aborts and shutdown keep their meaning.
 */
const answer = (
  request: HttpServerRequest.HttpServerRequest,
  cause: Cause.Cause<Types.unhandled>,
  correlationId: string,
  maxBodySize: ByteSize.ByteSize
): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled> =>
  Cause.hasInterruptsOnly(cause)
    ? Effect.failCause(cause)
    : Effect.gen(function* () {
        const [response] = yield* HttpServerError.causeResponse(cause)
        if (response.status >= 500) {
          yield* Effect.logError(`${request.method} ${request.url} failed`, cause).pipe(
            Effect.annotateLogs({ correlationId })
          )
        }
        return typed(request, response, correlationId, maxBodySize)
      })

/**
 * An error response with a JSON body as it is; one without (Effect's empty 404, 400, 413, 500, or its plain-text
 * 415) with the typed error of its status. A 401 says which scheme to use (RFC 6750).
 */
const typed = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse,
  correlationId: string,
  maxBodySize: ByteSize.ByteSize
): HttpServerResponse.HttpServerResponse => {
  const status = response.status
  const withScheme =
    status === 401 ? HttpServerResponse.setHeader(response, "www-authenticate", 'Bearer realm="annal"') : response
  const contentType = withScheme.body._tag === "Empty" ? "" : (withScheme.body.contentType ?? "")
  if (status < 400 || contentType.includes("json")) return withScheme
  return errorResponse(
    status,
    status === 404
      ? new NotFound({ message: `Nothing at ${request.method} ${request.url.split("?")[0]}` })
      : status === 413
        ? tooLarge(maxBodySize)
        : status === 415
          ? InvalidRequest.field("header.content-type", "must be application/json")
          : status < 500
            ? InvalidRequest.field("request", "could not be read")
            : new InternalError({ message: "The server failed; quote the correlation id", correlationId }),
    withScheme
  )
}

const encodeError = Schema.encodeSync(Schema.toCodecJson(Schema.Union([InvalidRequest, NotFound, InternalError])))

const errorResponse = (
  status: number,
  error: InvalidRequest | NotFound | InternalError,
  original?: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(encodeError(error), {
    status,
    // The original's other headers (such as the scheme of a 401) are kept; its body's are not.
    ...(original === undefined
      ? {}
      : { headers: Headers.remove(Headers.remove(original.headers, "content-type"), "content-length") })
  })
