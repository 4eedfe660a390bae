/**
 * Wakes feed readers once appended events have committed: a `NOTIFY` on the events table's channel, sent after the
 * commit in a transaction of its own, never inside the writer's.
 *
 * Why not in the writer's transaction (as a trigger did until migration 5): PostgreSQL queues notifications in commit
 * order by taking a lock on the whole server at the commit of every transaction that sent one, and holds it through
 * that transaction's WAL flush, so all appending transactions committed one after another (see
 * `dropNotifyTrigger`). A transaction that only notifies writes no WAL to wait for, so it holds that lock briefly.
 *
 * Notifications are coalesced: after one is sent the sender waits `spacing` (5 ms), and all the commits of that
 * time, and of the sending, get one more notification between them, not one each. Under load a process sends at
 * most 200 a second, so that notifying does not cost each transaction a statement (a `NOTIFY` per commit made a
 * business transaction with one event 30% slower, measured in `bench/`); when writes are rare each commit is
 * notified at once. A notification is only ever a hint; one that is lost (the database was down, the process died after the commit)
 * delays readers until they poll, it loses no event. Rows written by anything other than this store wake no one
 * either, and are read at the next poll.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"

/** The pause after each notification, during which commits wait to share the next one. */
export const spacing: Duration.Duration = Duration.millis(5)

/** Asks for one notification after the current transaction commits (at once outside a transaction). */
export interface Notifier {
  readonly afterCommit: Effect.Effect<void>
}

/** Starts the sender on `channel` for the scope. */
export const make = (sql: SqlClient.SqlClient, channel: string): Effect.Effect<Notifier, never, Scope.Scope> =>
  Effect.gen(function* () {
    // Capacity one, dropping: a request made while one waits is already covered by it.
    const requests = yield* Queue.dropping<void>(1)
    yield* Queue.take(requests).pipe(
      Effect.andThen(sql`SELECT pg_notify(${channel}, '')`),
      Effect.catchCause((cause) => Effect.logDebug("Feed: a commit notification was not sent", cause)),
      Effect.andThen(Effect.sleep(spacing)),
      Effect.forever,
      Effect.forkScoped
    )
    return { afterCommit: sql.afterCommit(Effect.asVoid(Queue.offer(requests, undefined))) }
  })
