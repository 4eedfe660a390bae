/**
 * The store's metrics, in Effect's own `effect/Metric` registry, so that every exporter of that registry (the
 * Prometheus endpoint of `@annal/http`, Effect's OTLP exporter) sees them beside any other package's:
 *
 * - `annal_appends_total` and `annal_append_duration_seconds`: appends that stored their events, and how long each
 *   took, measured around `EventStore.append`;
 * - `annal_append_conflicts_total{kind}`: appends refused because the stream moved (`version`), the event id was
 *   taken by another event (`event_id`), or a concurrent writer won a race the caller may retry (`concurrent_write`);
 * - `annal_events_appended_total{event_type}`: events written, duplicates of stored ones left out (event types are
 *   the application's fixed set, so the series stay few);
 * - `annal_consumer_lag_events{consumer}` and `annal_consumer_lag_age_seconds{consumer}`, `annal_feed_fence_age_seconds`
 *   and `annal_feed_pending_events`, `annal_digest_age_seconds`: read from the database by `Sampler.sample`.
 *
 * The gauges that need a database read are sampled when an exporter asks (a scrape, an OTLP export), not on a timer
 * of their own: a scrape then reads the state at that moment, and nothing reads the database while no one looks.
 * No metric carries an aggregate id, a user or a payload: an audit trail's contents stay in the audit API.
 *
 * Counts are taken when `append` returns: an append inside the caller's transaction that later rolls back is
 * counted, as the attempt it was.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import { ConcurrencyConflict, EventIdConflict, StorageError } from "./AnnalError.ts"
import * as Consumers from "./Consumers.ts"
import * as Feed from "./Feed.ts"
import { makeDigestStatements } from "./internal/integrity/digestStatements.ts"

/** Appends that stored their events. */
export const appends: Metric.Counter<number> = Metric.counter("annal_appends_total", {
  description: "Appends that stored their events",
  incremental: true
})

/** How long a successful append took, in seconds. */
export const appendDuration: Metric.Histogram<number> = Metric.histogram("annal_append_duration_seconds", {
  description: "How long a successful append took, in seconds",
  boundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  attributes: { unit: "seconds" }
})

/** Appends refused by a conflict, by `kind`. */
export const conflicts: Metric.Counter<number> = Metric.counter("annal_append_conflicts_total", {
  description: "Appends refused by a conflict: version (the stream moved), event_id, concurrent_write",
  incremental: true
})

/** Events written, by `event_type`. */
export const eventsAppended: Metric.Counter<number> = Metric.counter("annal_events_appended_total", {
  description: "Events written, by event type (duplicates of stored events left out)",
  incremental: true
})

/** How many committed events each consumer has yet to process, by `consumer`. */
export const consumerLagEvents: Metric.Gauge<number> = Metric.gauge("annal_consumer_lag_events", {
  description: "Committed events a consumer has yet to process"
})

/** How old each consumer's oldest unprocessed event is, in seconds (0 when it is caught up), by `consumer`. */
export const consumerLagAge: Metric.Gauge<number> = Metric.gauge("annal_consumer_lag_age_seconds", {
  description: "Age of a consumer's oldest unprocessed event, in seconds (0 when caught up)"
})

/** How long the oldest committed event readers cannot reach yet has waited behind a commit in flight, in seconds. */
export const fenceAge: Metric.Gauge<number> = Metric.gauge("annal_feed_fence_age_seconds", {
  description: "How long committed events have waited behind a commit in flight, in seconds (0 when none wait)"
})

/** How many committed events readers cannot reach yet. */
export const fencePending: Metric.Gauge<number> = Metric.gauge("annal_feed_pending_events", {
  description: "Committed events that readers cannot reach yet, behind a commit in flight"
})

/** How long ago the latest digest was stored, in seconds; absent until there is one. */
export const digestAge: Metric.Gauge<number> = Metric.gauge("annal_digest_age_seconds", {
  description: "How long ago the latest signed digest was stored, in seconds"
})

/** The conflict an append failed with, as the `kind` of `conflicts`; none for any other failure. */
export const conflictKind = (error: unknown): "version" | "event_id" | "concurrent_write" | undefined =>
  error instanceof ConcurrencyConflict
    ? "version"
    : error instanceof EventIdConflict
      ? "event_id"
      : error instanceof StorageError && error.reason._tag === "ConcurrentWrite"
        ? "concurrent_write"
        : undefined

/** Counts and times an append: a success in `appends` and `appendDuration`, a conflict in `conflicts`. */
export const trackAppend = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  self.pipe(
    Effect.timed,
    Effect.tap(([duration]) =>
      Effect.andThen(Metric.update(appends, 1), Metric.update(appendDuration, Duration.toSeconds(duration)))
    ),
    Effect.map(([, result]) => result),
    Effect.tapError((error) => {
      const kind = conflictKind(error)
      return kind === undefined ? Effect.void : Metric.update(Metric.withAttributes(conflicts, { kind }), 1)
    })
  )

/**
 * The `eventsAppended` series of each event type, made once rather than on every append (a one-event append is a
 * hot path). Event types are the application's fixed set, so the map stays as small as the series do.
 */
const eventsAppendedByType = new Map<string, Metric.Counter<number>>()

const eventsAppendedOf = (eventType: string): Metric.Counter<number> => {
  let series = eventsAppendedByType.get(eventType)
  if (series === undefined) {
    series = Metric.withAttributes(eventsAppended, { event_type: eventType })
    eventsAppendedByType.set(eventType, series)
  }
  return series
}

/** Counts written events by type in `eventsAppended`. */
export const recordEvents = (eventTypes: Iterable<string>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const counts = new Map<string, number>()
    for (const eventType of eventTypes) counts.set(eventType, (counts.get(eventType) ?? 0) + 1)
    return Effect.forEach(counts, ([eventType, count]) => Metric.update(eventsAppendedOf(eventType), count), {
      discard: true
    })
  })

/** Reads the gauges that need the database: what an exporter runs just before it reads the registry. */
export class Sampler extends Context.Service<
  Sampler,
  {
    /**
     * Sets the consumer lag, fence and digest gauges from the database. It never fails: a read that fails is logged
     * and leaves its gauges as they were, so that a scrape still reports everything else.
     */
    readonly sample: Effect.Effect<void>
  }
>()("@annal/core/Metrics/Sampler") {}

const seconds = (duration: Option.Option<Duration.Duration>): number =>
  Option.match(duration, { onNone: () => 0, onSome: Duration.toSeconds })

const logged = (what: string) => (cause: unknown) =>
  Effect.logWarning(`Metrics: reading ${what} failed; its gauges keep their last values`, cause)

/** Builds the sampler over the `Feed`, `Consumers` and `SqlClient` in context, for the feed's events table. */
export const makeSampler = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const feed = yield* Feed.Feed
  const consumers = yield* Consumers.Consumers
  const digests = makeDigestStatements(sql, feed.table)

  const fence = feed.status.pipe(
    Effect.tap((status) =>
      Effect.andThen(
        Metric.update(fenceAge, seconds(status.oldestPendingAge)),
        Metric.update(fencePending, status.pending)
      )
    ),
    Effect.catchCause(logged("the feed's status"))
  )
  const lags = consumers.lag.pipe(
    Effect.tap((all) =>
      Effect.forEach(
        all,
        (lag) =>
          Effect.andThen(
            Metric.update(Metric.withAttributes(consumerLagEvents, { consumer: lag.name }), lag.eventsBehind),
            Metric.update(
              Metric.withAttributes(consumerLagAge, { consumer: lag.name }),
              seconds(lag.oldestUnprocessedAge)
            )
          ),
        { discard: true }
      )
    ),
    Effect.catchCause(logged("the consumers' lag"))
  )
  const digest = digests.readLatestDigestAge.pipe(
    Effect.tap((age) => (age === undefined ? Effect.void : Metric.update(digestAge, age / 1000))),
    Effect.catchCause(logged("the latest digest"))
  )
  return Sampler.of({
    sample: Effect.all([fence, lags, digest], { concurrency: "unbounded", discard: true }).pipe(
      Effect.withSpan("Metrics.sample")
    )
  })
})

/** The sampler, over the `Feed`, `Consumers` and `SqlClient` it is given. */
export const layerSampler: Layer.Layer<Sampler, never, SqlClient.SqlClient | Feed.Feed | Consumers.Consumers> =
  Layer.effect(Sampler, makeSampler)
