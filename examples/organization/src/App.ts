/**
 * The app, assembled: the HTTP routes (the API, its OpenAPI document at `/openapi.json` and its documentation
 * page at `/docs`, and the live event stream at `/events/stream`), the services behind them, and the Node server.
 * The database is the one requirement left open, so `main` picks it from the environment and tests give each file a
 * fresh one.
 *
 * @since 0.1.0
 */
import { AuditService, Consumers, EventEmitter, EventStore, Feed, Integrity, Metrics, Migrations } from "@annal/core"
import {
  ApiTokens,
  AuditExport,
  AuditHandlers,
  AuditReportsHandlers,
  AuditUi,
  Authentication,
  EventStream,
  Health,
  Lifecycle,
  PageCursor,
  Prometheus,
  RequestContext,
  RequestLog,
  RequestTimeout,
  RequestValidation,
  Telemetry
} from "@annal/http"
import { NodeHttpServer } from "@effect/platform-node"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiSwagger from "effect/http-api/HttpApiSwagger"
import * as Layer from "effect/Layer"
import * as Access from "./Access.ts"
import { Api } from "./Api.ts"
import * as Commodities from "./Commodities.ts"
import * as DemoUsers from "./DemoUsers.ts"
import { CommoditiesHandlers, OrganizationsHandlers, SystemHandlers } from "./Handlers.ts"
import * as Memberships from "./Memberships.ts"
import * as OrganizationMigrations from "./Migrations.ts"
import * as NodeServer from "./NodeServer.ts"
import * as Organizations from "./Organizations.ts"
import * as Projections from "./Projections.ts"
import { OrganizationEvents } from "./Events.ts"

/** Where the OpenAPI document, the documentation page and the audit timeline are served. */
export const openApiPath = "/openapi.json"
export const docsPath = "/docs"
export const uiPath = "/ui"

/** The limits of the live event stream, `GET /events/stream`; each has a default. */
export type EventStreamLimits = Omit<EventStream.Options, "registry">

/** The routes, over the services in context. */
export const makeRoutes = (eventStream: EventStreamLimits = {}) =>
  Layer.mergeAll(
    HttpApiBuilder.layer(Api, { openapiPath: openApiPath }),
    HttpApiSwagger.layer(Api, { path: docsPath }),
    EventStream.layer({ registry: OrganizationEvents, ...eventStream }),
    AuditUi.layer({ path: uiPath, home: true }).pipe(Layer.provide(DemoUsers.directory)),
    // Liveness and readiness (`/health/live`, `/health/ready`), thresholds from ANNAL_READY_*; `/health` stays.
    Health.layerConfig,
    RequestContext.layer
  ).pipe(
    Layer.provide([
      OrganizationsHandlers,
      CommoditiesHandlers,
      SystemHandlers,
      AuditHandlers.layer(Api, { registry: OrganizationEvents }),
      AuditReportsHandlers.layer(Api, { registry: OrganizationEvents, projections: Projections.projections }),
      AuditExport.layer(Api, { registry: OrganizationEvents })
    ]),
    Layer.provide([Authentication.layer, RequestValidation.layer])
  )

/** The routes, with the event stream's default limits. */
export const routes = makeRoutes()

/** Both sets of migrations, the events table's first. */
export const migrations = OrganizationMigrations.layer.pipe(Layer.provide(Migrations.layer()))

/** The services, over the `SqlClient` in context, built once the migrations have run. */
export const services = Layer.mergeAll(Organizations.layer, Commodities.layer, Access.layer).pipe(
  Layer.provideMerge(Consumers.layer),
  Layer.provideMerge(
    Layer.mergeAll(EventEmitter.layer, AuditService.layer, Integrity.layer(), Feed.layer(), Memberships.layer)
  ),
  Layer.provideMerge(EventStore.layer()),
  Layer.provide(migrations)
)

/** How to serve. */
export interface ServerOptions {
  /** 0 picks a free port. */
  readonly port: number
  readonly host?: string | undefined
  readonly tokens: ReadonlyArray<ApiTokens.TokenEntry>
  /** How long in-flight requests may take to finish when the server stops. */
  readonly shutdownTimeout?: Duration.Input | undefined
  /** Whether to log every request, with its correlation id (`RequestLog.middleware`). */
  readonly logRequests?: boolean | undefined
  /**
   * The SHA-256 of the token that may scrape `GET /metrics` (`Prometheus.layer`); without it no endpoint is served.
   */
  readonly metricsTokenSha256?: string | undefined
  /** Where to export metrics over OTLP (`Telemetry.layerMetrics`); nowhere unless given. */
  readonly telemetry?: Telemetry.Options | undefined
  /** The limits of the live event stream (connections per user, buffer, heartbeat); defaults otherwise. */
  readonly eventStream?: EventStreamLimits | undefined
  /**
   * How long a request may take before it is stopped and answered with a 503 `Timeout`
   * (`RequestTimeout.defaultTimeout`, 5 seconds, unless given).
   */
  readonly requestTimeout?: Duration.Input | undefined
}

/**
 * The server, over the `SqlClient` in context; it provides `HttpServer` so the caller can read its address. The port
 * opens first and answers 503 until the migrations have run and the routes serve (`NodeServer.make`); when the layer
 * is released the drain begins before anything else stops: readiness turns red, live event streams end cleanly,
 * responses close their connections and idle ones are closed, then the server waits for the requests in flight.
 */
export const layer = (options: ServerOptions) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const server = yield* Effect.sync(NodeServer.make)
      const lifecycle = yield* Lifecycle.make
      // Built once the routes serve, so released before the server's own finalizer, which waits for connections.
      const phases = Layer.effectDiscard(
        Effect.andThen(
          lifecycle.markReady,
          Effect.addFinalizer(() =>
            Effect.andThen(
              lifecycle.drain,
              Effect.sync(() => NodeServer.drain(server))
            )
          )
        )
      )
      return phases.pipe(
        Layer.provideMerge(serve(options, server)),
        Layer.provide(Layer.succeed(Lifecycle.Lifecycle, lifecycle))
      )
    })
  )

/** The routes served on `server`, over the services. */
const serve = (options: ServerOptions, server: ReturnType<typeof NodeServer.make>) =>
  HttpRouter.serve(Layer.mergeAll(makeRoutes(options.eventStream), observability(options)), {
    disableListenLog: true,
    // Effect's own request log does not know the correlation id; `RequestLog.middleware` logs the same line with it.
    disableLogger: true,
    ...(options.logRequests === true ? { middleware: RequestLog.middleware } : {}),
    // `/AUDIT/EVENTS` is not `/audit/events`: a path means one route, as a proxy's rule on it reads it.
    routerConfig: { caseSensitive: true }
  }).pipe(
    Layer.provide(services),
    Layer.provide([
      ApiTokens.layer(options.tokens),
      PageCursor.layerConfig,
      RequestTimeout.layer(options.requestTimeout ?? RequestTimeout.defaultTimeout)
    ]),
    Layer.provideMerge(
      NodeHttpServer.layer(() => server, {
        port: options.port,
        ...(options.host === undefined ? {} : { host: options.host }),
        ...(options.shutdownTimeout === undefined ? {} : { gracefulShutdownTimeout: options.shutdownTimeout })
      })
    )
  )

/**
 * The metrics' readers the options ask for: `GET /metrics` for the holder of the scrape token, the OTLP metrics
 * export; both sample the database's gauges through one `Metrics.Sampler` over the services.
 */
const observability = (options: ServerOptions) =>
  Layer.mergeAll(
    options.metricsTokenSha256 === undefined
      ? Layer.empty
      : Prometheus.layer({ tokenSha256: options.metricsTokenSha256 }),
    options.telemetry === undefined
      ? Layer.empty
      : Telemetry.layerMetrics(options.telemetry).pipe(Layer.provide(FetchHttpClient.layer))
  ).pipe(Layer.provide(Metrics.layerSampler))
