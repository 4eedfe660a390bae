/**
 * The app's settings, from the environment: `PORT` (3000; 0 picks a free port) and `HOST` (127.0.0.1) to listen on; the database
 * (`DATABASE_URL` for PostgreSQL, or else embedded PGlite under `ANNAL_DATA_DIR`, `.data/annal`); the API tokens
 * (`ANNAL_API_TOKENS`, or else the demo users'); the cursor key (`ANNAL_CURSOR_SECRET`, or else a random one); and
 * how long in-flight requests may take to finish at shutdown (`ANNAL_SHUTDOWN_TIMEOUT`, 10 seconds); and how long
 * a request may run (`ANNAL_STATEMENT_TIMEOUT`, 5 seconds): the bound of each statement on PostgreSQL, and of each
 * request, answered past it with a 503 `Timeout`. Operations: the SHA-256 of the token that may scrape `GET /metrics`
 * (`ANNAL_METRICS_TOKEN_SHA256`, or else no endpoint), OTLP export (`OTEL_EXPORTER_OTLP_ENDPOINT` and the other
 * `OTEL_*` of `Telemetry.config`, or else none) and the log format (`ANNAL_LOG_FORMAT`, `text` or `json`).
 *
 * @since 0.1.0
 */
import { Database } from "@annal/cli"
import { ApiTokens, Prometheus, RequestLog, Telemetry } from "@annal/http"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** The app's settings. */
export interface AppConfig {
  readonly port: number
  readonly host: string
  readonly database: Database.DatabaseConfig
  /** The configured tokens; none means the demo users'. */
  readonly tokens: Option.Option<ReadonlyArray<ApiTokens.TokenEntry>>
  readonly shutdownTimeout: Duration.Duration
  /** The longest a statement, and a request, may run. */
  readonly statementTimeout: Duration.Duration
  /** The SHA-256 of the scrape token of `GET /metrics`; none serves no endpoint. */
  readonly metricsTokenSha256: Option.Option<string>
  /** Where to export traces and metrics over OTLP; none exports nothing. */
  readonly telemetry: Option.Option<Telemetry.Options>
  readonly logFormat: RequestLog.LogFormat
}

/** The service name of the app's telemetry, unless `OTEL_SERVICE_NAME` names another. */
export const serviceName = "annal-organization"

/** A bound on statements and requests: 0 would time out every request, and PostgreSQL reads 0 as "none". */
const PositiveDuration = Schema.DurationFromString.check(
  Schema.makeFilter((duration) => Duration.toMillis(duration) > 0 || "must be longer than 0")
)

/** A port to listen on; 0 picks a free one. */
const Port = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))

/** Reads the settings from the environment. */
export const config: Config.Config<AppConfig> = Config.all({
  port: Config.schema(Port, "PORT").pipe(Config.withDefault(3000)),
  host: Config.String("HOST").pipe(Config.withDefault("127.0.0.1")),
  database: Database.config,
  tokens: Config.option(ApiTokens.config),
  shutdownTimeout: Config.Duration("ANNAL_SHUTDOWN_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  statementTimeout: Config.schema(PositiveDuration, "ANNAL_STATEMENT_TIMEOUT").pipe(
    Config.withDefault(Duration.seconds(5))
  ),
  metricsTokenSha256: Prometheus.config,
  telemetry: Telemetry.config(serviceName),
  logFormat: RequestLog.config
})
