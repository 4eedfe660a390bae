/**
 * What wakes the feed's readers when a transaction commits. The store notifies a channel after each commit
 * (`pg_notify`, sent at commit); a signal that listens on it lets a live reader read at once instead of at its next
 * poll. The engine's driver package provides the listening one (`@annal/sql-pg`, `@annal/sql-pglite`); any other
 * `SqlClient` takes `layerPoll`, and its readers poll.
 *
 * A notification is only a hint: readers also poll, so a notification lost while the listener was down loses no
 * event, it only delays one.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"

/**
 * Subscribes to a channel for the scope's lifetime: the queue receives one element per notification, of whatever
 * shape the driver gives (the feed only counts them), and fails when the listening connection is lost, after which
 * the feed subscribes again.
 */
export type Listen = (channel: string) => Effect.Effect<Queue.Dequeue<unknown, SqlError>, SqlError, Scope.Scope>

/**
 * The feed's wake-up source.
 *
 * @since 0.1.0
 * @category services
 */
export class FeedSignal extends Context.Service<
  FeedSignal,
  {
    /** How to listen for commits, or `undefined` when readers only poll. */
    readonly listen: Listen | undefined
  }
>()("@annal/core/FeedSignal") {}

/**
 * A signal that listens with `listen`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (listen: Listen): FeedSignal["Service"] => FeedSignal.of({ listen })

/**
 * No listener: live readers read at each poll interval. For a `SqlClient` without notifications.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPoll: Layer.Layer<FeedSignal> = Layer.succeed(FeedSignal, FeedSignal.of({ listen: undefined }))

/**
 * A listening signal.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (listen: Listen): Layer.Layer<FeedSignal> => Layer.succeed(FeedSignal, make(listen))
