/**
 * The global feed: every event in the log's commit order, resumable from a checkpoint, without ever skipping one.
 * Transactions come in the order of the commit sequence the database takes at each one's commit (migration 6), and
 * the events of each in the order they were appended; so a stream's events come in version order, and a transaction
 * that could see another's events comes after it. A reader reads only up to the fence, below which every commit is
 * visible or gone for good, and waits only for transactions that are committing: an idle or long transaction
 * anywhere on the server holds no reader back (see `docs/ordering.md`).
 *
 * `batches` and `stream` catch up page by page, then follow live: a notification sent after each commit wakes them,
 * and they poll as well, so a lost notification delays an event but never loses it. Pages are read only when the
 * stream is pulled, so a slow consumer slows the reads and nothing is buffered beyond one page.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Semaphore from "effect/Semaphore"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { InvalidCursor, InvalidQuery, type StorageError } from "./AnnalError.ts"
import * as Checkpoint from "./Checkpoint.ts"
import * as Event from "./Event.ts"
import * as EventRegistry from "./EventRegistry.ts"
import * as EventTable from "./EventTable.ts"
import { channelOf } from "./internal/feed/migration.ts"
import * as Filter from "./Filter.ts"
import { makeFeedRead } from "./internal/feed/read.ts"
import * as Wakeups from "./internal/feed/wakeups.ts"
import { FeedSignal } from "./FeedSignal.ts"

/** Where a read starts, and which events it reads. */
export interface ReadOptions extends Filter.Filter {
  /** Read what follows this checkpoint, given as a value or as the string `Checkpoint.encode` made; default start. */
  readonly after?: Checkpoint.Checkpoint | string
  /** The page size: at most this many events per read (default 500). */
  readonly limit?: number
}

/** Options of `batches` and `stream`. */
export interface StreamOptions extends ReadOptions {
  /** Follow the feed once caught up (the default), or end the stream there. */
  readonly live?: boolean
  /** How often a live reader looks without having been woken (default 1 second). */
  readonly pollInterval?: Duration.Input
}

/** One event with its checkpoint. */
export interface Entry<E> {
  readonly event: E
  readonly checkpoint: Checkpoint.Checkpoint
}

/**
 * Events read together, and the checkpoint to resume from after them. With a filter the checkpoint can be past the
 * last event, as events that do not match are passed too; a batch can then have no events at all.
 */
export interface Batch<E> {
  readonly events: ReadonlyArray<E>
  /** The same events, each with its checkpoint. */
  readonly entries: ReadonlyArray<Entry<E>>
  readonly checkpoint: Checkpoint.Checkpoint
}

/** A transaction in its commit, which readers wait for. */
export interface CommittingTransaction {
  readonly pid: number
  readonly database: Option.Option<string>
  readonly applicationName: Option.Option<string>
  /** As `pg_stat_activity` reports it. */
  readonly state: Option.Option<string>
  /** Its 32-bit transaction id, as `pg_stat_activity` reports it. */
  readonly transactionId: Option.Option<string>
  /** How long since the transaction began. */
  readonly age: Duration.Duration
  /** Its current or last statement, cut to 500 characters; hidden unless the role may see it. */
  readonly query: Option.Option<string>
}

/** How far the feed is behind what has committed, and why. */
export interface Status {
  /** Every transaction with this commit sequence or a smaller one is visible, or rolled back for good. */
  readonly fence: bigint
  /** The last commit sequence taken, by a transaction that has committed, is committing, or rolled back after it. */
  readonly lastCommit: bigint
  /** The last readable event, or `Checkpoint.start` when there is none. */
  readonly head: Checkpoint.Checkpoint
  /** Committed events that readers cannot reach yet because a commit before theirs is still in flight. */
  readonly pending: number
  /** How long ago the oldest of them committed. */
  readonly oldestPendingAge: Option.Option<Duration.Duration>
  /** The transactions in their commit that readers wait for, oldest first: only these can hold the feed back. */
  readonly committing: ReadonlyArray<CommittingTransaction>
}

/** The errors of the feed's reads, besides the registry's decoding errors. */
export type FeedError = InvalidCursor | InvalidQuery | StorageError

/** The default page size and the largest. */
export const defaultLimit = 500
export const maxLimit = 10_000

/** The default interval of a live reader's polling. */
export const defaultPollInterval: Duration.Duration = Duration.seconds(1)

/** The feed service. */
export class Feed extends Context.Service<
  Feed,
  {
    /** One page of the feed after a checkpoint: events that committed before the call, and where to resume. */
    readonly read: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: ReadOptions
    ) => Effect.Effect<Batch<E>, Err | FeedError>
    /** The feed page by page, as a stream of batches; each is emitted when it is read, and read when pulled. */
    readonly batches: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: StreamOptions
    ) => Stream.Stream<Batch<E>, Err | FeedError>
    /** The feed event by event, each with its checkpoint. */
    readonly stream: <E extends Event.Event, Err>(
      registry: EventRegistry.EventRegistry<E, Err>,
      options?: StreamOptions
    ) => Stream.Stream<Entry<E>, Err | FeedError>
    /**
     * The checkpoint of the last event that committed before the call: reading after it gives only what commits
     * from then on.
     */
    readonly head: Effect.Effect<Checkpoint.Checkpoint, StorageError>
    /** How far the feed is behind, and the commits it waits for; it answers at once, also while a commit is held. */
    readonly status: Effect.Effect<Status, StorageError>
    /**
     * The checkpoint a string names: one `Checkpoint.encode` made, or one of the first format, which named a
     * transaction id and is converted to commit order as migration 6 converted stored checkpoints. A checkpoint past
     * the feed's head is refused: it names no event the feed sent.
     */
    readonly resolve: (text: string) => Effect.Effect<Checkpoint.Checkpoint, InvalidCursor | StorageError>
    /** The events table this feed reads; the consumers that follow it keep their checkpoints beside it. */
    readonly table: EventTable.EventTable
  }
>()("@annal/core/Feed") {}

/**
 * Builds the feed of the events table the options name, over the `SqlClient` in context, woken by the `FeedSignal`
 * in context.
 */
export const make = Effect.fnUntraced(function* (options?: EventTable.Options) {
  const sql = yield* SqlClient.SqlClient
  const config = yield* EventTable.make(options)
  const statements = makeFeedRead(sql, config)
  const wakeups = yield* Wakeups.make(channelOf(config), yield* FeedSignal)

  // The fence, shared by every reader of this feed: it only ever moves up, and any value it took stays true. Readers
  // that ask while it is being moved wait for the next move instead of each running the fence function, so a hundred
  // SSE clients woken by one commit cost one call. A request is served by a computation that began after it.
  let known = 0n
  let requested = 0
  let covered = 0
  let coveredComplete = 0
  const fenceLock = yield* Semaphore.make(1)
  const fence = (complete: boolean): Effect.Effect<bigint, StorageError> =>
    Effect.suspend(() => {
      const ticket = ++requested
      return fenceLock.withPermits(1)(
        Effect.suspend(() => {
          if ((complete ? coveredComplete : covered) >= ticket) return Effect.succeed(known)
          const upTo = requested
          return Effect.map(statements.fence(known, complete), (result) => {
            if (result.fence > known) known = result.fence
            covered = Math.max(covered, upTo)
            if (result.complete) coveredComplete = Math.max(coveredComplete, upTo)
            return known
          })
        })
      )
    })

  /**
   * Reads one page after `after`, up to `until` when given (a fence already taken), else up to a fence taken now
   * when `after` has reached the last one known. `full` tells whether more may be readable right away.
   */
  const readPage = Effect.fnUntraced(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    filter: Filter.Filter,
    after: Checkpoint.Checkpoint,
    limit: number,
    until: bigint | undefined
  ) {
    const fenceAt = until ?? (known > after.commitSequence ? known : yield* fence(false))
    const page = yield* statements.page(filter, after, fenceAt, limit)
    const events = yield* EventRegistry.decodeAll(registry, page.events)
    const entries: Array<Entry<E>> = []
    for (let index = 0; index < events.length; index++) {
      entries.push({ event: events[index]!, checkpoint: page.checkpoints[index]! })
    }
    const last = page.checkpoints.at(-1) ?? after
    const full = page.events.length === limit
    // A filtered reader that read everything below the fence has passed the events that did not match too: resume
    // after the whole of the fence's commit, so that they are not scanned again.
    const checkpoint =
      !full && Filter.isFiltered(filter) && fenceAt > after.commitSequence
        ? Checkpoint.max(last, Checkpoint.make(fenceAt, Checkpoint.endOfCommit))
        : last
    return { batch: { events, entries, checkpoint }, full, fenceAt }
  })

  const resolve = (text: string): Effect.Effect<Checkpoint.Checkpoint, InvalidCursor | StorageError> => {
    const legacy = Checkpoint.decodeLegacy(text)
    return legacy === undefined
      ? Checkpoint.decode(text)
      : statements.legacy(legacy.transactionId, legacy.globalPosition)
  }

  const resolveAfter = (after: Checkpoint.Checkpoint | string | undefined) =>
    after === undefined
      ? Effect.succeed(Checkpoint.start)
      : typeof after === "string"
        ? resolve(after)
        : Effect.succeed(after)

  const read = Effect.fn("Feed.read")(function* <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: ReadOptions
  ): Effect.fn.Return<Batch<E>, Err | FeedError> {
    const { filter, limit } = yield* validate(options)
    const after = yield* resolveAfter(options?.after)
    // Everything that committed before the call is readable by this read.
    const until = yield* fence(true)
    const { batch } = yield* readPage(registry, filter, after, limit, until)
    yield* Effect.annotateCurrentSpan({ events: batch.events.length })
    return batch
  })

  const batches = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: StreamOptions
  ): Stream.Stream<Batch<E>, Err | FeedError> =>
    Stream.unwrap(
      Effect.gen(function* () {
        const { filter, limit } = yield* validate(options)
        const after = yield* resolveAfter(options?.after)
        const live = options?.live ?? true
        const pollInterval = yield* validatePollInterval(options?.pollInterval)
        // A stream that ends once caught up reads to everything that committed before it began.
        const until = live ? undefined : yield* fence(true)
        interface State {
          readonly after: Checkpoint.Checkpoint
          /** Set once caught up: the wake-up taken before the read that found nothing more. */
          readonly wait: Effect.Effect<void> | undefined
        }
        const step = Effect.fnUntraced(function* (state: State) {
          if (state.wait !== undefined) yield* Effect.raceFirst(state.wait, Effect.sleep(pollInterval))
          // Only a live reader waits once caught up; one that ends there has no use for a wake-up.
          const wake = live ? yield* wakeups.next : undefined
          const { batch, full } = yield* readPage(registry, filter, state.after, limit, until)
          const moved = Checkpoint.compare(batch.checkpoint, state.after) > 0
          const emitted: ReadonlyArray<Batch<E>> = moved ? [batch] : []
          if (full) return [emitted, Option.some<State>({ after: batch.checkpoint, wait: undefined })] as const
          if (!live) return [emitted, Option.none<State>()] as const
          // Stream.paginate asks again at once after an empty emission, which now waits first.
          return [emitted, Option.some<State>({ after: batch.checkpoint, wait: wake })] as const
        })
        return Stream.paginate({ after, wait: undefined }, step)
      })
    ).pipe(Stream.withSpan("Feed.batches"))

  const stream = <E extends Event.Event, Err>(
    registry: EventRegistry.EventRegistry<E, Err>,
    options?: StreamOptions
  ): Stream.Stream<Entry<E>, Err | FeedError> =>
    batches(registry, options).pipe(
      Stream.map((batch) => batch.entries),
      Stream.flattenIterable
    )

  const head: Effect.Effect<Checkpoint.Checkpoint, StorageError> = Effect.gen(function* () {
    const fenceAt = yield* fence(true)
    return (yield* statements.lastBelow(fenceAt)) ?? Checkpoint.start
  }).pipe(Effect.withSpan("Feed.head"))

  const status: Effect.Effect<Status, StorageError> = Effect.gen(function* () {
    // Without waiting: a status is asked for when a commit holds the feed back, and must say so, not wait for it.
    const fenceAt = yield* statements.fenceNow(known)
    const [last, lastCommit, pending, committing] = yield* Effect.all([
      statements.lastBelow(fenceAt),
      statements.lastTaken,
      statements.pending(fenceAt),
      statements.committing
    ])
    return {
      fence: fenceAt,
      lastCommit,
      head: last ?? Checkpoint.start,
      pending: Number(pending.count),
      oldestPendingAge: Option.map(Option.fromNullishOr(pending.oldest_millis), Duration.millis),
      committing: committing.map((row): CommittingTransaction => ({
        pid: row.pid,
        database: Option.fromNullishOr(row.database),
        applicationName: Option.fromNullishOr(row.applicationName),
        state: Option.fromNullishOr(row.state),
        transactionId: Option.fromNullishOr(row.transactionId),
        age: Duration.millis(row.ageMillis),
        query: Option.fromNullishOr(row.query)
      }))
    }
  }).pipe(Effect.withSpan("Feed.status"))

  return Feed.of({
    table: config,
    read,
    batches,
    stream,
    head,
    status,
    resolve: Effect.fn("Feed.resolve")(function* (text: string) {
      const checkpoint = yield* resolve(text)
      // A position past the head names no event the feed sent: a client resuming from it would silently skip
      // every event up to it, so it is refused like any id the feed did not make. (An id of the first format is
      // converted by the database, to a position at or before the commits it knew.)
      if (Checkpoint.decodeLegacy(text) === undefined && Checkpoint.compare(checkpoint, yield* head) > 0) {
        return yield* new InvalidCursor({ cursor: text })
      }
      return checkpoint
    })
  })
})

/**
 * The feed, built when the layer is. Its listener lives as long as the layer and, on PostgreSQL, holds one pooled
 * connection for its `LISTEN`; every reader of the layer shares it.
 */
export const layer = (options?: EventTable.Options): Layer.Layer<Feed, never, SqlClient.SqlClient | FeedSignal> =>
  Layer.effect(Feed, make(options))

/** The options of a read or a stream besides its filter. */
const readOptionKeys = ["after", "limit", "live", "pollInterval"]

/** Checks a read's options: its page size and filter, and that it has no key that is neither. */
export const validate = (
  options: ReadOptions | undefined
): Effect.Effect<{ readonly filter: Filter.Filter; readonly limit: number }, InvalidQuery> =>
  Effect.gen(function* () {
    const limit = options?.limit ?? defaultLimit
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > maxLimit) {
      return yield* new InvalidQuery({ field: "limit", reason: `must be an integer from 1 to ${maxLimit}` })
    }
    yield* Filter.refuseUnknown(options ?? {}, readOptionKeys)
    const filter = yield* Filter.validate(Filter.pick(options ?? {}))
    return { filter, limit }
  })

const validatePollInterval = (input: Duration.Input | undefined): Effect.Effect<Duration.Duration, InvalidQuery> => {
  const interval = input === undefined ? Option.some(defaultPollInterval) : Duration.fromInput(input)
  return Option.isSome(interval) && Duration.toMillis(interval.value) > 0
    ? Effect.succeed(interval.value)
    : Effect.fail(new InvalidQuery({ field: "pollInterval", reason: "must be a positive duration" }))
}
