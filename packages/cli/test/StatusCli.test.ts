import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import { Consumer, Consumers, Digest, EventStore } from "@annal/core"
import { PgClient } from "@effect/sql-pg"
import { signingKey } from "../../core/test/support/Chains.ts"
import { caughtUp, created, gst } from "../../core/test/support/FeedDatabase.ts"
import { OrganizationEvents, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

describe(`annal status (${TestDatabase.engine})`, () => {
  it("shows the feed, each consumer's lag and lease, the last digest and the counts, as text and as JSON", async () => {
    const database = await CliDatabase.make()
    try {
      const org = uuid()
      await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          yield* store.append([created(org), gst(org)])
          // A consumer that has handled the first two events, then stopped; then one more event it has not seen.
          const consumers = yield* Consumers.Consumers
          const fiber = yield* Effect.forkChild(
            consumers.run(Consumer.make({ name: "projector", registry: OrganizationEvents, handle: () => Effect.void }))
          )
          yield* caughtUp(database.schema, "projector")
          yield* Fiber.interrupt(fiber)
          yield* Digest.Digest.use((digest) => digest.create()).pipe(
            Effect.provide(Digest.layer({ schema: database.schema }).pipe(Layer.provide(signingKey)))
          )
          yield* store.append([gst(org, "30B")])
        })
      )

      const text = await run(["status", ...database.flags])
      assert.strictEqual(text.code, 0, text.stderr)
      assert.include(text.stdout, `Annal status of ${database.schema}.events on `)
      assert.match(text.stdout, /head {6}commit 2, position \d+/, text.stdout)
      assert.include(text.stdout, "pending   none: readers see every committed event")
      assert.include(text.stdout, "held by   nothing")
      assert.match(
        text.stdout,
        /projector {2}1 event behind, the oldest [\d.]+ (ms|s) old; at commit 1, position \d+; no lease held \(not running\)/
      )
      assert.match(text.stdout, /#1, made \d{4}-\d\d-\d\dT[\d:.]+Z \([\d.]+ (ms|s) ago\)/)
      assert.include(text.stdout, "covers 2 events in 1 stream")
      assert.include(text.stdout, "3 events, 1 consumer, 1 digest")
      // What the old output showed: Effect's Option and Duration objects, and nanoseconds as strings.
      assert.notMatch(text.stdout, /_id|Option|Duration|nanos|\[object/)

      const json = await run(["status", ...database.flags, "--json"])
      assert.strictEqual(json.code, 0, json.stderr)
      const report = JSON.parse(json.stdout)
      assert.deepStrictEqual(Object.keys(report), ["table", "database", "at", "feed", "consumers", "digest", "counts"])
      assert.strictEqual(report.table, `${database.schema}.events`)
      assert.strictEqual(new Date(report.at).toISOString(), report.at)
      assert.deepStrictEqual(
        [report.feed.fence, report.feed.lastCommit, report.feed.head.commitSequence, report.feed.pending],
        [2, 2, 2, 0]
      )
      assert.deepStrictEqual([report.feed.oldestPendingAgeMs, report.feed.heldBy], [null, []])
      assert.strictEqual(typeof report.feed.head.globalPosition, "number")
      const [projector] = report.consumers
      assert.deepStrictEqual(
        [
          projector.name,
          projector.eventsBehind,
          projector.owner,
          projector.leaseExpiresAt,
          projector.checkpoint.commitSequence
        ],
        ["projector", 1, null, null, 1]
      )
      assert.strictEqual(typeof projector.oldestUnprocessedAgeMs, "number")
      assert.deepStrictEqual(
        [report.digest.id, report.digest.events, report.digest.streams, report.digest.checkpoint.commitSequence],
        [1, 2, 1, 1]
      )
      assert.isAtLeast(report.digest.ageMs, 0)
      assert.deepStrictEqual(report.counts, { events: 3, consumers: 1, consumersBehind: 1, digests: 1 })
    } finally {
      await database.remove()
    }
  }, 120_000)
})

// PGlite is one connection in one process: no transaction of another session can hold its commit there.
describe.skipIf(TestDatabase.engine !== "postgres")("annal status while a commit holds the feed back", () => {
  it("names the holding transaction's pid, application, state, age and query, and nothing once it has committed", async () => {
    const database = await CliDatabase.make()
    const applicationName = `annal-holder-${database.schema}`
    const databaseName = new URL(TestDatabase.postgresUrl).pathname.slice(1)
    const holder = PgClient.layer({ url: Redacted.make(TestDatabase.postgresUrl), applicationName })
    try {
      await database.use(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          // A lock on the commits table makes the append's commit wait inside its commit trigger, where it holds the
          // feed's commit lock: the feed cannot pass it, as with a commit stuck on a slow disk or a lock of the app's.
          const locked = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const blocker = yield* Effect.forkChild(
            sql.withTransaction(
              Effect.gen(function* () {
                yield* sql`LOCK TABLE ${sql(`${database.schema}.events_commits`)} IN EXCLUSIVE MODE`
                yield* Deferred.succeed(locked, undefined)
                yield* Deferred.await(release)
              })
            )
          )
          yield* Deferred.await(locked)
          const append = yield* Effect.forkChild(
            Effect.gen(function* () {
              const store = yield* EventStore.make({ schema: database.schema })
              return yield* store.append([created()])
            }).pipe(Effect.provide(holder))
          )
          // Until the append waits in its commit for the lock.
          const [waiting] = yield* sql<{ readonly pid: number }>`SELECT pid FROM pg_stat_activity
            WHERE application_name = ${applicationName} AND wait_event_type = 'Lock'`.pipe(
            Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (rows) => rows.length > 0 })
          )
          const pid = waiting!.pid

          const text = yield* Effect.promise(() => run(["status", ...database.flags]))
          const json = yield* Effect.promise(() => run(["status", ...database.flags, "--json"]))
          // The lock goes before anything is asserted: the append's statement cannot be interrupted while it waits.
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(blocker)
          yield* Fiber.join(append)

          assert.strictEqual(text.code, 0, text.stderr)
          assert.match(
            text.stdout,
            new RegExp(
              `held by   pid ${pid} \\(${applicationName}\\) on ${databaseName}, active for [\\d.]+ (ms|s), transaction \\d+`
            )
          )
          // The append is one statement, which commits as it ends: its commit trigger runs within it.
          assert.include(text.stdout, "query: WITH locked AS MATERIALIZED")
          assert.include(text.stdout, "fence     commit 0\n")
          const report = JSON.parse(json.stdout)
          assert.strictEqual(report.feed.heldBy.length, 1)
          const [held] = report.feed.heldBy
          assert.deepStrictEqual(
            [held.pid, held.applicationName, held.database, held.state, held.query.startsWith("WITH locked AS")],
            [pid, applicationName, databaseName, "active", true]
          )
          assert.strictEqual(typeof held.transactionId, "number")
          assert.strictEqual(typeof held.ageMs, "number")
          assert.deepStrictEqual([report.feed.fence, report.feed.pending], [0, 0])

          const after = yield* Effect.promise(() => run(["status", ...database.flags, "--json"]))
          const cleared = JSON.parse(after.stdout)
          assert.deepStrictEqual([cleared.feed.heldBy, cleared.feed.fence, cleared.counts.events], [[], 1, 1])
        })
      )
    } finally {
      await database.remove()
    }
  }, 120_000)
})
