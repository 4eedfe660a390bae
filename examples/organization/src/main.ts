/**
 * `npm start`: runs the Organization app on the database the environment names (embedded PGlite under
 * `ANNAL_DATA_DIR` by default, PostgreSQL with `DATABASE_URL`), and prints where it listens, where its
 * documentation is and, without `ANNAL_API_TOKENS`, the demo users' tokens. SIGINT or SIGTERM stops it gracefully:
 * in-flight requests finish, then the server and the database close.
 *
 * @since 0.1.0
 */
import { Database } from "@annal/cli"
import { RequestLog, Telemetry } from "@annal/http"
import { NodeRuntime } from "@effect/platform-node"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpServer from "effect/http/HttpServer"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as App from "./App.ts"
import * as AppConfig from "./AppConfig.ts"
import * as DemoUsers from "./DemoUsers.ts"

const banner = (settings: AppConfig.AppConfig) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* HttpServer.HttpServer
      const url = HttpServer.formatAddress(server.address).replace("127.0.0.1", "localhost")
      const lines = [
        `Organization app on ${Database.describe(settings.database)}`,
        `  API:           ${url}`,
        `  documentation: ${url}${App.docsPath}`,
        `  OpenAPI:       ${url}${App.openApiPath}`
      ]
      if (Option.isNone(settings.tokens)) {
        lines.push("  demo tokens (ANNAL_API_TOKENS is not set; do not use these beyond a demo):")
        for (const user of DemoUsers.users) {
          lines.push(`    ${user.token.padEnd(14)} ${user.name} (${user.role}), user id ${user.userId}`)
        }
        lines.push(`  try: curl -H "Authorization: Bearer ${DemoUsers.user("alice").token}" ${url}/commodities`)
      }
      lines.push("Stop with Ctrl-C.")
      yield* Console.log(lines.join("\n"))
      yield* Effect.addFinalizer(() => Console.log("Stopping: finishing the requests in flight..."))
    })
  )

/** The app could not start; its message says why and what to do, and is printed alone, without a stack trace. */
class StartFailed extends Data.TaggedError("StartFailed")<{ readonly message: string }> {
  override readonly [Runtime.errorReported] = false
}

/** Why the server could not listen, for an operator: a port in use names the port and the way out. */
const listenFailure = (settings: AppConfig.AppConfig, cause: unknown): string => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  const where = `port ${settings.port} on ${settings.host}`
  return code === "EADDRINUSE"
    ? `Cannot listen on ${where}: another process uses it. Stop that process, or set PORT to a free port (PORT=0 picks one).`
    : code === "EACCES"
      ? `Cannot listen on ${where}: permission denied. Use a port above 1023, or set HOST and PORT to ones this user may bind.`
      : code === "EADDRNOTAVAIL"
        ? `Cannot listen on ${where}: ${settings.host} is not an address of this machine. Set HOST to one that is.`
        : `Cannot listen on ${where}: ${String(cause)}`
}

const main = Effect.gen(function* () {
  const settings = yield* AppConfig.config
  const tokens = yield* Option.match(settings.tokens, {
    onNone: () => DemoUsers.tokenEntries,
    onSome: Effect.succeed
  })
  const server = App.layer({
    port: settings.port,
    host: settings.host,
    tokens,
    shutdownTimeout: settings.shutdownTimeout,
    requestTimeout: settings.statementTimeout,
    logRequests: true,
    metricsTokenSha256: Option.getOrUndefined(settings.metricsTokenSha256),
    telemetry: Option.getOrUndefined(settings.telemetry)
  })
  // Around everything, so that every span is exported, and released last, so that the shutdown's spans are too.
  const tracer = Option.match(settings.telemetry, {
    onNone: () => Layer.empty,
    onSome: (telemetry) => Telemetry.layerTracer(telemetry).pipe(Layer.provide(FetchHttpClient.layer))
  })
  return yield* Layer.launch(
    banner(settings).pipe(
      Layer.provide(server),
      // On PGlite the client holds the data folder's lock: a second app or `annal verify` beside it is refused.
      Layer.provide(Database.layer(settings.database, { statementTimeout: settings.statementTimeout })),
      Layer.provide(tracer)
    )
  ).pipe(
    Effect.provide(RequestLog.layerFormat(settings.logFormat)),
    Effect.onInterrupt(() => Console.log("Stopped: requests finished, connections closed.")),
    Effect.catchTag("ServeError", (error) =>
      Effect.andThen(
        Console.error(listenFailure(settings, error.cause)),
        Effect.fail(new StartFailed({ message: listenFailure(settings, error.cause) }))
      )
    )
  )
})

/** A stop on request (SIGINT, SIGTERM) that shut down cleanly is a success, not an interruption (130). */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

main.pipe(NodeRuntime.runMain({ teardown }))
