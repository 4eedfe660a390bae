/**
 * A Prometheus scrape endpoint, `GET /metrics`: every metric in Effect's registry (the store's of
 * `@annal/core/Metrics`, the event streams', the webhooks', an application's own) in the Prometheus text format,
 * rendered by Effect's own `PrometheusMetrics.format`. The gauges that need a database read (consumer lag, feed fence,
 * last digest) are sampled by the `Metrics.Sampler` just before each scrape renders.
 *
 * Who may scrape: the holder of one scrape token, sent as `Authorization: Bearer <token>`, as Prometheus'
 * `authorization: { credentials_file: ... }` sends it. The endpoint shares the API's port, which is exposed to the
 * API's clients; its numbers hold no audit data (no payload, no user, no aggregate id), but counts by event type and
 * consumer names still describe the business, so it is not public. An API token does not open it either, and the
 * scrape token opens nothing else: a monitoring system is not an audit reader, nor the other way round. A separate
 * listener was the other choice; a token works through the proxies and network rules already in front of the API
 * and keeps one port to drain at shutdown. As with API tokens, the configuration holds only the token's SHA-256.
 *
 * @since 0.1.0
 */
import { Metrics } from "@annal/core"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Unauthenticated } from "./ApiError.ts"
import * as ApiTokens from "./ApiTokens.ts"

/** Where metrics are served by default. */
export const defaultPath = "/metrics"

/** The content type of the Prometheus text format. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/** Options of `layer`. */
export interface Options {
  /** The SHA-256 of the scrape token, 64 lowercase hex digits (`ApiTokens.hash` gives it). */
  readonly tokenSha256: string
  /** Where to serve (default `/metrics`). */
  readonly path?: HttpRouter.PathInput | undefined
}

/** The SHA-256 of a token, as the configuration holds it. */
export const TokenSha256 = Schema.String.check(
  Schema.isPattern(/^[0-9a-f]{64}$/, { message: "must be the SHA-256 of the scrape token, 64 lowercase hex digits" })
)

/** `ANNAL_METRICS_TOKEN_SHA256`, the SHA-256 of the scrape token; without it, no endpoint is served. */
export const config: Config.Config<Option.Option<string>> = Config.option(
  Config.schema(TokenSha256, "ANNAL_METRICS_TOKEN_SHA256")
)

const encodeUnauthenticated = Schema.encodeSync(Schema.toCodecJson(Unauthenticated))

const refused = (message: string) =>
  HttpServerResponse.jsonUnsafe(encodeUnauthenticated(new Unauthenticated({ message })), {
    status: 401,
    // The realm is the API's, which `RequestContext` sets on every 401.
    headers: { "www-authenticate": 'Bearer realm="annal"', "cache-control": "no-store" }
  })

// Far longer than any real token; anything longer is refused without hashing it.
const maxTokenLength = 1024

/** The bearer token of a request, if it sends one. */
const bearer = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")
  return match?.[1]
}

/**
 * `GET <path>` on the application's `HttpRouter`: the registry in the Prometheus text format, for the holder of the
 * scrape token, sampled by the `Metrics.Sampler` it is given.
 */
export const layer = (options: Options): Layer.Layer<never, never, HttpRouter.HttpRouter | Metrics.Sampler> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const expected = yield* Schema.decodeUnknownEffect(TokenSha256)(options.tokenSha256).pipe(Effect.orDie)
      const sampler = yield* Metrics.Sampler
      const scrape = Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const token = bearer(request)
        if (token === undefined) {
          return refused("Missing scrape token: send the header Authorization: Bearer <token>")
        }
        // Hashes compared, never the token: equal-length hex strings, and the hash hides how much of a guess matched.
        const presented = token.length > maxTokenLength ? "" : yield* ApiTokens.hash(token)
        if (presented !== expected) return refused("Unknown scrape token")
        yield* sampler.sample
        const body = yield* PrometheusMetrics.format()
        return HttpServerResponse.text(body, { contentType, headers: { "cache-control": "no-store" } })
      }).pipe(Effect.withSpan("Prometheus.scrape"))
      return HttpRouter.add("GET", options.path ?? defaultPath, scrape)
    })
  )

/** `layer` with the token of `ANNAL_METRICS_TOKEN_SHA256`, at `path`; nothing is served when it is not set. */
export const layerConfig = (
  options: { readonly path?: HttpRouter.PathInput | undefined } = {}
): Layer.Layer<never, Config.ConfigError, HttpRouter.HttpRouter | Metrics.Sampler> =>
  Layer.unwrap(
    Effect.map(config, (token) =>
      Option.match(token, {
        onNone: () => Layer.empty,
        onSome: (tokenSha256) => layer({ tokenSha256, path: options.path })
      })
    )
  )
