/**
 * Process killed: a writer in a child process (`support/WriterProcess.ts`) records orders, each a business row and
 * its events written with `emitMany` in one `sql.withTransaction`, and is SIGKILLed 50 times (two writers at a time)
 * at random points: 0 to 3 ms after the n-th time it says it is about to emit, or after its n-th acknowledgement.
 * Once the server has dropped each killed session, the tables must hold no partial batch, a business row exactly
 * where its events are, and every order the writer was told is stored.
 *
 * At least one kill must have landed while a transaction was open, or the run proved nothing about rollback: an
 * order the writer said it was emitting (it says so inside the transaction) whose business row is absent once its
 * session is gone. The test kills on, up to 50 more times, until one has.
 *
 * The checker is shown to catch a writer that commits the business row and then emits its events one by one outside
 * the transaction, and one that acknowledges once its business row is written, before its events and the commit.
 * Those are killed one at a time, and the tables checked after every kill, until the fault shows.
 */
import { NodeServices } from "@effect/platform-node"
import { describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ChildProcess from "effect/process/ChildProcess"
import * as ChildProcessSpawner from "effect/process/ChildProcessSpawner"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { expectCaught, expectNone, Failures } from "./support/Battery.ts"
import { type Mode, OrderLineAdded, ordersTable } from "./support/Orders.ts"
import * as Stores from "./support/Stores.ts"

const writerPath = fileURLToPath(new URL("./support/WriterProcess.ts", import.meta.url))
const compileCache = join(tmpdir(), "annal-reliability-compile-cache")

/** What the test saw of one writer before it killed it. */
interface Killed {
  readonly acknowledged: ReadonlyArray<string>
  /** The order the writer was emitting when it died, if it had not been acknowledged. */
  readonly inFlight: string | undefined
}

/**
 * Starts a writer, kills it with SIGKILL at a random point, and waits until the server has dropped its session, so
 * that a transaction it left open is rolled back (or its commit finished) before anyone checks the tables.
 */
const killOnce = (schema: string, mode: Mode, lane = 0, atEmitting = false) =>
  Effect.gen(function* () {
    const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
    const sql = yield* SqlClient.SqlClient
    const application = `annal-killed-${lane}-${schema}`
    const trigger = {
      word: atEmitting || (yield* Random.nextBoolean) ? "emitting" : "ack",
      count: yield* Random.nextIntBetween(1, 8),
      delayMillis: atEmitting ? 0 : yield* Random.nextIntBetween(0, 3)
    }
    const handle = yield* spawner.spawn(
      ChildProcess.make(process.execPath, [writerPath], {
        env: {
          ANNAL_WRITER_URL: Stores.postgresUrl,
          ANNAL_WRITER_SCHEMA: schema,
          ANNAL_WRITER_MODE: mode,
          ANNAL_WRITER_APPLICATION: application,
          // Fifty writers load the same modules: Node's on-disk compile cache halves each one's start.
          NODE_COMPILE_CACHE: compileCache
        },
        extendEnv: true
      })
    )
    const fired = yield* Deferred.make<void>()
    const acknowledged: Array<string> = []
    let emitting: string | undefined
    let seen = 0
    const reader = yield* handle.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.runForEach((line) => {
        const [word, id] = line.split(" ")
        if (word === "ack" && id !== undefined) acknowledged.push(id)
        if (word === "emitting") emitting = id
        return word === trigger.word && ++seen === trigger.count ? Deferred.succeed(fired, undefined) : Effect.void
      }),
      Effect.forkScoped
    )
    const stderr = yield* Effect.forkScoped(Stream.mkString(Stream.decodeText(handle.stderr)))
    // The writer runs until it is killed; if its output ends first, it died on its own and the test is broken.
    const triggered = yield* Effect.raceFirst(
      Effect.as(Deferred.await(fired), true),
      Effect.as(Fiber.join(reader), false)
    )
    if (!triggered) return yield* Effect.die(new Error(`the writer exited on its own: ${yield* Fiber.join(stderr)}`))
    yield* Effect.sleep(trigger.delayMillis)
    yield* handle.kill({ killSignal: "SIGKILL" })
    // Everything it printed before it died is still in the pipe.
    yield* Fiber.join(reader)
    for (let polls = 0; ; polls++) {
      const [sessions] = yield* sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM pg_stat_activity
        WHERE application_name = ${application}`.withoutTransform
      if (sessions?.count === 0) break
      if (polls === 3_000) return yield* Effect.die(new Error("the server kept the killed writer's session"))
      yield* Effect.sleep("10 millis")
    }
    const last = emitting
    return { acknowledged, inFlight: last !== undefined && !acknowledged.includes(last) ? last : undefined }
  }).pipe(Effect.scoped)

const Orders = Schema.Array(Schema.Struct({ id: Schema.String, lines: Schema.Int }))
const Line = Schema.decodeUnknownSync(OrderLineAdded.schema)

/** Checks the tables against everything the writers were told. */
const check = (schema: string, killed: ReadonlyArray<Killed>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const failures = new Failures()
    const orders = new Map(
      (yield* Schema.decodeUnknownEffect(Orders)(
        yield* sql`SELECT id::text AS id, lines FROM ${sql(ordersTable(schema))}`.withoutTransform
      ).pipe(Effect.orDie)).map((order) => [order.id, order.lines])
    )
    const events = new Map<string, Array<{ readonly version: number; readonly line: number; readonly lines: number }>>()
    for (const row of yield* Stores.storedRows(schema)) {
      const line = Line(row.data)
      const list = events.get(row.aggregate_id) ?? []
      list.push({ version: row.stream_version, line: line.line, lines: line.lines })
      events.set(row.aggregate_id, list)
    }
    const complete = (id: string, lines: number): boolean => {
      const stored = events.get(id) ?? []
      const versions = stored.map((event) => event.version).toSorted((a, b) => a - b)
      const numbered = stored.map((event) => event.line).toSorted((a, b) => a - b)
      return (
        stored.length === lines &&
        versions.every((version, index) => version === index + 1) &&
        numbered.every((line, index) => line === index) &&
        stored.every((event) => event.lines === lines)
      )
    }
    for (const [id, lines] of orders) {
      if (!events.has(id)) failures.add("business row without its events", id)
      else if (!complete(id, lines)) failures.add("partial batch", `${id}: ${events.get(id)!.length} of ${lines}`)
    }
    for (const [id, stored] of events) {
      if (orders.has(id)) continue
      failures.add("events without their business row", `${id}: ${stored.length} events`)
      if (stored.length !== stored[0]!.lines)
        failures.add("partial batch", `${id}: ${stored.length} of ${stored[0]!.lines}`)
    }
    let acknowledged = 0
    for (const kill of killed) {
      for (const id of kill.acknowledged) {
        acknowledged++
        const lines = orders.get(id)
        if (lines === undefined || !complete(id, lines)) failures.add("acknowledged order missing", id)
      }
    }
    const inFlight = killed.flatMap((kill) => (kill.inFlight === undefined ? [] : [kill.inFlight]))
    const committed = inFlight.filter((id) => orders.has(id)).length
    // Said inside the transaction and never committed: the kill landed while it was open, and it was rolled back.
    // The same read finds every acknowledged order, and the killed session is gone, so no commit can come later.
    const rolledBack = inFlight.length - committed
    return {
      failures,
      rolledBack,
      note: [
        `${acknowledged} orders acknowledged`,
        `killed mid-order ${inFlight.length} times: ${committed} committed unacknowledged`,
        `${rolledBack} killed mid-transaction and rolled back`
      ].join(", ")
    }
  })

const withOrders = <A, E>(
  f: (schema: string) => Effect.Effect<A, E, SqlClient.SqlClient | ChildProcessSpawner.ChildProcessSpawner>
) => {
  const schema = Stores.uniqueSchema()
  return Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE ${sql(ordersTable(schema))} (id uuid PRIMARY KEY, lines integer NOT NULL)`
    return yield* f(schema)
  }).pipe(Effect.provide(Layer.merge(Stores.layer(schema, Stores.postgres({ maxConnections: 3 })), NodeServices.layer)))
}

/** Kills a broken writer until the checker reports every kind in `kinds`, or `maxKills` times. */
const killUntilCaught = (schema: string, mode: Mode, kinds: ReadonlyArray<string>, maxKills: number) =>
  Effect.gen(function* () {
    const killed: Array<Killed> = []
    while (true) {
      killed.push(yield* killOnce(schema, mode))
      const { failures } = yield* check(schema, killed)
      if (killed.length === maxKills || kinds.every((kind) => failures.count(kind) > 0)) {
        return { failures, kills: killed.length }
      }
    }
  })

describe("reliability: process killed", () => {
  it.live("a writer SIGKILLed 50 times during emitMany with a business write, at least once mid-transaction", (ctx) =>
    withOrders((schema) =>
      Effect.gen(function* () {
        // Two writers at a time, 25 kills each: most of a kill's time is a Node process starting, which uses one core.
        const killed: Array<Killed> = []
        yield* Effect.forEach(
          [0, 1],
          (lane) =>
            Effect.gen(function* () {
              for (let kill = 0; kill < 25; kill++) killed.push(yield* killOnce(schema, "transaction", lane))
            }),
          { concurrency: 2, discard: true }
        )
        let checked = yield* check(schema, killed)
        // Most kills at "emitting" land inside the transaction, but a run where none did would pass without having
        // tested a rollback: more kills, right at "emitting", a bounded number of times, until one has.
        for (let more = 0; checked.rolledBack === 0 && more < 50; more++) {
          killed.push(yield* killOnce(schema, "transaction", 0, true))
          checked = yield* check(schema, killed)
        }
        const { failures, rolledBack, note } = checked
        if (rolledBack === 0) failures.add("no kill landed mid-transaction", `in ${killed.length} kills`)
        yield* expectNone(ctx, killed.length, failures, note)
      })
    )
  )

  it.live("broken variant caught: a writer that emits outside the business transaction", (ctx) =>
    withOrders((schema) =>
      Effect.gen(function* () {
        const kinds = ["business row without its events", "partial batch"]
        const { failures, kills } = yield* killUntilCaught(schema, "outside", kinds, 50)
        yield* expectCaught(ctx, kills, failures, kinds)
      })
    )
  )

  it.live("broken variant caught: a writer that acknowledges before its events and the commit", (ctx) =>
    withOrders((schema) =>
      Effect.gen(function* () {
        const kinds = ["acknowledged order missing"]
        const { failures, kills } = yield* killUntilCaught(schema, "early-ack", kinds, 50)
        yield* expectCaught(ctx, kills, failures, kinds)
      })
    )
  )
})
