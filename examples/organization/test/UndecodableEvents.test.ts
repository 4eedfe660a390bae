/**
 * Rows the app's registry cannot decode, planted in the test's own database as its superuser would (one of a type no
 * module registers, one whose payload its schema refuses): the audit API's lists, a user's activity, an entity's
 * history and the live event stream still answer, each sending those events as stored, flagged `decoded: false`
 * with the reason, and every other event decoded as before.
 */
import { Checkpoint } from "@annal/core"
import { AuditApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as http from "node:http"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")

const Created = Schema.Struct({ id: Schema.String })
const page = TestApp.decode(AuditApi.EventPage)

/** Plants one event row, as a writer that bypasses the app would; returns its id. */
const plant = (row: {
  readonly eventType: string
  readonly aggregateType: string
  readonly aggregateId: string
  readonly streamVersion: number
  readonly data: unknown
}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const id = crypto.randomUUID()
    yield* sql`INSERT INTO events (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
        metadata, stream_version)
      VALUES (${id}, ${row.eventType}, ${row.aggregateId}, ${row.aggregateType}, ${alice.userId}, now(), 1,
        ${JSON.stringify(row.data)}::jsonb, '{}'::jsonb, ${row.streamVersion})`
    return id
  }).pipe(Effect.orDie)

/**
 * Reads the event stream from its start as the auditor until the event `untilId` has arrived; the text read so far.
 * The bound keeps a stream that ends or stalls from hanging the test; it measures nothing.
 */
const streamUntil = (untilId: string) =>
  Effect.gen(function* () {
    const base = yield* TestApp.baseUrl
    const from = encodeURIComponent(Checkpoint.encode(Checkpoint.start))
    return yield* Effect.callback<string>((resume) => {
      let text = ""
      const request = http.get(
        `${base}/events/stream?lastEventId=${from}`,
        { headers: { authorization: `Bearer ${DemoUsers.user("dana").token}` }, agent: false },
        (response) => {
          response.setEncoding("utf8")
          response.on("data", (chunk: string) => {
            text += chunk
            if (text.includes(untilId)) {
              request.destroy()
              resume(Effect.succeed(text))
            }
          })
          response.on("end", () => resume(Effect.die(new Error(`the stream ended: ${text}`))))
        }
      )
      request.on("error", (error) => resume(Effect.die(error)))
      return Effect.sync(() => request.destroy())
    }).pipe(Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die(new Error("no event came")) }))
  })

/** The events of a stream's text, by id. */
const streamedEvents = (text: string): ReadonlyMap<string, Record<string, unknown>> =>
  new Map(
    text
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => JSON.parse(line.slice("data: ".length)) as Record<string, unknown>)
      .map((event) => [String(event["eventId"]), event] as const)
  )

layer(TestApp.layer, TestApp.layerOptions)("events the registry cannot decode", (it) => {
  it.effect("are sent as stored and flagged, and every page and the stream still answer", () =>
    Effect.gen(function* () {
      const created = yield* TestApp.request("POST", "/organizations", {
        as: "alice",
        body: { name: "Ghost Traders", type: "llp", email: "a@ghost.example", pan: "AAGFG1234G" }
      })
      assert.strictEqual(created.status, 201, created.text)
      const organizationId = TestApp.decode(Created)(created.body).id
      // A type no module registers, on an aggregate of its own; and a payload organization.updated refuses.
      const ghostId = yield* plant({
        eventType: "ghost.appeared",
        aggregateType: "ghost",
        aggregateId: crypto.randomUUID(),
        streamVersion: 1,
        data: { boo: true }
      })
      const badId = yield* plant({
        eventType: "organization.updated",
        aggregateType: "organization",
        aggregateId: organizationId,
        streamVersion: 2,
        data: { changes: 42 }
      })

      const reads = [
        ["alice", `/audit/users/${alice.userId}/activity`],
        ["alice", `/audit/aggregates/organization/${organizationId}`],
        ["dana", "/audit/events"],
        ["dana", "/audit/events?order=desc"],
        ["dana", "/audit/changes/recent"]
      ] as const
      for (const [as, path] of reads) {
        const response = yield* TestApp.request("GET", path, { as })
        assert.strictEqual(response.status, 200, `${path}: ${response.text}`)
        const { events } = page(response.body)
        const bad = events.find((event) => event.eventId === badId)
        assert.isDefined(bad, path)
        assert.strictEqual(bad!.decoded, false)
        assert.include(bad!.decodeError ?? "", "changes")
        assert.deepStrictEqual(bad!.data, { changes: 42 })
        // The good event beside it is decoded as ever, and carries no flag.
        const good = events.find((event) => event.eventId !== badId && event.eventType === "organization.created")
        assert.isDefined(good, path)
        assert.isUndefined(good!.decoded)
        assert.isUndefined(good!.decodeError)
        if (path.includes("organization/")) continue
        const ghost = events.find((event) => event.eventId === ghostId)
        assert.isDefined(ghost, path)
        assert.strictEqual(ghost!.decoded, false)
        assert.include(ghost!.decodeError ?? "", "not registered")
        assert.deepStrictEqual(ghost!.data, { boo: true })
        assert.strictEqual(ghost!.version, 1)
      }

      // The live stream sends them too, flagged, and goes on past them.
      const streamed = streamedEvents(yield* streamUntil(badId))
      assert.strictEqual(streamed.get(ghostId)?.["decoded"], false)
      assert.strictEqual(streamed.get(badId)?.["decoded"], false)
      assert.deepStrictEqual(streamed.get(ghostId)?.["data"], { boo: true })
      const createdEvent = [...streamed.values()].find((event) => event["aggregateId"] === organizationId)
      assert.strictEqual(createdEvent?.["eventType"], "organization.created")
      assert.notProperty(createdEvent, "decoded")
    })
  )
})
