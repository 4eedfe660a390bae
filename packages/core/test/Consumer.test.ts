import { assert, describe, it, layer } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Statement from "effect/sql/Statement"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import type * as Event from "../src/Event.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { EventStore } from "../src/EventStore.ts"
import * as Checkpoint from "../src/Checkpoint.ts"
import { uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()
const postgres = TestDatabase.engine === "postgres"

/** Every committed event, in feed order. */
const allEvents = FeedDatabase.committed(schema)

const lagOf = FeedDatabase.lagOf
const caughtUp = (name: string) => FeedDatabase.caughtUp(schema, name)

/** A table that records which handler handled which event, in the order they committed. */
const handledTable = Effect.fnUntraced(function* () {
  const sql = yield* SqlClient.SqlClient
  const table = `${schema}.handled_${uuid().replaceAll("-", "").slice(0, 12)}`
  yield* sql`CREATE TABLE ${sql(table)} (seq bigserial PRIMARY KEY, event_id uuid NOT NULL, handler text NOT NULL)`
  const record = (events: ReadonlyArray<Event.Event>, handler: string) =>
    Effect.forEach(
      events,
      (event) => sql`INSERT INTO ${sql(table)} (event_id, handler) VALUES (${event.eventId}::uuid, ${handler})`,
      { discard: true }
    )
  const rows = sql<{ readonly event_id: string; readonly handler: string }>`SELECT event_id, handler
    FROM ${sql(table)} ORDER BY seq`
  return { table, record, rows } as const
})

/**
 * Quick settings: a waiting instance tries the lease every 50 ms, so that a released lease is taken within the
 * test. The lease itself is long, so that a live holder starved of CPU on a loaded machine never loses it: a test
 * that needs a lease to expire expires it on the database's clock.
 */
const quick = FeedDatabase.quickConsumer

/** A bound on waiting for something that must happen: only a hang guard, generous for a loaded machine. */
const hangGuard = "20 seconds"

/**
 * Watches an instance's statements, with a statement transformer on its fiber, to tell when it was refused the lease.
 * The acquire statement is the only INSERT into the consumers table. An instance that waits for the lease issues
 * nothing but attempts; one that got it goes on to read the feed: so the statement after an attempt says how it went.
 */
const leaseAttempts = Effect.fnUntraced(function* () {
  /** One item per statement: whether it was an attempt at the lease. */
  const statements = yield* Queue.unbounded<boolean>()
  const transformer: Statement.Transformer = (statement) => {
    const [text] = statement.compile()
    return Effect.as(
      Queue.offer(statements, text.startsWith("INSERT INTO") && text.includes("events_consumers")),
      statement
    )
  }
  return {
    /** Runs an instance with its statements watched. */
    observe: <A, E, R>(instance: Effect.Effect<A, E, R>) =>
      Effect.provideService(instance, Statement.CurrentTransformer, transformer),
    /** Waits for the instance's first attempt at the lease after this call to be refused; fails if it took it. */
    refused: Effect.gen(function* () {
      yield* Queue.clear(statements)
      while (!(yield* Queue.take(statements))) {
        // Statements before the attempt: what the instance was still doing, a commit that is refused say.
      }
      if (!(yield* Queue.take(statements))) {
        return yield* Effect.die(new Error("the instance took the lease: it went on to read the feed"))
      }
    }).pipe(
      Effect.timeoutOrElse({
        duration: hangGuard,
        orElse: () => Effect.die(new Error("the instance did not try the lease twice"))
      })
    )
  } as const
})

const handle = () => Effect.void

/** When a consumer's lease ends, on the database's clock; the lease must be held. */
const expiresAt = (lag: Consumers.Lag): number =>
  Option.getOrThrow(Option.map(lag.leaseExpiresAt, DateTime.toEpochMillis))

describe("Consumer.make", () => {
  it("refuses a name or a setting out of range at once", () => {
    assert.throws(() => Consumer.make({ name: "", registry: EventRegistry.raw, handle }))
    assert.throws(() => Consumer.make({ name: "x".repeat(201), registry: EventRegistry.raw, handle }))
    assert.throws(() => Consumer.make({ name: "a", registry: EventRegistry.raw, handle, batchSize: 0 }))
    assert.throws(() => Consumer.make({ name: "a", registry: EventRegistry.raw, handle, leaseDuration: 0 }))
    const consumer = Consumer.make({ name: "a", registry: EventRegistry.raw, handle, eventTypes: ["a.b"] })
    assert.deepStrictEqual(consumer.filter, { eventTypes: ["a.b"] })
    assert.strictEqual(consumer.delivery, "at-least-once")
  })
})

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`Consumers (${TestDatabase.engine})`, (it) => {
  it.effect("a transactional consumer killed mid-batch rolls the batch back and resumes: nothing lost or doubled", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const handled = yield* handledTable()
      yield* FeedDatabase.appendMany(35)
      const name = `projection-${uuid()}`
      const inSecondBatch = yield* Deferred.make<void>()
      let batches = 0
      const killed = Consumer.make({
        ...quick,
        name,
        delivery: "transactional",
        handle: (batch) =>
          Effect.gen(function* () {
            yield* handled.record(batch.events, "first")
            if (++batches === 2) return yield* Effect.andThen(Deferred.succeed(inSecondBatch, undefined), Effect.never)
          })
      })
      const first = yield* Effect.forkChild(consumers.run(killed))
      yield* Deferred.await(inSecondBatch)
      yield* Fiber.interrupt(first)

      const all = yield* allEvents
      const afterKill = yield* handled.rows
      // The second batch's rows were written, then rolled back with its checkpoint.
      assert.deepStrictEqual(
        afterKill.map((row) => row.event_id),
        all.slice(0, 10).map((event) => event.eventId)
      )
      const stopped = yield* lagOf(name)
      assert.deepStrictEqual(stopped.checkpoint, all[9]!.checkpoint)
      assert.isTrue(Option.isNone(stopped.owner), "an interrupted instance releases its lease")

      const restarted = Consumer.make({
        ...quick,
        name,
        delivery: "transactional",
        handle: (batch) => handled.record(batch.events, "second")
      })
      const second = yield* Effect.forkChild(consumers.run(restarted))
      yield* caughtUp(name)
      yield* Fiber.interrupt(second)
      const rows = yield* handled.rows
      assert.deepStrictEqual(
        rows.map((row) => row.event_id),
        all.map((event) => event.eventId)
      )
      assert.deepStrictEqual([...new Set(rows.map((row) => row.handler))], ["first", "second"])
    })
  )

  it.effect("an at-least-once consumer killed mid-batch gets that batch again, and nothing else twice", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      yield* FeedDatabase.appendMany(25)
      const name = `mailer-${uuid()}`
      const seen: Array<string> = []
      const inSecondBatch = yield* Deferred.make<void>()
      let batches = 0
      const consumer = (kill: boolean) =>
        Consumer.make({
          ...quick,
          name,
          handle: (batch) =>
            Effect.gen(function* () {
              seen.push(...batch.events.map((event) => event.eventId))
              if (kill && ++batches === 2) {
                return yield* Effect.andThen(Deferred.succeed(inSecondBatch, undefined), Effect.never)
              }
            })
        })
      const first = yield* Effect.forkChild(consumers.run(consumer(true)))
      yield* Deferred.await(inSecondBatch)
      yield* Fiber.interrupt(first)
      const second = yield* Effect.forkChild(consumers.run(consumer(false)))
      yield* caughtUp(name)
      yield* Fiber.interrupt(second)

      const all = (yield* allEvents).map((event) => event.eventId)
      // The first instance handled two batches and committed one; the second resumes at the start of the other.
      assert.deepStrictEqual(seen, [...all.slice(0, 20), ...all.slice(10)])
    })
  )

  it.effect("a second instance waits while the first holds the lease, and takes over when it stops", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const handled = yield* handledTable()
      const name = `projection-${uuid()}`
      const instance = (handler: string) =>
        Consumer.make({
          ...quick,
          name,
          delivery: "transactional",
          handle: (batch) => handled.record(batch.events, handler)
        })
      const first = yield* Effect.forkChild(consumers.run(instance("first")))
      yield* FeedDatabase.appendMany(5)
      yield* caughtUp(name)
      const secondAttempts = yield* leaseAttempts()
      const second = yield* Effect.forkChild(secondAttempts.observe(consumers.run(instance("second"))))
      yield* FeedDatabase.appendMany(5)
      yield* caughtUp(name)
      // The second tried the lease since those events were handled, and was refused: they were the first's to handle.
      yield* secondAttempts.refused
      const whileFirstRuns = yield* handled.rows
      assert.deepStrictEqual([...new Set(whileFirstRuns.map((row) => row.handler))], ["first"])
      const holder = (yield* lagOf(name)).owner
      assert.isTrue(Option.isSome(holder))
      // A waiting instance stops when asked, once it has been refused, and leaves the holder's lease alone.
      const thirdAttempts = yield* leaseAttempts()
      const third = yield* Effect.forkChild(thirdAttempts.observe(consumers.run(instance("third"))))
      yield* thirdAttempts.refused
      yield* Fiber.interrupt(third)
      assert.deepStrictEqual((yield* lagOf(name)).owner, holder)

      yield* Fiber.interrupt(first)
      const late = yield* FeedDatabase.appendMany(5)
      yield* caughtUp(name)
      yield* Fiber.interrupt(second)
      const rows = yield* handled.rows
      assert.deepStrictEqual(
        rows.filter((row) => row.handler === "second").map((row) => row.event_id),
        late
      )
      const all = (yield* allEvents).map((event) => event.eventId)
      assert.deepStrictEqual(
        rows.map((row) => row.event_id),
        all
      )
    })
  )

  it.effect("a holder renews its lease while it runs, with nothing to commit", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const name = `renewing-${uuid()}`
      // A short lease, renewed every half second. Alone, the instance keeps it even when a renewal comes late.
      const running = yield* Effect.forkChild(
        consumers.run(Consumer.make({ ...quick, name, leaseDuration: "1500 millis", handle }))
      )
      // Caught up, it commits nothing more: only a renewal moves the lease's end now.
      const renewedFrom = expiresAt(yield* caughtUp(name))
      yield* lagOf(name).pipe(
        Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (lag) => expiresAt(lag) > renewedFrom }),
        Effect.timeoutOrElse({ duration: hangGuard, orElse: () => Effect.die(new Error("the lease was not renewed")) })
      )
      yield* Fiber.interrupt(running)
    })
  )

  it.effect("an instance waits for a dead holder's lease to expire, then goes on from its checkpoint", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const sql = yield* SqlClient.SqlClient
      const leases = sql(`${schema}.events_consumers`)
      const handled = yield* handledTable()
      const name = `projection-${uuid()}`
      const instance = (handler: string) =>
        Consumer.make({
          ...quick,
          name,
          delivery: "transactional",
          handle: (batch) => handled.record(batch.events, handler)
        })
      // The holder handles what there is, then dies holding the lease: what a dead process leaves behind is its
      // checkpoint and a lease nobody renews, here with an hour left to run.
      const holder = yield* Effect.forkChild(consumers.run(instance("holder")))
      yield* FeedDatabase.appendMany(3)
      const { checkpoint } = yield* caughtUp(name)
      yield* Fiber.interrupt(holder)
      yield* sql`UPDATE ${leases} SET owner = 'dead', lease_expires_at = clock_timestamp() + interval '1 hour'
        WHERE name = ${name}`

      const survivorAttempts = yield* leaseAttempts()
      const survivor = yield* Effect.forkChild(survivorAttempts.observe(consumers.run(instance("survivor"))))
      yield* FeedDatabase.appendMany(5)
      yield* FeedDatabase.readable
      // The survivor tried the lease since those events became readable, and was refused: it handled none of them.
      yield* survivorAttempts.refused
      assert.deepStrictEqual(
        (yield* handled.rows).filter((row) => row.handler === "survivor"),
        []
      )
      const waiting = yield* lagOf(name)
      assert.deepStrictEqual(waiting.owner, Option.some("dead"))
      assert.deepStrictEqual(waiting.checkpoint, checkpoint)

      // The dead holder's lease runs out, on the database's clock that leases are measured by.
      yield* sql`UPDATE ${leases} SET lease_expires_at = clock_timestamp() - interval '1 millisecond'
        WHERE name = ${name}`
      yield* caughtUp(name).pipe(
        Effect.timeoutOrElse({
          duration: hangGuard,
          orElse: () => Effect.die(new Error("the survivor did not take over the expired lease"))
        })
      )
      yield* Fiber.interrupt(survivor)
      const all = yield* allEvents
      const rows = yield* handled.rows
      // The survivor went on from the holder's checkpoint: every event once, in order, none skipped.
      assert.deepStrictEqual(
        rows.filter((row) => row.handler === "survivor").map((row) => row.event_id),
        all.filter((event) => Checkpoint.compare(event.checkpoint, checkpoint) > 0).map((event) => event.eventId)
      )
      assert.deepStrictEqual(
        rows.map((row) => row.event_id),
        all.map((event) => event.eventId)
      )
    })
  )

  it.effect("an instance that lost its lease cannot commit: its checkpoint does not move", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const sql = yield* SqlClient.SqlClient
      yield* FeedDatabase.appendMany(3)
      const name = `mailer-${uuid()}`
      const inBatch = yield* Deferred.make<void>()
      const resume = yield* Deferred.make<void>()
      const seen: Array<string> = []
      let batches = 0
      const attempts = yield* leaseAttempts()
      const instance = yield* Effect.forkChild(
        attempts.observe(
          consumers.run(
            Consumer.make({
              ...quick,
              name,
              handle: (batch) =>
                Effect.gen(function* () {
                  seen.push(...batch.events.map((event) => event.eventId))
                  if (++batches === 1) {
                    yield* Effect.andThen(Deferred.succeed(inBatch, undefined), Deferred.await(resume))
                  }
                })
            })
          )
        )
      )
      yield* Deferred.await(inBatch)
      // Another owner takes the lease while the batch is being handled, as after a pause longer than the lease.
      yield* sql`UPDATE ${sql(`${schema}.events_consumers`)}
        SET owner = 'intruder', lease_expires_at = clock_timestamp() + interval '1 hour' WHERE name = ${name}`
      yield* Deferred.succeed(resume, undefined)
      // The instance tries its commit, is refused, and goes back to waiting for the lease: it tries it, in vain.
      // A commit that went through would have moved the checkpoint by then, and sent no instance back to waiting.
      yield* attempts.refused
      const after = yield* lagOf(name)
      assert.deepStrictEqual(after.checkpoint, Checkpoint.start)
      // The intruder goes away; the instance takes the lease back and delivers the batch again.
      yield* sql`UPDATE ${sql(`${schema}.events_consumers`)} SET owner = NULL, lease_expires_at = NULL WHERE name = ${name}`
      yield* caughtUp(name)
      yield* Fiber.interrupt(instance)
      const all = (yield* allEvents).map((event) => event.eventId)
      assert.deepStrictEqual(seen, [...all.slice(0, 10), ...all])
    })
  )

  it.effect("replay rebuilds a projection equal to the live one, reporting progress", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const sql = yield* SqlClient.SqlClient
      const table = `${schema}.names_${uuid().replaceAll("-", "").slice(0, 12)}`
      yield* sql`CREATE TABLE ${sql(table)} (aggregate_id uuid PRIMARY KEY, name text, gst_count integer NOT NULL)`
      const apply = (event: Event.RawEvent): Effect.Effect<unknown, unknown> => {
        switch (event.eventType) {
          case "organization.created": {
            const name = (event.data as { readonly name: string }).name
            return sql`INSERT INTO ${sql(table)} (aggregate_id, name, gst_count) VALUES (${event.aggregateId}::uuid, ${name}, 0)
              ON CONFLICT (aggregate_id) DO UPDATE SET name = excluded.name`
          }
          case "organization.gst.added":
            return sql`INSERT INTO ${sql(table)} (aggregate_id, gst_count) VALUES (${event.aggregateId}::uuid, 1)
              ON CONFLICT (aggregate_id) DO UPDATE SET gst_count = ${sql(table)}.gst_count + 1`
          default:
            return Effect.void
        }
      }
      const store = yield* EventStore
      const orgs = Array.from({ length: 20 }, () => uuid())
      for (const [i, org] of orgs.entries()) {
        yield* store.append([
          FeedDatabase.created(org, `Org ${i}`),
          ...Array.from({ length: i % 4 }, (_, j) => FeedDatabase.gst(org, String(j)))
        ])
      }
      const name = `names-${uuid()}`
      const projection = Consumer.make({
        ...quick,
        name,
        delivery: "transactional",
        handle: (batch) => Effect.forEach(batch.events, apply, { discard: true })
      })
      const live = yield* Effect.forkChild(consumers.run(projection))
      yield* caughtUp(name)
      yield* Fiber.interrupt(live)
      const snapshot = sql<{ readonly aggregate_id: string; readonly name: string | null; readonly gst_count: number }>`
        SELECT aggregate_id, name, gst_count FROM ${sql(table)} ORDER BY aggregate_id`
      const liveRows = yield* snapshot
      assert.isAtLeast(liveRows.length, 20)

      yield* FeedDatabase.readable
      const reports: Array<Consumers.ReplayProgress> = []
      const final = yield* consumers.replay(projection, {
        reset: sql`DELETE FROM ${sql(table)}`,
        onProgress: (progress) => Effect.sync(() => reports.push(progress)),
        // Every batch reports, however fast it runs: more than one report is certain.
        progressInterval: "0 millis"
      })
      assert.deepStrictEqual(yield* snapshot, liveRows)
      const all = yield* allEvents
      assert.strictEqual(final.total, all.length)
      assert.strictEqual(final.processed, all.length)
      assert.strictEqual(final.remaining, 0)
      assert.isTrue(final.done)
      assert.deepStrictEqual(final.checkpoint, all.at(-1)!.checkpoint)
      assert.deepStrictEqual(reports.at(-1), final)
      assert.isAbove(reports.length, 1)
      for (const [previous, next] of reports.slice(1).map((report, i) => [reports[i]!, report] as const)) {
        assert.isAtLeast(Checkpoint.compare(next.checkpoint, previous.checkpoint), 0)
        assert.isAtMost(next.remaining, previous.remaining)
      }
      assert.isAbove(final.eventsPerSecond, 0)
      assert.isTrue(Option.isNone((yield* lagOf(name)).owner), "the replay releases its lease")

      // Without the reset, replaying applies every event a second time: the reset is what makes it a rebuild.
      yield* consumers.replay(projection)
      assert.notDeepEqual(yield* snapshot, liveRows)
    })
  )

  it.effect("lag: events behind each consumer's checkpoint and the age of the oldest", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const name = `lagging-${uuid()}`
      const consumer = Consumer.make({ ...quick, name, handle: () => Effect.void })
      const running = yield* Effect.forkChild(consumers.run(consumer))
      yield* caughtUp(name)
      yield* Fiber.interrupt(running)
      const upToDate = yield* lagOf(name)
      assert.strictEqual(upToDate.eventsBehind, 0)
      assert.isTrue(Option.isNone(upToDate.oldestUnprocessedAge))
      yield* FeedDatabase.appendMany(3)
      const behind = yield* lagOf(name)
      assert.strictEqual(behind.eventsBehind, 3)
      assert.isTrue(Option.isSome(behind.oldestUnprocessedAge))
      assert.isTrue(Option.isNone(behind.owner))
      const names = (yield* consumers.lag).map((lag) => lag.name)
      assert.deepStrictEqual(names, names.toSorted())
    })
  )

  it.effect.runIf(postgres)(
    "a consumer process killed mid-batch is taken over by a waiting instance: nothing lost, nothing doubled",
    () =>
      Effect.gen(function* () {
        const consumers = yield* Consumers.Consumers
        const sql = yield* SqlClient.SqlClient
        const table = `${schema}.handled`
        yield* sql`CREATE TABLE ${sql(table)} (seq bigserial PRIMARY KEY, event_id uuid NOT NULL, handler text NOT NULL)`
        yield* FeedDatabase.appendMany(150)
        const name = `process-${uuid()}`
        const script = fileURLToPath(new URL("./support/consumerProcess.ts", import.meta.url))
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [script, TestDatabase.postgresUrl, schema, name], { stdio: "ignore" })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        const byChild = sql<{ readonly count: string }>`SELECT count(*)::text AS count FROM ${sql(table)}
          WHERE handler LIKE 'child-%'`
        yield* byChild.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (rows) => Number(rows[0]!.count) >= 20 })
        )
        // The second instance, in this process, with the same name and settings: it must wait.
        const attempts = yield* leaseAttempts()
        const waiting = yield* Effect.forkChild(
          attempts.observe(
            consumers.run(
              Consumer.make({
                name,
                registry: EventRegistry.raw,
                delivery: "transactional",
                batchSize: 5,
                pollInterval: "100 millis",
                leaseDuration: "2 seconds",
                acquireInterval: "100 millis",
                handle: (batch) =>
                  Effect.forEach(
                    batch.events,
                    (event) =>
                      sql`INSERT INTO ${sql(table)} (event_id, handler) VALUES (${event.eventId}::uuid, 'parent')`,
                    { discard: true }
                  )
              })
            )
          )
        )
        const before = yield* byChild
        yield* byChild.pipe(
          Effect.repeat({
            schedule: Schedule.spaced("20 millis"),
            until: (rows) => Number(rows[0]!.count) >= Number(before[0]!.count) + 10
          })
        )
        // While the child went on handling events, the parent tried the lease, and was refused.
        yield* attempts.refused
        const whileChildRuns = yield* sql<{ readonly count: string }>`SELECT count(*)::text AS count FROM ${sql(table)}
          WHERE handler = 'parent'`
        assert.strictEqual(whileChildRuns[0]!.count, "0")

        // Once the child is dead, its lease is expired on the database's clock: the takeover does not wait for it to
        // run out, however long the child's lease.
        const exited = Effect.callback<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) resume(Effect.void)
          else child.once("exit", () => resume(Effect.void))
        })
        child.kill("SIGKILL")
        yield* exited
        yield* sql`UPDATE ${sql(`${schema}.events_consumers`)}
          SET lease_expires_at = clock_timestamp() - interval '1 millisecond' WHERE name = ${name} AND owner IS NOT NULL`
        yield* caughtUp(name)
        yield* Fiber.interrupt(waiting)
        const rows = yield* sql<{ readonly event_id: string; readonly handler: string }>`SELECT event_id, handler
          FROM ${sql(table)} ORDER BY seq`
        const all = (yield* allEvents).map((event) => event.eventId)
        assert.deepStrictEqual(
          rows.map((row) => row.event_id),
          all
        )
        const handlers = rows.map((row) => (row.handler === "parent" ? "parent" : "child"))
        // The child handled a prefix, the parent the rest: one took over from the other, once.
        assert.strictEqual(handlers.indexOf("parent"), handlers.lastIndexOf("child") + 1)
        assert.isAbove(handlers.indexOf("parent"), 0)
      }),
    60_000
  )
})
