/**
 * Runs named consumers over the feed: each follows the feed from its stored checkpoint, resumes there after a crash
 * or a deploy, and runs as one instance at a time however many processes start it. Also replays a consumer from the
 * start, and reports every consumer's lag.
 *
 * One instance per name holds a lease, a row in the consumers table that it renews while it runs; the others wait,
 * and take over when the holder stops (at once) or dies (when its lease expires). Every checkpoint write names the
 * owner it expects, so an instance that lost its lease, paused past its expiry say, cannot commit once another took
 * over: its write finds no row, and a transactional batch rolls back with it. A lease row rather than an advisory
 * lock: it behaves the same on PGlite, whose single session would re-enter any advisory lock and whose one
 * connection cannot be reserved for a lock without stopping everything else, and it pins no pooled connection.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { isSqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import { InvalidCursor, InvalidQuery, type StorageError } from "./AnnalError.ts"
import * as Checkpoint from "./Checkpoint.ts"
import type { Consumer } from "./Consumer.ts"
import * as Event from "./Event.ts"
import * as Feed from "./Feed.ts"
import * as Filter from "./Filter.ts"
import { makeConsumerStatements } from "./internal/feed/consumers.ts"
import { makeFeedRead } from "./internal/feed/read.ts"
import { fromSqlError } from "./internal/sqlErrors.ts"

/** The lease was taken over by another instance while this one held it, or was released under it. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>("@annal/core/LeaseLost")("LeaseLost", {
  consumer: Schema.String
}) {
  override get message(): string {
    return `Consumer ${this.consumer} lost its lease to another instance`
  }
}

/** No consumer of that name has ever run against this events table. */
export class UnknownConsumer extends Schema.TaggedError<UnknownConsumer>("@annal/core/UnknownConsumer")(
  "UnknownConsumer",
  { consumer: Schema.String }
) {
  override get message(): string {
    return `No consumer named ${JSON.stringify(this.consumer)} has run against this events table`
  }
}

/** Where `reset` moves a consumer: to a checkpoint, or past every commit recorded before an instant. */
export type ResetTarget = Checkpoint.Checkpoint | DateTime.Utc

/** Where a replay stands. */
export interface ReplayProgress {
  readonly consumer: string
  readonly checkpoint: Checkpoint.Checkpoint
  /** Events handled so far. */
  readonly processed: number
  /** Events between the start and the head the replay runs to, counted when it began. */
  readonly total: number
  readonly remaining: number
  readonly eventsPerSecond: number
  readonly elapsed: Duration.Duration
  readonly done: boolean
}

/** The options of `replay`. */
export interface ReplayOptions<E, R> {
  /**
   * Clears what the consumer built, in the transaction that resets its checkpoint: for a transactional projection
   * the old state and the old checkpoint go together.
   */
  readonly reset?: Effect.Effect<void, E, R>
  /** Called with the progress at most once per `progressInterval`, and once at the end. */
  readonly onProgress?: (progress: ReplayProgress) => Effect.Effect<void, never, R>
  /** Default 1 second. */
  readonly progressInterval?: Duration.Input
}

/** One consumer's position and lag. */
export interface Lag {
  readonly name: string
  readonly checkpoint: Checkpoint.Checkpoint
  /** The lease holder, while a lease is held and not expired. */
  readonly owner: Option.Option<string>
  readonly leaseExpiresAt: Option.Option<DateTime.Utc>
  readonly checkpointUpdatedAt: DateTime.Utc
  /** Committed events after the checkpoint, readable or still held back by the fence. */
  readonly eventsBehind: number
  /** How long ago the oldest of them was recorded. */
  readonly oldestUnprocessedAge: Option.Option<Duration.Duration>
}

/** The errors of running a consumer, besides its registry's and its handler's. */
export type ConsumerError = InvalidQuery | StorageError

/** Runs named consumers over the feed. */
export class Consumers extends Context.Service<
  Consumers,
  {
    /**
     * Runs the consumer for as long as the effect runs: waits for the lease, then follows the feed from the stored
     * checkpoint. It goes back to waiting if the lease is lost, and fails when its handler or the database does
     * (wrap it in `Effect.retry` to ride out an outage). Interrupting it releases the lease, so another instance
     * takes over at once.
     */
    readonly run: <E extends Event.Event, DecodeErr, HandleErr, R>(
      consumer: Consumer<E, DecodeErr, HandleErr, R>
    ) => Effect.Effect<never, DecodeErr | HandleErr | ConsumerError, R>
    /**
     * Rebuilds what the consumer builds: waits for its lease, resets its checkpoint to the start (with `reset`, in
     * one transaction), runs it to the head as of the reset, reports progress, and releases the lease.
     */
    readonly replay: <E extends Event.Event, DecodeErr, HandleErr, R, ResetErr = never, R2 = never>(
      consumer: Consumer<E, DecodeErr, HandleErr, R>,
      options?: ReplayOptions<ResetErr, R2>
    ) => Effect.Effect<ReplayProgress, DecodeErr | HandleErr | ResetErr | LeaseLost | ConsumerError, R | R2>
    /**
     * Moves a consumer's checkpoint, from outside the process that runs it: to a checkpoint, or to the end of the
     * last commit recorded before an instant. It revokes the lease too, so an instance that runs the consumer stops
     * within a third of its lease duration, takes the lease again and resumes from there; what the consumer built is
     * left as it is. Returns the checkpoint set.
     */
    readonly reset: (
      name: string,
      to: ResetTarget
    ) => Effect.Effect<Checkpoint.Checkpoint, UnknownConsumer | InvalidQuery | StorageError>
    /** Every consumer's checkpoint and lag, by name. */
    readonly lag: Effect.Effect<ReadonlyArray<Lag>, StorageError>
  }
>()("@annal/core/Consumers") {}

/** Builds the service over the `Feed` and `SqlClient` in context; the checkpoints live beside the feed's table. */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const feed = yield* Feed.Feed
  const config = feed.table
  const statements = makeConsumerStatements(sql, config)
  const feedStatements = makeFeedRead(sql, config)

  /** Renews the lease every third of its duration; fails as soon as it is not ours any more. */
  const heartbeat = Effect.fnUntraced(function* (consumer: LeaseSettings, owner: string) {
    const leaseMillis = Duration.toMillis(consumer.leaseDuration)
    while (true) {
      yield* Effect.sleep(Duration.millis(leaseMillis / 3))
      if (!(yield* statements.renew(consumer.name, owner, leaseMillis))) {
        return yield* new LeaseLost({ consumer: consumer.name })
      }
    }
  })

  /**
   * Holds the lease for `use`: waits until it is ours, renews it alongside, releases it after, whatever the outcome.
   * Each attempt is one statement whose success registers the release; the waiting between attempts is
   * interruptible, so an instance that waits can be stopped.
   */
  const withLease = <A, E, R>(
    consumer: LeaseSettings,
    use: (checkpoint: Checkpoint.Checkpoint, owner: string) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | LeaseLost | StorageError, R> => {
    const owner = crypto.randomUUID()
    const attempt = Effect.acquireUseRelease(
      statements.acquire(consumer.name, owner, Duration.toMillis(consumer.leaseDuration)),
      (checkpoint) =>
        checkpoint === undefined
          ? Effect.succeedNone
          : Effect.asSome(Effect.raceFirst(use(checkpoint, owner), heartbeat(consumer, owner))),
      (checkpoint) => (checkpoint === undefined ? Effect.void : Effect.ignore(statements.release(consumer.name, owner)))
    )
    return Effect.gen(function* () {
      while (true) {
        const result = yield* attempt
        if (Option.isSome(result)) return result.value
        yield* Effect.sleep(consumer.acquireInterval)
      }
    })
  }

  /** Handles a batch and moves the checkpoint past it, in one transaction when the consumer is transactional. */
  const commitBatch = <E extends Event.Event, DecodeErr, HandleErr, R>(
    consumer: Consumer<E, DecodeErr, HandleErr, R>,
    owner: string,
    from: Checkpoint.Checkpoint,
    batch: Feed.Batch<E>
  ): Effect.Effect<void, HandleErr | LeaseLost | StorageError, R> => {
    const handle = batch.events.length > 0 ? consumer.handle(batch) : Effect.void
    const save = Effect.flatMap(
      statements.commit(consumer.name, owner, from, batch.checkpoint, Duration.toMillis(consumer.leaseDuration)),
      (saved) => (saved ? Effect.void : Effect.fail(new LeaseLost({ consumer: consumer.name })))
    )
    const both = Effect.andThen(handle, save)
    return consumer.delivery === "transactional"
      ? Effect.catchIf(sql.withTransaction(both), isSqlError, (error) =>
          Effect.fail(fromSqlError("Consumer.commit", error))
        )
      : both
  }

  /** Follows the feed from `from`, committing each batch; ends at `until` when given, else never. */
  const follow = <E extends Event.Event, DecodeErr, HandleErr, R, R2 = never>(
    consumer: Consumer<E, DecodeErr, HandleErr, R>,
    owner: string,
    from: Checkpoint.Checkpoint,
    options: {
      readonly until?: Checkpoint.Checkpoint
      readonly onBatch?: (batch: Feed.Batch<E>) => Effect.Effect<void, never, R2>
    }
  ): Effect.Effect<Checkpoint.Checkpoint, DecodeErr | HandleErr | LeaseLost | ConsumerError, R | R2> =>
    Effect.suspend(() => {
      let position = from
      const until = options.until
      const batches = feed.batches(consumer.registry, {
        ...consumer.filter,
        after: from,
        limit: consumer.batchSize,
        live: until === undefined,
        pollInterval: consumer.pollInterval
      })
      return batches.pipe(
        until === undefined
          ? (self) => self
          : Stream.takeUntil((batch) => Checkpoint.compare(batch.checkpoint, until) >= 0),
        Stream.runForEach((batch) =>
          Effect.gen(function* () {
            yield* commitBatch(consumer, owner, position, batch)
            position = batch.checkpoint
            if (options.onBatch !== undefined) yield* options.onBatch(batch)
          })
        ),
        Effect.map(() => position),
        // The checkpoint is a value, never a string here, so the feed cannot fail with InvalidCursor.
        Effect.catchIf((error) => error instanceof InvalidCursor, Effect.die)
      )
    })

  const run = Effect.fn("Consumers.run")(function* <E extends Event.Event, DecodeErr, HandleErr, R>(
    consumer: Consumer<E, DecodeErr, HandleErr, R>
  ): Effect.fn.Return<never, DecodeErr | HandleErr | ConsumerError, R> {
    yield* Effect.annotateCurrentSpan({ consumer: consumer.name })
    return yield* withLease(consumer, (checkpoint, owner) =>
      Effect.andThen(follow(consumer, owner, checkpoint, {}), Effect.never)
    ).pipe(
      // A lost lease sends the instance back to waiting for it, from wherever the new holder leaves the checkpoint.
      Effect.catchIf(
        (error): error is LeaseLost => error instanceof LeaseLost,
        (error) => Effect.logWarning(error.message)
      ),
      Effect.forever
    )
  })

  const replay = Effect.fn("Consumers.replay")(function* <
    E extends Event.Event,
    DecodeErr,
    HandleErr,
    R,
    ResetErr = never,
    R2 = never
  >(
    consumer: Consumer<E, DecodeErr, HandleErr, R>,
    options?: ReplayOptions<ResetErr, R2>
  ): Effect.fn.Return<ReplayProgress, DecodeErr | HandleErr | ResetErr | LeaseLost | ConsumerError, R | R2> {
    yield* Effect.annotateCurrentSpan({ consumer: consumer.name })
    return yield* withLease(consumer, (_, owner) =>
      Effect.gen(function* () {
        const filter = yield* Filter.validate(consumer.filter)
        const progressInterval = Duration.toMillis(
          Option.getOrElse(Duration.fromInput(options?.progressInterval ?? Duration.seconds(1)), () =>
            Duration.seconds(1)
          )
        )
        const reset = Effect.andThen(
          options?.reset ?? Effect.void,
          Effect.flatMap(statements.reset(consumer.name, owner, Checkpoint.start), (done) =>
            done ? Effect.void : Effect.fail(new LeaseLost({ consumer: consumer.name }))
          )
        )
        yield* Effect.catchIf(sql.withTransaction(reset), isSqlError, (error) =>
          Effect.fail(fromSqlError("Consumers.replay", error))
        )
        // The head as of now: the replay ends there even if writes go on, and it counts what lies before it.
        const { fence } = yield* feedStatements.fence(0n, true)
        const until = (yield* feedStatements.lastBelow(fence)) ?? Checkpoint.start
        const total = yield* feedStatements.count(filter, Checkpoint.start, fence)
        const startedAt = yield* Clock.currentTimeMillis
        let processed = 0
        let checkpoint = Checkpoint.start
        let reportedAt = startedAt
        const progress = (now: number, done: boolean): ReplayProgress => {
          const elapsed = Math.max(0, now - startedAt)
          return {
            consumer: consumer.name,
            checkpoint,
            processed,
            total,
            remaining: Math.max(0, total - processed),
            eventsPerSecond: elapsed === 0 ? 0 : (processed * 1000) / elapsed,
            elapsed: Duration.millis(elapsed),
            done
          }
        }
        const report = options?.onProgress
        if (Checkpoint.compare(until, Checkpoint.start) > 0) {
          yield* follow(consumer, owner, Checkpoint.start, {
            until,
            onBatch: (batch) =>
              Effect.gen(function* () {
                processed += batch.events.length
                checkpoint = batch.checkpoint
                const now = yield* Clock.currentTimeMillis
                if (report !== undefined && now - reportedAt >= progressInterval) {
                  reportedAt = now
                  yield* report(progress(now, false))
                }
              })
          })
        }
        const final = progress(yield* Clock.currentTimeMillis, true)
        if (report !== undefined) yield* report(final)
        return final
      })
    )
  })

  const lag: Effect.Effect<ReadonlyArray<Lag>, StorageError> = statements.lag.pipe(
    Effect.map((rows) =>
      rows.map((row): Lag => ({
        name: row.name,
        checkpoint: Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position)),
        owner: row.lease_active ? Option.fromNullishOr(row.owner) : Option.none(),
        leaseExpiresAt: Option.fromNullishOr(row.lease_expires_at),
        checkpointUpdatedAt: row.checkpoint_updated_at,
        eventsBehind: Number(row.behind),
        oldestUnprocessedAge: Option.map(Option.fromNullishOr(row.oldest_millis), Duration.millis)
      }))
    ),
    Effect.withSpan("Consumers.lag")
  )

  const reset = Effect.fn("Consumers.reset")(function* (
    name: string,
    to: ResetTarget
  ): Effect.fn.Return<Checkpoint.Checkpoint, UnknownConsumer | InvalidQuery | StorageError> {
    yield* Effect.annotateCurrentSpan({ consumer: name })
    let checkpoint: Checkpoint.Checkpoint
    if (DateTime.isDateTime(to)) {
      if (!Event.isStorableInstant(to)) {
        return yield* new InvalidQuery({ field: "to", reason: Event.storableInstants })
      }
      // Only below a fence that waited for the commits in flight: one of those could still take a place before it.
      const { fence } = yield* feedStatements.fence(0n, true)
      checkpoint = (yield* statements.lastCommitBefore(to, fence)) ?? Checkpoint.start
    } else {
      checkpoint = to
    }
    if (!(yield* statements.revoke(name, checkpoint))) return yield* new UnknownConsumer({ consumer: name })
    return checkpoint
  })

  return Consumers.of({ run, replay, reset, lag })
})

/** The service, built when the layer is; it needs the `Feed`, so that all readers share its one listener. */
export const layer: Layer.Layer<Consumers, never, SqlClient.SqlClient | Feed.Feed> = Layer.effect(Consumers, make)

/** What the lease needs of a consumer. */
interface LeaseSettings {
  readonly name: string
  readonly leaseDuration: Duration.Duration
  readonly acquireInterval: Duration.Duration
}
