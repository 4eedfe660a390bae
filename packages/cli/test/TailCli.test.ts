import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { EventStore } from "@annal/core"
import { created, gst } from "../../core/test/support/FeedDatabase.ts"
import { uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as CliDatabase from "./support/CliDatabase.ts"
import { run } from "./support/runCli.ts"

const lines = (text: string) => text.split("\n").filter((line) => line !== "")

describe(`annal tail (${TestDatabase.engine})`, () => {
  it("prints the events in feed order, filtered like the audit API, as lines or NDJSON", async () => {
    const database = await CliDatabase.make()
    const [first, second] = [uuid(), uuid()]
    try {
      const appended = await database.use(
        Effect.gen(function* () {
          const store = yield* EventStore.EventStore
          const one = yield* store.append([created(first, "Acme"), gst(first)])
          const two = yield* store.append([created(second, "Globex")])
          return [...one, ...two]
        })
      )
      const all = await run(["tail", ...database.flags, "--after", "start", "--no-follow", "--json"])
      assert.strictEqual(all.code, 0, all.stderr)
      const events = lines(all.stdout).map((line) => JSON.parse(line))
      assert.deepStrictEqual(
        events.map((event) => event.eventId),
        appended.map((event) => event.eventId)
      )
      assert.deepStrictEqual(Object.keys(events[0]), [
        "checkpoint",
        "eventId",
        "eventType",
        "version",
        "aggregateType",
        "aggregateId",
        "streamVersion",
        "userId",
        "timestamp",
        "recordedAt",
        "globalPosition",
        "data",
        "metadata"
      ])
      assert.deepStrictEqual(
        [events[0].eventType, events[0].data.name, typeof events[0].globalPosition],
        ["organization.created", "Acme", "number"]
      )
      assert.strictEqual(new Date(events[0].timestamp).toISOString(), events[0].timestamp)
      // NDJSON only on stdout: the banner is not printed with --json.
      assert.strictEqual(all.stderr, "")

      // Resuming after the first event's checkpoint gives the rest.
      const rest = await run(["tail", ...database.flags, "--after", events[0].checkpoint, "--no-follow", "--json"])
      assert.deepStrictEqual(
        lines(rest.stdout).map((line) => JSON.parse(line).eventId),
        appended.slice(1).map((event) => event.eventId)
      )

      const typed = await run([
        "tail",
        ...database.flags,
        "--after",
        "start",
        "--no-follow",
        "--event-type",
        "organization.gst.added"
      ])
      assert.strictEqual(typed.code, 0, typed.stderr)
      assert.lengthOf(lines(typed.stdout), 1)
      assert.match(
        typed.stdout,
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  organization.gst.added v1  organization/${first} #2  user [0-9a-f-]{36}  \\{"gstin":"29A","state":"KA"\\}\\n$`
        )
      )
      assert.include(typed.stderr, `Reading ${database.schema}.events after the start`)

      const entity = await run(["tail", ...database.flags, "--after", "start", "--no-follow", "--aggregate-id", second])
      assert.deepStrictEqual(
        lines(entity.stdout).map((line) => line.includes(`organization/${second} #1`)),
        [true]
      )

      const bad = await run(["tail", ...database.flags, "--no-follow", "--user-id", "not-a-uuid"])
      assert.strictEqual(bad.code, 1)
      assert.include(bad.stdout + bad.stderr, "@annal/core/InvalidQuery: Invalid query: userId: must be a UUID")
      // The old spelling is refused, not ignored: a filter dropped silently would print every event.
      const old = await run(["tail", ...database.flags, "--no-follow", "--type", "organization.gst.added"])
      assert.notStrictEqual(old.code, 0, old.stdout + old.stderr)
    } finally {
      await database.remove()
    }
  }, 600_000)
})

// PGlite's folder is opened by one process at a time: a following tail holds it, and nothing else can append.
describe.skipIf(TestDatabase.engine !== "postgres")("annal tail, following", () => {
  it("prints an event that commits while it follows", async () => {
    const database = await CliDatabase.make()
    const org = uuid()
    try {
      const [before] = await database.use(EventStore.EventStore.use((store) => store.append([created(org)])))
      const seed = await run(["tail", ...database.flags, "--after", "start", "--no-follow", "--json"])
      const cursor = JSON.parse(lines(seed.stdout)[0]!).checkpoint
      // From the seeded event's checkpoint, not the head: what it prints does not depend on when it started.
      const child = spawn(
        process.execPath,
        [
          "--conditions=@annal/source",
          join(import.meta.dirname, "../src/bin.ts"),
          "tail",
          ...database.flags,
          "--after",
          cursor,
          "--json"
        ],
        { env: { ...process.env, DATABASE_URL: "" } }
      )
      const received = new Promise<string>((resolve) => {
        let output = ""
        child.stdout.on("data", (chunk: Buffer) => {
          output += chunk.toString()
          if (output.includes("\n")) resolve(output)
        })
      })
      try {
        const [after] = await database.use(EventStore.EventStore.use((store) => store.append([gst(org)])))
        const line = JSON.parse(lines(await received)[0]!)
        assert.deepStrictEqual([line.eventId, line.eventType], [after!.eventId, "organization.gst.added"])
        assert.notStrictEqual(line.eventId, before!.eventId)
      } finally {
        child.kill()
      }
    } finally {
      await database.remove()
    }
  }, 120_000)
})
