/**
 * The app, assembled: the HTTP routes (the API, its OpenAPI document at `/openapi.json` and its documentation
 * page at `/docs`), the services behind them, and the Node server. The database is the one requirement left
 * open, so `main` picks it from the environment and tests give each file a fresh one.
 *
 * @since 0.1.0
 */
import { EventEmitter, EventStore, Integrity, Migrations } from "@annal/core"
import { ApiTokens, AuditHandlers, Authentication, PageCursor, RequestContext, RequestValidation } from "@annal/http"
import { NodeHttpServer } from "@effect/platform-node"
import type * as Duration from "effect/Duration"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiSwagger from "effect/http-api/HttpApiSwagger"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as Access from "./Access.ts"
import { Api } from "./Api.ts"
import * as Commodities from "./Commodities.ts"
import { CommoditiesHandlers, OrganizationsHandlers, SystemHandlers } from "./Handlers.ts"
import * as OrganizationMigrations from "./Migrations.ts"
import * as Organizations from "./Organizations.ts"
import { OrganizationEvents } from "./Events.ts"

/** Where the OpenAPI document and the documentation page are served. */
export const openApiPath = "/openapi.json"
export const docsPath = "/docs"

/** The routes, over the services in context. */
export const routes = Layer.mergeAll(
  HttpApiBuilder.layer(Api, { openapiPath: openApiPath }),
  HttpApiSwagger.layer(Api, { path: docsPath }),
  RequestContext.layer
).pipe(
  Layer.provide([
    OrganizationsHandlers,
    CommoditiesHandlers,
    SystemHandlers,
    AuditHandlers.layer(Api, { registry: OrganizationEvents })
  ]),
  Layer.provide([Authentication.layer, RequestValidation.layer])
)

/** Both sets of migrations, the events table's first. */
export const migrations = OrganizationMigrations.layer.pipe(Layer.provide(Migrations.layer))

/** The services, over the `SqlClient` in context, built once the migrations have run. */
export const services = Layer.mergeAll(Organizations.layer, Commodities.layer, Access.layer).pipe(
  Layer.provideMerge(Layer.mergeAll(EventStore.layer, EventEmitter.layer, Integrity.layer)),
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
  /** Whether to log every request. */
  readonly logRequests?: boolean | undefined
}

/** The server, over the `SqlClient` in context; it provides `HttpServer` so the caller can read its address. */
export const layer = (options: ServerOptions) =>
  HttpRouter.serve(routes, { disableListenLog: true, disableLogger: options.logRequests !== true }).pipe(
    Layer.provide(services),
    Layer.provide([ApiTokens.layer(options.tokens), PageCursor.layerConfig]),
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, {
        port: options.port,
        ...(options.host === undefined ? {} : { host: options.host }),
        ...(options.shutdownTimeout === undefined ? {} : { gracefulShutdownTimeout: options.shutdownTimeout })
      })
    )
  )
