/**
 * Wake-ups for feed readers: one subscription per feed, through the `FeedSignal` in context, fanned out to every
 * waiting reader.
 * A notification is only a hint that something committed; readers also poll, so a notification lost while the
 * listening connection was down loses no event, it only delays one.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import type * as FeedSignal from "../../FeedSignal.ts"

/** Wake-ups of one channel. */
export interface Wakeups {
  /**
   * An effect that completes at the first wake-up after `next` ran. A reader takes it before it reads, so a commit
   * notified while it was reading wakes it at once instead of being missed.
   */
  readonly next: Effect.Effect<Effect.Effect<void>>
  /** Whether a listener was found for the engine; without one, readers only poll. */
  readonly listening: boolean
}

/**
 * Listens on `channel` with the signal's `listen`, and subscribes again after a failure. A signal without one gets
 * no listener: readers only poll.
 */
export const make = Effect.fnUntraced(function* (
  channel: string,
  signal: FeedSignal.FeedSignal["Service"]
): Effect.fn.Return<Wakeups, never, Scope.Scope> {
  let current = Deferred.makeUnsafe<void>()
  const wake = Effect.sync(() => {
    const woken = current
    current = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(woken, Effect.void)
  })

  // Each listener is reduced to "wait for the next burst of notifications", whatever its payload.
  const listen = signal.listen
  const subscribe: Option.Option<Effect.Effect<Effect.Effect<void, SqlError>, SqlError, Scope.Scope>> =
    listen === undefined
      ? Option.none()
      : Option.some(Effect.map(listen(channel), (queue) => Effect.asVoid(Queue.takeAll(queue))))

  if (Option.isSome(subscribe)) {
    // Settled once the first LISTEN is registered, or has failed: a reader that starts after `make` returns is then
    // woken by every commit, and a database that is down does not stop the feed from starting.
    const settled = Deferred.makeUnsafe<void>()
    yield* Effect.scoped(
      Effect.gen(function* () {
        const takeBurst = yield* subscribe.value
        Deferred.doneUnsafe(settled, Effect.void)
        // Anything committed while no listener was registered went unnotified: wake everyone once.
        yield* wake
        return yield* Effect.forever(Effect.andThen(takeBurst, wake))
      })
    ).pipe(
      Effect.tapError((error) =>
        Effect.andThen(
          Effect.sync(() => Deferred.doneUnsafe(settled, Effect.void)),
          Effect.logWarning("Feed: listening for commits failed; polling until it is back", error)
        )
      ),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.forkScoped
    )
    yield* Deferred.await(settled)
  }

  return { next: Effect.sync(() => Deferred.await(current)), listening: Option.isSome(subscribe) }
})
