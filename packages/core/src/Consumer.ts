/**
 * A named consumer of the feed, declared once: its name (under which its checkpoint and lease are stored), what it
 * reads, what it does with each batch, and how its effects and checkpoint commit. `Consumers` runs it.
 *
 * Delivery is at-least-once: a batch whose handler ran but whose checkpoint was not stored is delivered again. A
 * consumer whose effects are writes to the same database can be `transactional`: its writes and its checkpoint
 * commit in one transaction, so each event's effects are applied exactly once.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Event from "./Event.ts"
import * as EventContext from "./EventContext.ts"
import type * as EventRegistry from "./EventRegistry.ts"
import * as Feed from "./Feed.ts"
import * as Filter from "./Filter.ts"

/** How a consumer's effects and its checkpoint are committed. */
export type Delivery = "at-least-once" | "transactional"

/** A named consumer: what it reads, and what it does with each batch. */
export interface Consumer<E extends Event.Event, DecodeErr, HandleErr, R> {
  readonly name: string
  readonly registry: EventRegistry.EventRegistry<E, DecodeErr>
  readonly filter: Filter.Filter
  readonly delivery: Delivery
  /** Runs once per batch that has events, in feed order; never for two batches at once. */
  readonly handle: (batch: Feed.Batch<E>) => Effect.Effect<void, HandleErr, R>
  readonly batchSize: number
  readonly pollInterval: Duration.Duration
  /** How long a lease lasts without renewal: how soon another instance takes over from one that died. */
  readonly leaseDuration: Duration.Duration
  /** How often a waiting instance tries to take the lease. */
  readonly acquireInterval: Duration.Duration
}

/** The options of `make`; only the name, registry and handler are required. */
export interface ConsumerOptions<E extends Event.Event, DecodeErr, HandleErr, R> extends Filter.Filter {
  /** Unique per events table: the checkpoint and the lease are stored under it. 1 to 200 characters. */
  readonly name: string
  readonly registry: EventRegistry.EventRegistry<E, DecodeErr>
  readonly handle: (batch: Feed.Batch<E>) => Effect.Effect<void, HandleErr, R>
  /**
   * `at-least-once` (the default) runs the handler, then stores the checkpoint. `transactional` runs both in one
   * transaction: the handler's SQL writes through the same `SqlClient` join it. Keep such handlers short: a writing
   * transaction holds the feed's fence back for every reader until it ends.
   */
  readonly delivery?: Delivery
  /** Events per batch (default 100). */
  readonly batchSize?: number
  /** How often a caught-up consumer looks for events without having been woken (default 1 second). */
  readonly pollInterval?: Duration.Input
  /** Default 10 seconds; renewed every third of it. */
  readonly leaseDuration?: Duration.Input
  /** Default 1 second. */
  readonly acquireInterval?: Duration.Input
}

/** Every option `make` knows, the filter's fields among them. */
const consumerKeys: ReadonlySet<string> = new Set([
  "name",
  "registry",
  "handle",
  "delivery",
  "batchSize",
  "pollInterval",
  "leaseDuration",
  "acquireInterval",
  ...Filter.fields
])

/** Declares a consumer. A name or a setting out of range is a defect in the program, reported at once. */
export const make = <E extends Event.Event, DecodeErr, HandleErr = never, R = never>(
  options: ConsumerOptions<E, DecodeErr, HandleErr, R>
): Consumer<E, DecodeErr, HandleErr, R> => {
  if (options.name.length < 1 || options.name.length > 200) {
    throw new Error(`Consumer name must be 1 to 200 characters: ${JSON.stringify(options.name)}`)
  }
  const unknown = Object.keys(options).find((key) => !consumerKeys.has(key))
  if (unknown !== undefined) {
    throw new Error(
      `Consumer ${options.name}: ${unknown} is not an option (a misspelt filter would follow every event)`
    )
  }
  const batchSize = options.batchSize ?? 100
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > Feed.maxLimit) {
    throw new Error(`Consumer ${options.name}: batchSize must be an integer from 1 to ${Feed.maxLimit}`)
  }
  const duration = (input: Duration.Input | undefined, fallback: Duration.Duration, field: string) => {
    const value = input === undefined ? fallback : Option.getOrUndefined(Duration.fromInput(input))
    if (value === undefined || Duration.toMillis(value) <= 0 || !Duration.isFinite(value)) {
      throw new Error(`Consumer ${options.name}: ${field} must be a positive, finite duration`)
    }
    return value
  }
  return {
    name: options.name,
    registry: options.registry,
    filter: Filter.pick(options),
    delivery: options.delivery ?? "at-least-once",
    handle: options.handle,
    batchSize,
    pollInterval: duration(options.pollInterval, Feed.defaultPollInterval, "pollInterval"),
    leaseDuration: duration(options.leaseDuration, Duration.seconds(10), "leaseDuration"),
    acquireInterval: duration(options.acquireInterval, Duration.seconds(1), "acquireInterval")
  }
}

/**
 * A batch handler that runs `handle` for each event of the batch in order, each inside the event's
 * `EventContext.causedBy`: every event it emits carries the handled event's id as its `causationId`, and its
 * correlation id. `handle: Consumer.eachEvent((event) => ...)` is how a consumer's effects become traceable to
 * their cause (`GET /audit/events/{eventId}/effects`).
 */
export const eachEvent =
  <E extends Event.Event, HandleErr, R>(handle: (event: E) => Effect.Effect<void, HandleErr, R>) =>
  (batch: Feed.Batch<E>): Effect.Effect<void, HandleErr, R> =>
    Effect.forEach(batch.events, (event) => EventContext.provide(handle(event), EventContext.causedBy(event)), {
      discard: true
    })
