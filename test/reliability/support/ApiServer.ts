/**
 * The Organization app for the battery's API tests, over a fresh PostgreSQL database of its own with the statement
 * timeout the app sets in production: either the app exactly as `App.layer` assembles it, or the same parts with one
 * swapped for a deliberately broken one (an access policy that allows everything, a cursor check that lets its refusal
 * escape raw, a store with a slow query, no time bound). And a client that sends a request as written, without the
 * normalizing of Effect's `HttpClientRequest` (which re-encodes the query, turning `%zz` into a valid `%25zz`), and
 * reports what came back and how long it took.
 */
import { PgFeedSignal } from "@annal/sql-pg"
import { NodeHttpServer } from "@effect/platform-node"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import { Database } from "@annal/cli"
import type { FeedSignal } from "@annal/core"
import * as EventEmitter from "../../../packages/core/src/EventEmitter.ts"
import * as AuditService from "../../../packages/core/src/AuditService.ts"
import * as EventStore from "../../../packages/core/src/EventStore.ts"
import * as Integrity from "../../../packages/core/src/Integrity.ts"
import * as ApiTokens from "../../../packages/http/src/ApiTokens.ts"
import * as AuditAccess from "../../../packages/http/src/AuditAccess.ts"
import * as AuditHandlers from "../../../packages/http/src/AuditHandlers.ts"
import * as AuditExport from "../../../packages/http/src/AuditExport.ts"
import * as AuditReportsHandlers from "../../../packages/http/src/AuditReportsHandlers.ts"
import * as Authentication from "../../../packages/http/src/Authentication.ts"
import * as PageCursor from "../../../packages/http/src/PageCursor.ts"
import * as RequestContext from "../../../packages/http/src/RequestContext.ts"
import * as RequestTimeout from "../../../packages/http/src/RequestTimeout.ts"
import * as RequestValidation from "../../../packages/http/src/RequestValidation.ts"
import * as Access from "../../../examples/organization/src/Access.ts"
import { Api } from "../../../examples/organization/src/Api.ts"
import * as App from "../../../examples/organization/src/App.ts"
import * as Commodities from "../../../examples/organization/src/Commodities.ts"
import * as DemoUsers from "../../../examples/organization/src/DemoUsers.ts"
import { OrganizationEvents } from "../../../examples/organization/src/Events.ts"
import * as Memberships from "../../../examples/organization/src/Memberships.ts"
import * as Projections from "../../../examples/organization/src/Projections.ts"
import {
  CommoditiesHandlers,
  OrganizationsHandlers,
  SystemHandlers
} from "../../../examples/organization/src/Handlers.ts"
import * as NodeServer from "../../../examples/organization/src/NodeServer.ts"
import * as Organizations from "../../../examples/organization/src/Organizations.ts"
import * as TestApp from "../../../examples/organization/test/support/TestApp.ts"

/** A caller: a name for reports, and the `Authorization` header it sends, if any. */
export interface Caller {
  readonly name: string
  readonly authorization?: string
  /** The user the token stands for; absent for callers without a known token. */
  readonly userId?: string
  readonly role?: string
}

/** A user with a token of a role that means nothing to the audit API, who has written nothing. */
export const erin = {
  name: "erin",
  userId: "e2140000-0000-4000-8000-000000000005",
  role: "viewer",
  token: "battery-erin"
} as const

/** Every caller of the matrix: the demo users, a user of another role, no token, an unknown token, another scheme. */
export const callers: ReadonlyArray<Caller> = [
  ...[...DemoUsers.users, erin].map((user) => ({
    name: user.name,
    authorization: `Bearer ${user.token}`,
    userId: user.userId,
    role: user.role
  })),
  { name: "no token" },
  { name: "unknown token", authorization: "Bearer demo-mallory" },
  { name: "basic scheme", authorization: `Basic ${btoa("dana:demo-auditor")}` }
]

/** The caller named `name`. */
export const caller = (name: string): Caller => callers.find((c) => c.name === name)!

/** The tokens the battery's apps accept: the demo users' and erin's. */
export const tokenEntries: Effect.Effect<ReadonlyArray<ApiTokens.TokenEntry>> = Effect.map(
  ApiTokens.hash(erin.token),
  (sha256) => [{ name: erin.name, sha256, userId: erin.userId, role: erin.role }]
).pipe(Effect.zipWith(DemoUsers.tokenEntries, (extra, demo) => [...demo, ...extra]))

/** How the app's connections and requests are bounded. */
export interface Bounds {
  /** PostgreSQL's `statement_timeout` on every connection; unbounded when absent. */
  readonly statementTimeout?: Duration.Input | undefined
  /** The request timeout; none at all when absent (only the broken variants go without). */
  readonly requestTimeout?: Duration.Input | undefined
}

/** The bounds the app runs with in production: `ANNAL_STATEMENT_TIMEOUT`'s default for both. */
export const productionBounds: Bounds = {
  statementTimeout: RequestTimeout.defaultTimeout,
  requestTimeout: RequestTimeout.defaultTimeout
}

/** A `SqlClient` over a fresh database on the shared PostgreSQL, dropped when the scope closes. */
export const sqlLayer = (bounds: Bounds): Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, unknown> =>
  Layer.unwrap(
    Effect.map(TestApp.postgresDatabase, (name) =>
      PgFeedSignal.layerClient({
        url: Redacted.make(TestApp.databaseUrl(name)),
        maxConnections: 10,
        ...Database.postgresOptions({ statementTimeout: bounds.statementTimeout })
      })
    )
  )

/** The app as `App.layer` assembles it, with the production bounds and the given stream limits, on a free port. */
export const realWith = (eventStream: App.EventStreamLimits) =>
  Layer.unwrap(
    Effect.map(tokenEntries, (tokens) =>
      App.layer({ port: 0, host: "127.0.0.1", tokens, requestTimeout: productionBounds.requestTimeout, eventStream })
    )
  ).pipe(Layer.provideMerge(sqlLayer(productionBounds)), Layer.orDie)

/** The app as `App.layer` assembles it, with the production bounds, on a free port. */
export const real = realWith({})

/** The parts a variant may swap; each defaults to the app's own. */
export interface Parts {
  readonly bounds?: Bounds
  readonly access?: Layer.Layer<AuditAccess.AuditAccess, never, EventStore.EventStore>
  readonly authentication?: Layer.Layer<Authentication.Authentication, never, ApiTokens.ApiTokens>
  readonly pageCursor?: Layer.Layer<PageCursor.PageCursor>
  readonly requestValidation?: Layer.Layer<RequestValidation.RequestValidation>
  /** Wraps the store the audit handlers read with. */
  readonly store?: (
    store: EventStore.EventStore["Service"]
  ) => Effect.Effect<EventStore.EventStore["Service"], never, SqlClient.SqlClient>
}

/** No bound at all: a request may run as long as its handler does. */
const unbounded = Layer.succeed(
  RequestTimeout.RequestTimeout,
  RequestTimeout.RequestTimeout.of((httpEffect) => httpEffect)
)

/**
 * The app assembled from the same parts as `App.layer` (the same API, handlers, services and middleware), with the
 * given ones swapped. With none swapped it is the real app; the battery uses `real` for that, so that a drift of this
 * copy from `App.layer` cannot hide a fault of the app.
 */
export const variant = (parts: Parts) => {
  const bounds = parts.bounds ?? productionBounds
  const routes = Layer.mergeAll(HttpApiBuilder.layer(Api), RequestContext.layer).pipe(
    Layer.provide([
      OrganizationsHandlers,
      CommoditiesHandlers,
      SystemHandlers,
      AuditHandlers.layer(Api, { registry: OrganizationEvents }),
      AuditReportsHandlers.layer(Api, { registry: OrganizationEvents, projections: Projections.projections }),
      AuditExport.layer(Api, { registry: OrganizationEvents })
    ]),
    Layer.provide([
      parts.authentication ?? Authentication.layer,
      parts.requestValidation ?? RequestValidation.layer,
      bounds.requestTimeout === undefined ? unbounded : RequestTimeout.layer(bounds.requestTimeout)
    ])
  )
  const store =
    parts.store === undefined
      ? Layer.empty
      : Layer.effect(
          EventStore.EventStore,
          EventStore.EventStore.use((inner) => parts.store!(inner))
        )
  const services = Layer.mergeAll(Organizations.layer, Commodities.layer, parts.access ?? Access.layer).pipe(
    Layer.provideMerge(Layer.mergeAll(EventEmitter.layer, Integrity.layer(), Memberships.layer)),
    Layer.provideMerge(EventStore.layer()),
    Layer.provide(App.migrations)
  )
  return Layer.unwrap(
    Effect.map(tokenEntries, (tokens) =>
      HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true }).pipe(
        // The audit handlers read through the AuditService, so it is built over the (possibly wrapped) store.
        Layer.provide(Layer.effect(AuditService.AuditService, AuditService.make)),
        Layer.provide(store),
        Layer.provide(services),
        Layer.provide([ApiTokens.layer(tokens), parts.pageCursor ?? PageCursor.layerRandom]),
        Layer.provideMerge(NodeHttpServer.layer(NodeServer.make, { port: 0, host: "127.0.0.1" }))
      )
    )
  ).pipe(Layer.provideMerge(sqlLayer(bounds)), Layer.orDie)
}

/** What the client needs of the app in context: its address. */
export type Served = HttpServer.HttpServer

/** What came back for one request, as a client sees it. */
export interface Answer {
  /** 0 when no response came (the connection failed, or the client gave up at `giveUpAfter`). */
  readonly status: number
  readonly contentType: string
  readonly text: string
  /** The parsed body, if it was JSON. */
  readonly body: Option.Option<unknown>
  readonly millis: number
  /** Why no response came. */
  readonly error?: string
}

const parseJson = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Unknown))

/** What to send besides the method and path. */
export interface RequestOptions {
  /** How long to wait for the answer before giving up on it. */
  readonly giveUpAfter: Duration.Input
  /** A JSON body. */
  readonly body?: unknown
  readonly headers?: Record<string, string>
}

/**
 * Sends `method path` (a path and query exactly as written) as `caller`, and waits at most `giveUpAfter` for the
 * answer.
 */
export const send = (method: "GET" | "POST" | "PATCH", path: string, caller: Caller, options: RequestOptions) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const url = `${HttpServer.formatAddress(server.address)}${path}`
    const headers: Record<string, string> = {
      ...options.headers,
      ...(caller.authorization === undefined ? {} : { authorization: caller.authorization }),
      ...(options.body === undefined ? {} : { "content-type": "application/json" })
    }
    const init: RequestInit =
      options.body === undefined ? { method, headers } : { method, headers, body: JSON.stringify(options.body) }
    const sent = yield* Effect.timeoutOption(
      Effect.timed(
        Effect.tryPromise({
          try: (signal) =>
            fetch(url, { ...init, signal }).then((response) =>
              response.text().then((text) => ({
                status: response.status,
                contentType: response.headers.get("content-type") ?? "",
                text
              }))
            ),
          catch: (error) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))
        }).pipe(Effect.result)
      ),
      options.giveUpAfter
    )
    if (Option.isNone(sent)) {
      return { status: 0, contentType: "", text: "", body: Option.none(), millis: Infinity, error: "no answer in time" }
    }
    const [duration, result] = sent.value
    const millis = Duration.toMillis(duration)
    if (result._tag === "Failure") {
      return { status: 0, contentType: "", text: "", body: Option.none(), millis, error: result.failure }
    }
    const { status, contentType, text } = result.success
    return {
      status,
      contentType,
      text,
      body: contentType.includes("json") ? parseJson(text) : Option.none(),
      millis
    } satisfies Answer
  })

/** Sends `GET path` as `caller`, waiting at most `giveUpAfter`. */
export const get = (path: string, caller: Caller, giveUpAfter: Duration.Input) =>
  send("GET", path, caller, { giveUpAfter })
