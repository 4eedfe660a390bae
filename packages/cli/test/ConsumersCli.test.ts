import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Consumer, Consumers, EventStore } from "@annal/core"
import { caughtUp, created, gst } from "../../core/test/support/FeedDatabase.ts"
import { OrganizationEvents, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

/** Three events in two commits, and a consumer that handled them and stopped. */
const seeded = async () => {
  const database = await CliDatabase.make()
  const org = uuid()
  await database.use(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      yield* store.append([created(org), gst(org)])
      yield* store.append([gst(org, "30B")])
      const consumers = yield* Consumers.Consumers
      const fiber = yield* Effect.forkChild(
        consumers.run(Consumer.make({ name: "projector", registry: OrganizationEvents, handle: () => Effect.void }))
      )
      yield* caughtUp(database.schema, "projector")
      yield* Fiber.interrupt(fiber)
    })
  )
  return database
}

describe(`annal consumers (${TestDatabase.engine})`, () => {
  it("lists the consumers, and resets one to the start, a checkpoint or a time, as text and JSON", async () => {
    const database = await seeded()
    try {
      const listed = await run(["consumers", ...database.flags])
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.match(listed.stdout, /^NAME {7}CHECKPOINT {12}BEHIND  OLDEST  LEASE OWNER  MOVED\n/)
      assert.match(listed.stdout, /\nprojector  commit 2, position \d+ +0  - +- +[\d.]+ (ms|s)\n$/)
      const json = JSON.parse((await run(["consumers", ...database.flags, "--json"])).stdout)
      assert.deepStrictEqual(
        [json.length, json[0].name, json[0].eventsBehind, json[0].owner, json[0].checkpoint.commitSequence],
        [1, "projector", 0, null, 2]
      )

      const toStart = await run(["consumers", "reset", "projector", "--to", "start", ...database.flags])
      assert.strictEqual(toStart.code, 0, toStart.stderr)
      assert.match(toStart.stdout, /^Reset projector to the start \(it was at commit 2, position \d+\)\.\n/)
      assert.include(toStart.stdout, "No instance held its lease")
      const behind = JSON.parse((await run(["consumers", ...database.flags, "--json"])).stdout)
      assert.strictEqual(behind[0].eventsBehind, 3)

      // Back to where it was, by the cursor the JSON gave.
      const back = await run([
        "consumers",
        "reset",
        "projector",
        "--to",
        json[0].checkpoint.cursor,
        "--json",
        ...database.flags
      ])
      const moved = JSON.parse(back.stdout)
      assert.deepStrictEqual(Object.keys(moved), ["consumer", "from", "to", "revokedOwner"])
      assert.deepStrictEqual([moved.from.commitSequence, moved.to, moved.revokedOwner], [0, json[0].checkpoint, null])

      // A time: before the first commit is the start; after the last, every commit.
      const early = await run([
        "consumers",
        "reset",
        "projector",
        "--to",
        "2000-01-01T00:00:00Z",
        "--json",
        ...database.flags
      ])
      assert.strictEqual(JSON.parse(early.stdout).to.commitSequence, 0, early.stderr)
      const late = await run([
        "consumers",
        "reset",
        "projector",
        "--to",
        "2999-01-01T00:00:00Z",
        "--json",
        ...database.flags
      ])
      assert.deepStrictEqual(JSON.parse(late.stdout).to, json[0].checkpoint)

      const unknown = await run(["consumers", "reset", "nobody", "--to", "start", ...database.flags])
      assert.strictEqual(unknown.code, 1)
      assert.include(unknown.stderr, '@annal/core/UnknownConsumer: No consumer named "nobody" has run')
      const badTime = await run(["consumers", "reset", "projector", "--to", "2026-13-45", ...database.flags])
      assert.strictEqual(badTime.code, 1)
      assert.include(badTime.stderr, "is not an ISO 8601 time")

      const noWait = await run(["consumers", "replay", "projector", "--no-wait", "--json", ...database.flags])
      const replay = JSON.parse(noWait.stdout)
      assert.deepStrictEqual([replay.done, replay.events, replay.checkpoint.commitSequence], [false, 3, 0])
    } finally {
      await database.remove()
    }
    // A dozen runs of the CLI, each of which opens the PGlite folder afresh: seconds each on a loaded machine.
  }, 600_000)
})

// The replay is done by the running consumer; on PGlite no other process can run it while the CLI has the folder.
describe.skipIf(TestDatabase.engine !== "postgres")("annal consumers replay", () => {
  it("moves a running consumer to the start and follows it through the log again, with progress on stderr", async () => {
    const database = await seeded()
    try {
      const handled = await database.use(
        Effect.gen(function* () {
          let count = 0
          const consumers = yield* Consumers.Consumers
          const fiber = yield* Effect.forkChild(
            consumers.run(
              Consumer.make({
                name: "projector",
                registry: OrganizationEvents,
                leaseDuration: "1500 millis",
                handle: (batch) => Effect.sync(() => (count += batch.events.length))
              })
            )
          )
          yield* caughtUp(database.schema, "projector")
          const replayed = yield* Effect.promise(() =>
            run(["consumers", "replay", "projector", "--json", ...database.flags])
          )
          yield* Fiber.interrupt(fiber)
          return { count, replayed }
        })
      )
      assert.strictEqual(handled.replayed.code, 0, handled.replayed.stderr)
      const report = JSON.parse(handled.replayed.stdout)
      assert.deepStrictEqual(Object.keys(report), [
        "consumer",
        "from",
        "target",
        "checkpoint",
        "events",
        "done",
        "elapsedMs"
      ])
      assert.deepStrictEqual([report.done, report.events, report.from.commitSequence], [true, 3, 2])
      // Not a terminal: plain progress lines, the last at 100%.
      assert.match(handled.replayed.stderr, /Replaying projector: 3 of 3 events \(100%\)/)
      assert.notInclude(handled.replayed.stderr, "\r")
      // The seeded run's handler is another; this one saw nothing before the reset (it resumed at the head), then
      // all three again.
      assert.strictEqual(handled.count, 3)
    } finally {
      await database.remove()
    }
  }, 120_000)
})
