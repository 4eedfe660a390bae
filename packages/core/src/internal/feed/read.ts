/**
 * The feed's statements. Transactions are read in commit order, the sequence migration 6 takes at each appending
 * transaction's commit (`commitOrder.ts`), and the events of each in global position order, and only up to the
 * fence: a commit sequence at or below which every transaction is visible or gone for good, so that no event can
 * ever appear behind a position already read.
 *
 * The numbers are selected as text, so that neither driver's integer parsing matters, and compared in SQL.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { StorageError, UnexpectedRow } from "../../AnnalError.ts"
import * as Checkpoint from "../../Checkpoint.ts"
import type * as Event from "../../Event.ts"
import type { EventTable } from "../../EventTable.ts"
import { qualify } from "../../EventTable.ts"
import type { Filter } from "../../Filter.ts"
import { commitLockClass, commitObjects, tableKey } from "./commitOrder.ts"
import { clauses } from "../filter.ts"
import { decodeRows, eventColumns } from "../store/read.ts"
import { fromSqlError } from "../sqlErrors.ts"

/** The fence as the fence function returns it: the number, and whether every commit taken so far is below it. */
export interface Fence {
  readonly fence: bigint
  readonly complete: boolean
}

/** A page of events, each with its checkpoint. */
export interface Page {
  readonly events: ReadonlyArray<Event.RawEvent>
  readonly checkpoints: ReadonlyArray<Checkpoint.Checkpoint>
}

/** A transaction that holds the commit lock: one in its commit, which readers wait for. */
export interface CommittingRow {
  readonly pid: number
  readonly database: string | null
  readonly applicationName: string | null
  readonly state: string | null
  readonly transactionId: string | null
  readonly ageMillis: number
  readonly query: string | null
}

/** Builds the feed's statements for one events table; database failures are `StorageError`s named after them. */
export const makeFeedRead = (sql: SqlClient.SqlClient, config: EventTable) => {
  const table = sql(qualify(config, config.table))
  const objects = commitObjects(config)
  const commits = sql(objects.commits)
  const after = (checkpoint: Checkpoint.Checkpoint) => [
    sql`c.commit_sequence >= ${checkpoint.commitSequence.toString()}::bigint`,
    sql`(c.commit_sequence, e.global_position) > (${checkpoint.commitSequence.toString()}::bigint, ${checkpoint.globalPosition.toString()}::bigint)`
  ]
  const below = (fence: bigint) => sql`c.commit_sequence <= ${fence.toString()}::bigint`
  const joined = sql`${commits} c JOIN ${table} e ON e.transaction_id = c.transaction_id`

  /**
   * The fence above `known` (see the fence function of migration 6): with `complete`, every commit taken before the
   * call is below it, waiting for the ones in flight; without, it waits only when nothing more is readable.
   */
  const fence = (known: bigint, complete: boolean): Effect.Effect<Fence, SqlError | StorageError> =>
    sql`SELECT f.fence::text AS fence, f.complete FROM ${sql(objects.fence)}(${known.toString()}::bigint, ${complete}) f`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(FenceRows, rows)),
      Effect.map((rows) => ({ fence: BigInt(rows[0]?.fence ?? known), complete: rows[0]?.complete ?? false }))
    )

  /**
   * At most `limit` matching events after `from` and at or below `fence`, in feed order: first the rest of `from`'s
   * own commit, then, if the page is not full yet, the commits after it.
   *
   * The rest of one commit is a single range of the `(transaction_id, global_position)` index, already in feed order.
   * The commits after it need a join, and the join's rows must be sorted again by (commit, position): about 0.5 ms a
   * page of 1,000 here, a quarter of the page. Reading the current commit on its own spares that sort for every page
   * inside a large commit (a bulk import), and costs one short statement when a page starts at a commit's end.
   */
  const page = (
    filter: Filter,
    from: Checkpoint.Checkpoint,
    fenceAt: bigint,
    limit: number
  ): Effect.Effect<Page, SqlError | StorageError> =>
    Effect.gen(function* () {
      const inCommit =
        from.commitSequence > 0n && from.commitSequence <= fenceAt && from.globalPosition < Checkpoint.endOfCommit
      const rest = inCommit ? yield* restOfCommit(filter, from, limit) : emptyPage
      if (rest.events.length >= limit) return rest
      const later = yield* laterCommits(filter, from.commitSequence, fenceAt, limit - rest.events.length)
      if (rest.events.length === 0) return later
      return {
        events: [...rest.events, ...later.events],
        checkpoints: [...rest.checkpoints, ...later.checkpoints]
      }
    })

  /** The matching events of `from`'s commit after it, by position. */
  const restOfCommit = (
    filter: Filter,
    from: Checkpoint.Checkpoint,
    limit: number
  ): Effect.Effect<Page, SqlError | StorageError> =>
    sql`SELECT ${eventColumns(sql)} FROM ${table} e
WHERE ${sql.and([
      sql`e.transaction_id = (SELECT c.transaction_id FROM ${commits} c
        WHERE c.commit_sequence = ${from.commitSequence.toString()}::bigint)`,
      sql`e.global_position > ${from.globalPosition.toString()}::bigint`,
      ...clauses(sql, filter)
    ])}
ORDER BY e.global_position LIMIT ${limit}`.withoutTransform.pipe(
      Effect.flatMap((rows) => decodeRows(rows, "Feed.read")),
      Effect.map((events) => ({
        events,
        checkpoints: events.map((event) => Checkpoint.make(from.commitSequence, event.globalPosition))
      }))
    )

  /**
   * The matching events of the commits after `afterCommit` and at or below `fence`, in feed order. Each commit's
   * events come from a `LATERAL` range of the `(transaction_id, global_position)` index that stops at `limit`: a plain
   * join cannot stop there, and its sort read the whole of each commit it entered (a catch-up quadratic in the size
   * of a bulk import).
   */
  const laterCommits = (
    filter: Filter,
    afterCommit: bigint,
    fenceAt: bigint,
    limit: number
  ): Effect.Effect<Page, SqlError | StorageError> =>
    sql`SELECT c.commit_sequence::text AS commit_sequence, ${eventColumns(sql)}
FROM ${commits} c CROSS JOIN LATERAL (
  SELECT * FROM ${table} e
  WHERE ${sql.and([sql`e.transaction_id = c.transaction_id`, ...clauses(sql, filter)])}
  ORDER BY e.global_position LIMIT ${limit}
) e
WHERE ${sql.and([sql`c.commit_sequence > ${afterCommit.toString()}::bigint`, below(fenceAt)])}
ORDER BY c.commit_sequence, e.global_position
LIMIT ${limit}`.withoutTransform.pipe(
      Effect.flatMap((rows) =>
        Effect.flatMap(decodeRows(rows, "Feed.read"), (events) => {
          const checkpoints: Array<Checkpoint.Checkpoint> = []
          // The rows of one commit are consecutive and share its text: each distinct one is checked and parsed once.
          let text: string | undefined
          let commitSequence = 0n
          for (let index = 0; index < events.length; index++) {
            const row = rows[index]
            const rowText = textOf(row)
            if (rowText === undefined || rowText !== text) {
              const parsed = commitSequenceOf(row)
              if (parsed === undefined) return Effect.fail(unexpectedRow("a feed row without its commit"))
              text = rowText
              commitSequence = parsed
            }
            checkpoints.push(Checkpoint.make(commitSequence, events[index]!.globalPosition))
          }
          return Effect.succeed({ events, checkpoints })
        })
      )
    )

  /** The checkpoint of the last event at or below `fence`, whatever its type. */
  const lastBelow = (fenceAt: bigint): Effect.Effect<Checkpoint.Checkpoint | undefined, SqlError | StorageError> =>
    // The last commit's last event from the index, not the whole of that commit sorted (see `page`).
    sql`SELECT c.commit_sequence::text AS commit_sequence, e.global_position::text AS global_position
FROM ${commits} c CROSS JOIN LATERAL (
  SELECT e.global_position FROM ${table} e WHERE e.transaction_id = c.transaction_id
  ORDER BY e.global_position DESC LIMIT 1
) e
WHERE ${below(fenceAt)}
ORDER BY c.commit_sequence DESC LIMIT 1`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CheckpointRows, rows)),
      Effect.map((rows) => (rows[0] === undefined ? undefined : checkpointOfRow(rows[0])))
    )

  /** How many matching events lie after `from` and at or below `fence`. */
  const count = (
    filter: Filter,
    from: Checkpoint.Checkpoint,
    fenceAt: bigint
  ): Effect.Effect<number, SqlError | StorageError> =>
    sql`SELECT count(*)::text AS count FROM ${joined}
WHERE ${sql.and([...after(from), below(fenceAt), ...clauses(sql, filter)])}`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CountRows, rows)),
      Effect.map((rows) => Number(rows[0]?.count ?? "0"))
    )

  /** The committed events above the fence, which readers cannot pass yet, and how long ago the oldest committed. */
  const pending = (fenceAt: bigint): Effect.Effect<BacklogRow, SqlError | StorageError> =>
    sql`SELECT count(*)::text AS count,
  (extract(epoch FROM clock_timestamp() - min(c.committed_at)) * 1000)::float8 AS oldest_millis
FROM ${joined} WHERE c.commit_sequence > ${fenceAt.toString()}::bigint`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(BacklogRows, rows)),
      Effect.map((rows) => rows[0] ?? { count: "0", oldest_millis: null })
    )

  /** The last commit sequence taken, committed or not. */
  const lastTaken: Effect.Effect<bigint, SqlError | StorageError> = sql`SELECT
  (CASE WHEN s.is_called THEN s.last_value ELSE 0 END)::text AS last FROM ${sql(objects.sequence)} s`.withoutTransform.pipe(
    Effect.flatMap((rows) => decode(LastRows, rows)),
    Effect.map((rows) => BigInt(rows[0]?.last ?? "0"))
  )

  /**
   * The transactions in their commit that hold the commit lock, oldest first: the only ones a reader can wait for.
   * Idle or running transactions never appear here, whatever they hold.
   */
  const committing: Effect.Effect<ReadonlyArray<CommittingRow>, SqlError | StorageError> = sql`SELECT a.pid,
  a.datname::text AS database, a.application_name, a.state, a.backend_xid::text AS transaction_id,
  COALESCE((extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::float8, 0) AS age_millis,
  left(a.query, 500) AS query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = ${commitLockClass}::oid AND l.objid = ${tableKey(config) >>> 0}::oid
  AND l.objsubid = 2 AND l.mode = 'ShareLock' AND l.granted AND l.database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY a.xact_start`.withoutTransform.pipe(
    Effect.flatMap((rows) => decode(CommittingRows, rows)),
    Effect.map((rows) =>
      rows.map((row) => ({
        pid: row.pid,
        database: row.database,
        applicationName: row.application_name,
        state: row.state,
        transactionId: row.transaction_id,
        ageMillis: row.age_millis,
        query: row.query
      }))
    )
  )

  /** A checkpoint of the first format, `(transaction id, global position)`, in commit order (migration 6). */
  const legacy = (
    transactionId: bigint,
    globalPosition: bigint
  ): Effect.Effect<Checkpoint.Checkpoint, SqlError | StorageError> =>
    sql`SELECT l.commit_sequence::text AS commit_sequence, l.global_position::text AS global_position
FROM ${sql(objects.legacyCheckpoint)}(${transactionId.toString()}::xid8, ${globalPosition.toString()}::bigint) l`.withoutTransform.pipe(
      Effect.flatMap((rows) => decode(CheckpointRows, rows)),
      Effect.map((rows) => (rows[0] === undefined ? Checkpoint.start : checkpointOfRow(rows[0])))
    )

  /**
   * The fence above `known` as it stands, without waiting for any commit in flight: what a status report needs,
   * since it is asked for exactly when a commit holds the feed back. When no transaction holds the commit lock, every
   * number taken before the lock was tried is visible or gone, as in the fence function; otherwise the fence is the
   * run of visible numbers after `known`. The lock is tried and released in one statement, so one connection of the
   * pool has it and keeps nothing.
   */
  const fenceNow = (known: bigint): Effect.Effect<bigint, SqlError | StorageError> =>
    Effect.gen(function* () {
      const last = yield* lastTaken
      if (last <= known) return known
      const free =
        yield* sql`SELECT CASE WHEN pg_try_advisory_lock(${commitLockClass}::integer, ${tableKey(config)}::integer)
  THEN pg_advisory_unlock(${commitLockClass}::integer, ${tableKey(config)}::integer) ELSE false END AS free`.withoutTransform.pipe(
          Effect.flatMap((rows) => decode(FreeRows, rows))
        )
      if (free[0]?.free === true) return last
      const run = yield* sql`SELECT (${known.toString()}::bigint + count(*))::text AS last FROM (
  SELECT c.commit_sequence, row_number() OVER (ORDER BY c.commit_sequence) AS n FROM ${commits} c
  WHERE c.commit_sequence > ${known.toString()}::bigint AND c.commit_sequence <= ${last.toString()}::bigint
) r WHERE r.commit_sequence = ${known.toString()}::bigint + r.n`.withoutTransform.pipe(
        Effect.flatMap((rows) => decode(LastRows, rows))
      )
      return BigInt(run[0]?.last ?? known.toString())
    })

  return {
    fence: (known: bigint, complete: boolean) => stored("Feed.fence", fence(known, complete)),
    page: (filter: Filter, from: Checkpoint.Checkpoint, fenceAt: bigint, limit: number) =>
      stored("Feed.page", page(filter, from, fenceAt, limit)),
    lastBelow: (fenceAt: bigint) => stored("Feed.lastBelow", lastBelow(fenceAt)),
    count: (filter: Filter, from: Checkpoint.Checkpoint, fenceAt: bigint) =>
      stored("Feed.count", count(filter, from, fenceAt)),
    pending: (fenceAt: bigint) => stored("Feed.pending", pending(fenceAt)),
    lastTaken: stored("Feed.lastTaken", lastTaken),
    fenceNow: (known: bigint) => stored("Feed.fenceNow", fenceNow(known)),
    committing: stored("Feed.committing", committing),
    legacy: (transactionId: bigint, globalPosition: bigint) =>
      stored("Feed.resolve", legacy(transactionId, globalPosition))
  }
}

const stored = <A>(
  operation: string,
  effect: Effect.Effect<A, SqlError | StorageError>
): Effect.Effect<A, StorageError> =>
  Effect.catchTag(effect, "SqlError", (error) => Effect.fail(fromSqlError(operation, error)))

/** Decodes rows the database returned; a row of another shape is a storage fault, not the caller's. */
export const decode = <A, I>(schema: Schema.Codec<A, I>, rows: unknown): Effect.Effect<A, StorageError> =>
  Schema.decodeUnknownEffect(schema)(rows).pipe(Effect.mapError((error) => unexpectedRow(error.message)))

/** A checkpoint selected as `commit_sequence` and `global_position` text. */
export const checkpointOfRow = (row: {
  readonly commit_sequence: string
  readonly global_position: string
}): Checkpoint.Checkpoint => Checkpoint.make(BigInt(row.commit_sequence), BigInt(row.global_position))

/** The commit sequence a page row was selected with. */
const commitSequenceOf = (row: unknown): bigint | undefined =>
  typeof row === "object" &&
  row !== null &&
  "commit_sequence" in row &&
  typeof row.commit_sequence === "string" &&
  /^[0-9]{1,19}$/.test(row.commit_sequence)
    ? BigInt(row.commit_sequence)
    : undefined

/** A page row's `commit_sequence` when it is a string, unchecked. */
const textOf = (row: unknown): string | undefined => {
  const text =
    typeof row === "object" && row !== null
      ? (row as { readonly commit_sequence?: unknown }).commit_sequence
      : undefined
  return typeof text === "string" ? text : undefined
}

const emptyPage: Page = { events: [], checkpoints: [] }

const unexpectedRow = (detail: string) =>
  new StorageError({ operation: "Feed.read", reason: new UnexpectedRow(), detail })

const FenceRows = Schema.Array(Schema.Struct({ fence: Schema.String, complete: Schema.Boolean }))
export const CheckpointRows = Schema.Array(
  Schema.Struct({ commit_sequence: Schema.String, global_position: Schema.String })
)
const CountRows = Schema.Array(Schema.Struct({ count: Schema.String }))
const LastRows = Schema.Array(Schema.Struct({ last: Schema.String }))
const FreeRows = Schema.Array(Schema.Struct({ free: Schema.Boolean }))
const BacklogRow = Schema.Struct({ count: Schema.String, oldest_millis: Schema.NullOr(Schema.Number) })
type BacklogRow = typeof BacklogRow.Type
const BacklogRows = Schema.Array(BacklogRow)
const CommittingRows = Schema.Array(
  Schema.Struct({
    pid: Schema.Number,
    database: Schema.NullOr(Schema.String),
    application_name: Schema.NullOr(Schema.String),
    state: Schema.NullOr(Schema.String),
    transaction_id: Schema.NullOr(Schema.String),
    age_millis: Schema.Number,
    query: Schema.NullOr(Schema.String)
  })
)
