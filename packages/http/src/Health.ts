/**
 * Liveness and readiness for a load balancer or an orchestrator: `GET /health/live` says the process answers (200,
 * always, even while it starts), `GET /health/ready` whether it should be sent requests. Readiness checks the
 * server's `Lifecycle` (not while starting or draining), the database (a query answers in time), the feed's fence
 * (committed events that readers cannot reach yet, because a commit before theirs is still in flight, have waited no
 * longer than `maxFenceAge`) and each consumer's lag (no more than `maxConsumerLag` events, the oldest no older than
 * `maxConsumerLagAge`). A red answer is a 503 whose `problems` name what is wrong: the transaction holding the fence
 * (its pid and application), the consumer that lags. Neither route needs a token, and neither says more than that.
 *
 * `layer(thresholds)` adds both routes to the application's `HttpRouter`; `check` is the readiness report alone, for
 * an application that serves it its own way.
 *
 * @since 0.1.0
 */
import { Consumers, Feed } from "@annal/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import * as Lifecycle from "./Lifecycle.ts"

/** Where liveness and readiness are served. */
export const livePath = "/health/live"
export const readyPath = "/health/ready"

/** The bounds past which the server is not ready. */
export interface Thresholds {
  /** How long committed events may wait behind a commit in flight (default 30 seconds). */
  readonly maxFenceAge?: Duration.Input | undefined
  /** How many events a consumer may be behind (default 10 000). */
  readonly maxConsumerLag?: number | undefined
  /** How old a consumer's oldest unprocessed event may be (default 5 minutes). */
  readonly maxConsumerLagAge?: Duration.Input | undefined
  /** How long the database may take to answer (default 2 seconds). */
  readonly databaseTimeout?: Duration.Input | undefined
}

/** The defaults of `Thresholds`. */
export const defaults = {
  maxFenceAge: Duration.seconds(30),
  maxConsumerLag: 10_000,
  maxConsumerLagAge: Duration.minutes(5),
  databaseTimeout: Duration.seconds(2)
} as const

/** The thresholds from the environment: `ANNAL_READY_MAX_FENCE_AGE`, `..._MAX_CONSUMER_LAG`, `..._MAX_CONSUMER_LAG_AGE`. */
export const config: Config.Config<Thresholds> = Config.all({
  maxFenceAge: Config.Duration("ANNAL_READY_MAX_FENCE_AGE").pipe(Config.withDefault(defaults.maxFenceAge)),
  maxConsumerLag: Config.Int("ANNAL_READY_MAX_CONSUMER_LAG").pipe(Config.withDefault(defaults.maxConsumerLag)),
  maxConsumerLagAge: Config.Duration("ANNAL_READY_MAX_CONSUMER_LAG_AGE").pipe(
    Config.withDefault(defaults.maxConsumerLagAge)
  ),
  databaseTimeout: Config.Duration("ANNAL_READY_DATABASE_TIMEOUT").pipe(Config.withDefault(defaults.databaseTimeout))
})

/** One check of readiness. */
export interface Check {
  readonly name: string
  readonly ok: boolean
  /** What was found, in words. */
  readonly detail: string
}

/** The readiness report: ready when every check is. */
export interface Report {
  readonly status: "ready" | "not ready"
  readonly checks: ReadonlyArray<Check>
  /** The details of the checks that failed. */
  readonly problems: ReadonlyArray<string>
}

const toDuration = (input: Duration.Input | undefined, fallback: Duration.Duration): Duration.Duration =>
  input === undefined ? fallback : Option.getOrElse(Duration.fromInput(input), () => fallback)

/** Checks readiness, over the `Feed`, `Consumers` and `SqlClient` in context. */
export const check = Effect.fn("Health.check")(function* (thresholds: Thresholds = {}) {
  const sql = yield* SqlClient.SqlClient
  const feed = yield* Feed.Feed
  const consumers = yield* Consumers.Consumers
  const lifecycle = yield* Lifecycle.Lifecycle
  const maxFenceAge = toDuration(thresholds.maxFenceAge, defaults.maxFenceAge)
  const maxConsumerLag = thresholds.maxConsumerLag ?? defaults.maxConsumerLag
  const maxConsumerLagAge = toDuration(thresholds.maxConsumerLagAge, defaults.maxConsumerLagAge)
  const databaseTimeout = toDuration(thresholds.databaseTimeout, defaults.databaseTimeout)
  // Each check fails alone: a database that is down says so, and does not hide the server's phase.
  const failed = (name: string, doing: string) => (cause: unknown) =>
    Effect.succeed<ReadonlyArray<Check>>([{ name, ok: false, detail: `${doing} failed: ${describe(cause)}` }])
  const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.timeoutOrElse(effect, {
      duration: databaseTimeout,
      orElse: () => Effect.fail(`no answer within ${Duration.format(databaseTimeout)}`)
    })

  const phase = yield* lifecycle.phase
  const server: Check = {
    name: "server",
    ok: phase === "ready",
    detail: phase === "ready" ? "serving" : `the server is ${phase}`
  }
  const database = bounded(sql`SELECT 1`).pipe(
    Effect.as<ReadonlyArray<Check>>([{ name: "database", ok: true, detail: "answers" }]),
    Effect.catch(failed("database", "a query"))
  )
  const fence = bounded(feed.status).pipe(
    Effect.map((status): ReadonlyArray<Check> => {
      const age = Option.getOrElse(status.oldestPendingAge, () => Duration.zero)
      if (Duration.isLessThanOrEqualTo(age, maxFenceAge)) {
        return [{ name: "feed fence", ok: true, detail: `${status.pending} events waiting behind a commit` }]
      }
      const holders = status.committing.map(
        (transaction) =>
          `pid ${transaction.pid}${Option.match(transaction.applicationName, {
            onNone: () => "",
            onSome: (name) => (name === "" ? "" : ` (${name})`)
          })}, ${Option.getOrElse(transaction.state, () => "state unknown")}, for ${seconds(transaction.age)}`
      )
      return [
        {
          name: "feed fence",
          ok: false,
          detail:
            `${status.pending} committed events have waited ${seconds(age)} (over ${seconds(maxFenceAge)}) ` +
            `behind a commit in flight` +
            (holders.length === 0 ? "" : `: held by ${holders.join("; ")}`)
        }
      ]
    }),
    Effect.catch(failed("feed fence", "reading the feed's status"))
  )
  const lags = bounded(consumers.lag).pipe(
    Effect.map((all): ReadonlyArray<Check> =>
      all.map((lag) => {
        const age = Option.getOrElse(lag.oldestUnprocessedAge, () => Duration.zero)
        const tooMany = lag.eventsBehind > maxConsumerLag
        const tooOld = Duration.isGreaterThan(age, maxConsumerLagAge)
        const owner = Option.getOrElse(lag.owner, () => "no instance holds its lease")
        return {
          name: `consumer ${lag.name}`,
          ok: !tooMany && !tooOld,
          detail:
            `${lag.eventsBehind} events behind, the oldest ${seconds(age)} old (${owner})` +
            (tooMany ? `; over ${maxConsumerLag} events` : "") +
            (tooOld ? `; older than ${seconds(maxConsumerLagAge)}` : "")
        }
      })
    ),
    Effect.catch(failed("consumers", "reading the consumers' lag"))
  )
  const [databaseChecks, fenceChecks, lagChecks] = yield* Effect.all([database, fence, lags], {
    concurrency: "unbounded"
  })
  const checks = [server, ...databaseChecks, ...fenceChecks, ...lagChecks]
  const problems = checks.filter((one) => !one.ok).map((one) => `${one.name}: ${one.detail}`)
  return { status: problems.length === 0 ? "ready" : "not ready", checks, problems } satisfies Report as Report
})

/** A duration as an operator reads it: seconds to a tenth. */
const seconds = (duration: Duration.Duration): string => `${(Duration.toMillis(duration) / 1000).toFixed(1)} s`

const describe = (cause: unknown): string =>
  typeof cause === "string" ? cause : cause instanceof Error ? cause.message || cause.name : String(cause)

/** The answer of a readiness check: 200 when ready, 503 naming the problems otherwise. */
const answer = (report: Report) =>
  HttpServerResponse.json(report, {
    status: report.status === "ready" ? 200 : 503,
    headers: { "cache-control": "no-store" }
  })

/**
 * `GET /health/live` and `GET /health/ready` on the application's `HttpRouter`, over the `Feed`, `Consumers` and
 * `SqlClient` the layer is given, with the server's `Lifecycle`.
 */
export const layer = (
  thresholds: Thresholds = {}
): Layer.Layer<never, never, HttpRouter.HttpRouter | SqlClient.SqlClient | Feed.Feed | Consumers.Consumers> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const context = yield* Effect.context<SqlClient.SqlClient | Feed.Feed | Consumers.Consumers>()
      const lifecycle = yield* Lifecycle.Lifecycle
      const ready = check(thresholds).pipe(
        Effect.provideContext(context),
        Effect.provideService(Lifecycle.Lifecycle, lifecycle),
        Effect.flatMap(answer),
        Effect.orDie
      )
      return Layer.mergeAll(
        HttpRouter.add("GET", livePath, HttpServerResponse.json({ status: "live" }).pipe(Effect.orDie)),
        HttpRouter.add("GET", readyPath, ready)
      )
    })
  )

/** `layer` with the thresholds from the environment (`config`). */
export const layerConfig: Layer.Layer<
  never,
  Config.ConfigError,
  HttpRouter.HttpRouter | SqlClient.SqlClient | Feed.Feed | Consumers.Consumers
> = Layer.unwrap(
  Effect.gen(function* () {
    return layer(yield* config)
  })
)
