/**
 * The log's order (migration 6, `docs/ordering.md`): the feed delivers transactions in the order they committed,
 * each one's events in the order they were appended; readers wait only for transactions that are committing; a
 * number taken by a commit that then failed is a gap nobody waits for; appends to the same streams in opposite orders
 * never deadlock; and a checkpoint of the first format still resolves. Each guarantee is shown against what the
 * previous order, `(transaction_id, global_position)` below `pg_snapshot_xmin`, or a naive writer, would have done.
 */
import { assert, layer } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Checkpoint from "../src/Checkpoint.ts"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Feed from "../src/Feed.ts"
import * as Transaction from "../src/Transaction.ts"
import { describe as describeSqlError } from "../src/internal/sqlErrors.ts"
import { uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const events = `${schema}.events`
const postgres = TestDatabase.engine === "postgres"

class Rollback extends Schema.TaggedError<Rollback>()("Rollback", {}) {}

/** Everything the feed delivers after `after`, up to what committed before the call. */
const readAfter = (after: Checkpoint.Checkpoint) =>
  Feed.Feed.use((feed) =>
    Stream.runCollect(feed.stream(EventRegistry.raw, { after, live: false, limit: 3 })).pipe(
      Effect.map((entries) => entries.map((entry) => entry.event))
    )
  )

/** The ids of these events in the order the previous feed read them: by transaction id, then global position. */
const previousOrder = (ids: ReadonlyArray<string>) =>
  SqlClient.SqlClient.use((sql) =>
    sql<{ readonly id: string }>`SELECT e.id::text AS id FROM ${sql(events)} e WHERE e.id IN ${sql.in(ids)}
      ORDER BY e.transaction_id, e.global_position`.pipe(Effect.map((rows) => rows.map((row) => row.id)))
  )

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`commit order (${TestDatabase.engine})`, (it) => {
  it.effect.runIf(postgres)(
    "a stream's events come in version order when the later version's transaction took its id first",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const feed = yield* Feed.Feed
        const sql = yield* SqlClient.SqlClient
        const start = yield* feed.head
        const stream = uuid()
        yield* sql`CREATE TABLE IF NOT EXISTS ${sql(`${schema}.business`)} (id uuid PRIMARY KEY)`
        const wrote = yield* Deferred.make<void>()
        const go = yield* Deferred.make<void>()
        // 1. T1 begins and writes a business row: it now has the smaller transaction id.
        const t1 = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`INSERT INTO ${sql(`${schema}.business`)} (id) VALUES (${uuid()})`
              yield* Deferred.succeed(wrote, undefined)
              yield* Deferred.await(go)
              // 3. T1 appends to the stream, whose head is now T2's version 1, and commits.
              return yield* store.append([FeedDatabase.gst(stream, "T1")])
            })
          )
          .pipe(Effect.forkChild)
        yield* Deferred.await(wrote)
        // 2. T2 appends version 1 and commits.
        const [v1] = yield* store.append([FeedDatabase.gst(stream, "T2")])
        yield* Deferred.succeed(go, undefined)
        const [v2] = yield* Fiber.join(t1)
        assert.deepStrictEqual([v1!.streamVersion, v2!.streamVersion], [1, 2])
        // 4. The feed delivers version 1, then version 2.
        const delivered = yield* readAfter(start)
        assert.deepStrictEqual(
          delivered.map((event) => [event.eventId, event.streamVersion]),
          [
            [v1!.eventId, 1],
            [v2!.eventId, 2]
          ]
        )
        // The previous order put version 2 first: T1's transaction id is the smaller.
        assert.deepStrictEqual(yield* previousOrder([v1!.eventId, v2!.eventId]), [v2!.eventId, v1!.eventId])
      })
  )

  it.effect("the events of one append come in the order they were given, across streams", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const feed = yield* Feed.Feed
      const start = yield* feed.head
      const [a, b] = [uuid(), uuid()]
      const appended = yield* store.append([
        FeedDatabase.gst(a, "1"),
        FeedDatabase.gst(a, "2"),
        FeedDatabase.gst(b, "1"),
        FeedDatabase.gst(a, "3")
      ])
      const positions = appended.map((event) => event.globalPosition)
      assert.deepStrictEqual(
        positions,
        positions.toSorted((x, y) => (x < y ? -1 : 1))
      )
      assert.deepStrictEqual(
        appended.map((event) => [event.aggregateId, event.streamVersion]),
        [
          [a, 1],
          [a, 2],
          [b, 1],
          [a, 3]
        ]
      )
      const delivered = yield* readAfter(start)
      assert.deepStrictEqual(
        delivered.map((event) => event.eventId),
        appended.map((event) => event.eventId)
      )
    })
  )

  it.effect.runIf(postgres)(
    "an open transaction, idle after its first write, holds no live consumer back; the previous fence would",
    () =>
      Effect.gen(function* () {
        const consumers = yield* Consumers.Consumers
        const sql = yield* SqlClient.SqlClient
        const name = `live-${uuid()}`
        const seen = new Set<string>()
        const follower = yield* Effect.forkChild(
          consumers.run(
            Consumer.make({
              name,
              registry: EventRegistry.raw,
              handle: (batch) => Effect.sync(() => batch.events.forEach((event) => seen.add(event.eventId)))
            })
          )
        )
        // As psql's BEGIN; SELECT pg_current_xact_id(); left idle: a transaction that holds an id and waits. The id
        // is cast to text: @effect/sql-pg reads an xid8's binary form as UTF-8 text, which fails once a byte of the id
        // is 0x80 or more (a busy server's ids). A failure of the
        // transaction fails `opened`, so that the test fails with it rather than wait for ever.
        const opened = yield* Deferred.make<void, unknown>()
        const release = yield* Deferred.make<void>()
        let ended = false
        const idle = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              yield* sql`SELECT pg_current_xact_id()::text`
              yield* Deferred.succeed(opened, undefined)
              yield* Deferred.await(release)
            })
          )
          .pipe(
            Effect.onError((cause) => Deferred.failCause(opened, cause)),
            Effect.ensuring(Effect.sync(() => (ended = true))),
            Effect.forkChild
          )
        yield* Deferred.await(opened)
        const appended = yield* FeedDatabase.appendMany(20)
        // Every one is delivered while the transaction stays open.
        yield* FeedDatabase.caughtUp(schema, name)
        assert.isTrue(appended.every((id) => seen.has(id)))
        const [held] = yield* sql<{ readonly readable: number }>`SELECT count(*)::int AS readable FROM ${sql(events)}
          WHERE id IN ${sql.in(appended)} AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())`
        assert.strictEqual(held!.readable, 0, "the previous fence, held by the idle transaction, reads none of them")
        assert.isFalse(ended, "the idle transaction was open all along")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(idle)
        yield* Fiber.interrupt(follower)
      })
  )

  it.effect("a commit that took its number and then failed is a gap no reader waits for", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const feed = yield* Feed.Feed
      const sql = yield* SqlClient.SqlClient
      const start = yield* feed.head
      // A deferred check of the application's that fails at COMMIT, after the commit order's own trigger has run.
      const guarded = sql(`${schema}.guarded`)
      yield* sql`CREATE TABLE IF NOT EXISTS ${guarded} (ok boolean NOT NULL)`
      yield* sql`CREATE OR REPLACE FUNCTION ${sql(`${schema}.refuse_at_commit`)}() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN IF NOT NEW.ok THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$`
      yield* sql`DROP TRIGGER IF EXISTS refuse_at_commit ON ${guarded}`
      yield* sql`CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON ${guarded}
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${sql(`${schema}.refuse_at_commit`)}()`
      const sequence = sql(`${schema}.events_commit_sequence`)
      const taken = () =>
        Effect.map(sql<{ readonly last: string }>`SELECT last_value::text AS last FROM ${sequence}`, (rows) =>
          BigInt(rows[0]!.last)
        )
      const before = yield* taken()
      const failed = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* store.append([FeedDatabase.gst(uuid(), "lost")])
            yield* sql`INSERT INTO ${guarded} (ok) VALUES (false)`
          })
        )
        .pipe(Effect.flip)
      assert.include(failed._tag === "SqlError" ? describeSqlError(failed) : failed.message, "refused at commit")
      assert.strictEqual(yield* taken(), before + 1n, "the failed commit took a number")
      const after = yield* FeedDatabase.appendMany(2)
      const delivered = yield* readAfter(start)
      assert.deepStrictEqual(
        delivered.map((event) => event.eventId),
        after
      )
      const status = yield* feed.status
      assert.isTrue(status.fence >= before + 3n)
      assert.strictEqual(status.pending, 0)
    })
  )

  it.effect("a commit order taken early (SET CONSTRAINTS ALL IMMEDIATE) is refused with a reason, nothing stored", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const sql = yield* SqlClient.SqlClient
      const stream = uuid()
      const refused = yield* sql
        .withTransaction(
          Effect.andThen(sql`SET CONSTRAINTS ALL IMMEDIATE`, store.append([FeedDatabase.gst(stream, "early")]))
        )
        .pipe(Effect.flip)
      assert.strictEqual(refused._tag, "StorageError")
      assert.include(refused.message, "at its commit")
      const [row] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(events)}
        WHERE aggregate_id = ${stream}::uuid`
      assert.strictEqual(row!.n, 0)
    })
  )

  it.effect.runIf(postgres)(
    "two writers appending to the same two streams in opposite orders, 1,000 times, never deadlock",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        const [a, b] = [uuid(), uuid()]
        // Each holds its streams for a moment before committing, so that the other is in the middle of its append.
        const writer = (first: string, second: string) =>
          Effect.gen(function* () {
            const failures: Array<string> = []
            for (let i = 0; i < 1000; i++) {
              const exit = yield* sql
                .withTransaction(
                  Effect.andThen(
                    store.append([FeedDatabase.gst(first, String(i)), FeedDatabase.gst(second, String(i))]),
                    Effect.flatMap(Random.nextIntBetween(0, 2), (pause) =>
                      pause === 0 ? Effect.void : Effect.sleep(pause)
                    )
                  )
                )
                .pipe(Effect.exit)
              if (exit._tag === "Failure") failures.push(String(exit.cause))
            }
            return failures
          })
        const [one, two] = yield* Effect.all([writer(a, b), writer(b, a)], { concurrency: 2 })
        assert.deepStrictEqual([...one, ...two], [])
        const [count] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(events)}
          WHERE aggregate_id IN (${a}::uuid, ${b}::uuid)`
        assert.strictEqual(count!.n, 4000)

        // The control: the same workload written naively, each stream's row in the order given, deadlocks.
        const pairs = sql(`${schema}.pairs`)
        yield* sql`CREATE TABLE ${pairs} (stream text NOT NULL, version integer NOT NULL, PRIMARY KEY (stream, version))`
        const naive = (first: string, second: string) =>
          Effect.gen(function* () {
            let deadlocks = 0
            for (let i = 0; i < 200 && deadlocks === 0; i++) {
              const exit = yield* sql
                .withTransaction(
                  Effect.gen(function* () {
                    yield* sql`INSERT INTO ${pairs} VALUES (${first}, ${i})`
                    yield* Effect.sleep(2)
                    yield* sql`INSERT INTO ${pairs} VALUES (${second}, ${i})`
                  })
                )
                .pipe(Effect.exit)
              if (exit._tag === "Failure" && String(exit.cause).includes("Deadlock")) deadlocks++
            }
            return deadlocks
          })
        const deadlocks = yield* Effect.all([naive("a", "b"), naive("b", "a")], { concurrency: 2 })
        assert.isAbove(deadlocks[0]! + deadlocks[1]!, 0, "the naive writers deadlock")
      }),
    120_000
  )

  it.effect("a checkpoint of the first format resolves to the same place in commit order", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const feed = yield* Feed.Feed
      const start = yield* feed.head
      const appended = yield* store.append([FeedDatabase.gst(uuid(), "1"), FeedDatabase.gst(uuid(), "2")])
      const [first] = yield* readAfter(start)
      assert.strictEqual(first!.eventId, appended[0]!.eventId)
      const legacy = btoa(`annal.feed.v1:${first!.transactionId}:${first!.globalPosition}`).replaceAll("=", "")
      const resolved = yield* feed.resolve(legacy)
      const rest = yield* readAfter(resolved)
      assert.deepStrictEqual(
        rest.map((event) => event.eventId),
        [appended[1]!.eventId]
      )
      // The same through `after`, as a consumer or an SSE client hands it back.
      const viaAfter = yield* Feed.Feed.use((f) => f.read(EventRegistry.raw, { after: legacy }))
      assert.deepStrictEqual(
        viaAfter.events.map((event) => event.eventId),
        [appended[1]!.eventId]
      )
      assert.strictEqual((yield* Effect.flip(feed.resolve("bm90IGEgY2hlY2twb2ludA")))._tag, "InvalidCursor")
    })
  )

  it.effect("Transaction.run runs a business transaction again after a conflict, and only then", () =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const stream = uuid()
      yield* store.append([FeedDatabase.gst(stream, "0")])
      let attempts = 0
      // The first attempt decides on a stale view (no stream yet); the second reads the stream in its transaction.
      const appended = yield* Transaction.run(
        Effect.gen(function* () {
          attempts++
          const head =
            attempts === 1 ? 0 : (yield* store.getByAggregate(EventRegistry.raw, "organization", stream)).length
          return yield* store.append([FeedDatabase.gst(stream, "mine")], {
            expectedVersion: head === 0 ? "no_stream" : head
          })
        })
      )
      assert.strictEqual(attempts, 2)
      assert.strictEqual(appended[0]!.streamVersion, 2)
      // Anything else fails at once.
      let refusals = 0
      const refused = yield* Transaction.run(
        Effect.suspend(() => {
          refusals++
          return Effect.fail(new Rollback())
        })
      ).pipe(Effect.flip)
      assert.strictEqual(refused._tag, "Rollback")
      assert.strictEqual(refusals, 1)
    })
  )

  it.effect.runIf(postgres)(
    "Transaction.run runs a business transaction again when it deadlocked on the application's own rows",
    () =>
      Effect.gen(function* () {
        const store = yield* EventStore
        const sql = yield* SqlClient.SqlClient
        const accounts = sql(`${schema}.accounts`)
        yield* sql`CREATE TABLE ${accounts} (id text PRIMARY KEY, n integer NOT NULL)`
        yield* sql`INSERT INTO ${accounts} VALUES ('a', 0), ('b', 0)`
        const [holdsA, holdsB] = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
        const failures: Array<string> = []
        let attempts = 0
        // Each locks its first row, waits (on its first attempt) until the other holds the other row, then locks
        // that one too: the server must end one of the two with a deadlock, which Transaction.run runs again.
        const transfer = (first: string, second: string, mine: Deferred.Deferred<void>, theirs: typeof mine) =>
          Transaction.run(
            Effect.gen(function* () {
              const attempt = ++attempts
              yield* sql`UPDATE ${accounts} SET n = n + 1 WHERE id = ${first}`
              if (attempt <= 2) {
                yield* Deferred.succeed(mine, undefined)
                yield* Deferred.await(theirs)
              }
              yield* sql`UPDATE ${accounts} SET n = n + 1 WHERE id = ${second}`
              return yield* store.append([FeedDatabase.gst(uuid(), `${first}${second}`)])
            }).pipe(
              Effect.tapError((error) =>
                Effect.sync(() => failures.push(error._tag === "SqlError" ? error.reason._tag : error._tag))
              )
            )
          )
        const [ab, ba] = yield* Effect.all([transfer("a", "b", holdsA, holdsB), transfer("b", "a", holdsB, holdsA)], {
          concurrency: 2
        })
        assert.deepStrictEqual(failures, ["DeadlockError"], "one of the two deadlocked, once")
        assert.strictEqual(attempts, 3, "and ran again")
        assert.lengthOf([...ab, ...ba], 2)
        const rows = yield* sql<{ readonly n: number }>`SELECT n FROM ${accounts} ORDER BY id`
        assert.deepStrictEqual(
          rows.map((row) => row.n),
          [2, 2],
          "each transfer counted once: the deadlocked attempt was rolled back"
        )
      }),
    60_000
  )
})
