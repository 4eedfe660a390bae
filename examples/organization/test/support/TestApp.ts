/**
 * The Organization app for one test file, over real HTTP: a fresh database on the engine the test project names
 * (`ANNAL_ENGINE`): a new in-memory PGlite, or a new PostgreSQL database that is dropped when the file's tests
 * end, with the app's migrations run on it as `npm start` runs them, and the server listening on a free port. The
 * helpers send requests as a client would and return the status, headers and parsed JSON body.
 */
import type { FeedSignal } from "@annal/core"
import { PgliteClient } from "@annal/sql-pglite"
import { PgFeedSignal } from "@annal/sql-pg"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as Headers from "effect/http/Headers"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as App from "../../src/App.ts"
import * as DemoUsers from "../../src/DemoUsers.ts"

/** The engine of this test run. */
export const engine: "pglite" | "postgres" = process.env["ANNAL_ENGINE"] === "postgres" ? "postgres" : "pglite"

/** The local PostgreSQL of this machine and CI, whose database `test` the test databases are created from. */
export const adminUrl = process.env["ANNAL_TEST_DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"

/** The URL of database `name` on the test server. */
export const databaseUrl = (name: string): string => {
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

const admin = (statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* statement(sql)
  }).pipe(Effect.provide(PgFeedSignal.layerClient({ url: Redacted.make(adminUrl), maxConnections: 1 })), Effect.orDie)

/** A PostgreSQL database of its own for the scope, dropped (with any connection left) when the scope closes. */
export const postgresDatabase = Effect.acquireRelease(
  Effect.gen(function* () {
    // Named after the run (test/support/RunDatabase.ts), so that a killed run's databases are dropped by the next.
    const name = `${process.env["ANNAL_TEST_RUN"] ?? "annal"}_org_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`
    yield* admin((sql) => sql`CREATE DATABASE ${sql(name)}`)
    return name
  }),
  (name) => admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`).pipe(Effect.ignore)
)

/** A `SqlClient` over a fresh, empty database on the engine under test. */
export const sqlLayer: Layer.Layer<SqlClient.SqlClient | FeedSignal.FeedSignal, unknown> =
  engine === "postgres"
    ? Layer.unwrap(
        Effect.map(postgresDatabase, (name) =>
          PgFeedSignal.layerClient({ url: Redacted.make(databaseUrl(name)), maxConnections: 10 })
        )
      )
    : PgliteClient.layer({})

/**
 * The request timeout of the test app: production's 5 seconds is sized for an answer to a client, not for a request
 * on a machine loaded by other test suites, where a legitimate one can take longer. A test of the timeout itself
 * sets its own (`Process.test.ts` runs `main.ts` with a small `ANNAL_STATEMENT_TIMEOUT`).
 */
export const requestTimeout = Duration.seconds(60)

/** The app on a free port over a fresh database, with the demo users' tokens, and an HTTP client. */
export const layer = Layer.unwrap(
  Effect.map(DemoUsers.tokenEntries, (tokens) => App.layer({ port: 0, host: "127.0.0.1", tokens, requestTimeout }))
).pipe(Layer.provideMerge(sqlLayer), Layer.provideMerge(FetchHttpClient.layer), Layer.orDie)

/**
 * Options for `layer(TestApp.layer, TestApp.layerOptions)`: the server runs on the live clock, as it does in
 * production, so events carry real timestamps and time filters mean what they say.
 */
export const layerOptions = { excludeTestServices: true } as const

/** A response, as a client sees it. */
export interface Response {
  readonly status: number
  readonly headers: Headers.Headers
  /** The parsed JSON body; `undefined` when there is none, or it is not JSON. */
  readonly body: unknown
  readonly text: string
}

/** What to send. */
export interface RequestOptions {
  /** A bearer token, or the name of a demo user whose token to send. */
  readonly as?: "alice" | "bob" | "carol" | "dana" | { readonly token: string } | undefined
  readonly body?: unknown
  readonly headers?: Record<string, string> | undefined
}

/** The base URL of the server under test. */
export const baseUrl = Effect.map(HttpServer.HttpServer, (server) => HttpServer.formatAddress(server.address))

/** Sends a request to the server under test. */
export const request = Effect.fnUntraced(function* (
  method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT",
  path: string,
  options: RequestOptions = {}
) {
  const base = yield* baseUrl
  const client = yield* HttpClient.HttpClient
  let outgoing = HttpClientRequest.make(method)(`${base}${path}`)
  if (options.as !== undefined) {
    const token = typeof options.as === "string" ? DemoUsers.user(options.as).token : options.as.token
    outgoing = HttpClientRequest.bearerToken(outgoing, token)
  }
  if (options.headers !== undefined) outgoing = HttpClientRequest.setHeaders(outgoing, options.headers)
  if (options.body !== undefined) {
    outgoing = HttpClientRequest.bodyText(
      outgoing,
      typeof options.body === "string" ? options.body : JSON.stringify(options.body),
      options.headers?.["content-type"] ?? "application/json"
    )
  }
  const response = yield* client.execute(outgoing)
  const text = yield* response.text
  // JSON, or a JSON type (`+json`); not NDJSON, whose lines are values of their own.
  const json = /^application\/(?:[\w.-]+\+)?json\b/.test(response.headers["content-type"] ?? "")
  const body =
    text === "" || !json ? undefined : yield* Schema.decodeUnknownEffect(Schema.fromJsonString(Schema.Unknown))(text)
  return { status: response.status, headers: response.headers, body, text } satisfies Response
}, Effect.orDie)

/** Decodes a JSON body with `schema`, failing the test with the schema's message when it does not fit. */
export const decode =
  <S extends Schema.Codec<unknown, unknown, never, never>>(schema: S) =>
  (body: unknown): S["Type"] =>
    Schema.decodeUnknownSync(Schema.toCodecJson(schema))(body)

/** An error body: its tag and message, and for a 400 its issues. */
export const ErrorBody = Schema.Struct({
  _tag: Schema.String,
  message: Schema.String,
  issues: Schema.optionalKey(Schema.Array(Schema.Struct({ field: Schema.String, reason: Schema.String }))),
  correlationId: Schema.optionalKey(Schema.String)
})

/** The fields a 400 names. */
export const issueFields = (body: unknown): ReadonlyArray<string> =>
  (decode(ErrorBody)(body).issues ?? []).map((issue) => issue.field)

/** The value of a header, lowercase name. */
export const header = (response: Response, name: string): string | undefined => response.headers[name]
