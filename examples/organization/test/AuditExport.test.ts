/**
 * The audit export over real HTTP, on the engine of the test project: the CSV and NDJSON files parsed back and
 * compared with the events `/audit/events` answers, with data holding commas, quotes, newlines and non-ASCII text;
 * `/audit/events`' access rule; undecodable rows exported as stored, flagged; and the auditor's export recorded as one
 * `audit.read` with its filters and count, also when the client leaves midway.
 */
import { Export } from "@annal/core"
import { AuditApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Csv from "effect/encoding/Csv"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as http from "node:http"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")
const dana = DemoUsers.user("dana")

const Created = Schema.Struct({ id: Schema.String })
const page = TestApp.decode(AuditApi.EventPage)

let panCounter = 7000
const freshPan = () => `TESTX${String(panCounter++).padStart(4, "0")}Z`

/** An organization with awkward text, changed once: two events. */
const createOrganization = (name: string) =>
  Effect.gen(function* () {
    const input = { name, type: "private_limited", email: "books@example.in", pan: freshPan() }
    const response = yield* TestApp.request("POST", "/organizations", { as: "alice", body: input })
    assert.strictEqual(response.status, 201, response.text)
    const id = TestApp.decode(Created)(response.body).id
    const update = yield* TestApp.request("PATCH", `/organizations/${id}`, {
      as: "alice",
      body: { name: `${name} (renamed, "again")`, phone: "+91-2212345678" }
    })
    assert.strictEqual(update.status, 200, update.text)
    return id
  })

/** The events' JSON as `/audit/events` answers it, for one aggregate. */
const eventsOf = (id: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("GET", `/audit/events?aggregateType=organization&aggregateId=${id}`, {
      as: "alice"
    })
    assert.strictEqual(response.status, 200, response.text)
    return (response.body as { readonly events: ReadonlyArray<Record<string, unknown>> }).events
  })

const parseCsv = (text: string) =>
  Stream.make(text).pipe(
    Stream.pipeThroughChannel(Csv.decodeString({ headers: true })),
    Stream.runCollect,
    Effect.map((rows) => rows as ReadonlyArray<Record<string, string>>),
    Effect.orDie
  )

const parseNdjson = (text: string): ReadonlyArray<unknown> => {
  assert.isTrue(text.endsWith("\n"), "every line ends")
  return text
    .slice(0, -1)
    .split("\n")
    .map((line) => JSON.parse(line) as unknown)
}

/** The auditor's latest `audit.read` records of the export. */
const exportReads = Effect.gen(function* () {
  const response = yield* TestApp.request(
    "GET",
    `/audit/events?eventType=audit.read&aggregateType=audit&aggregateId=${dana.userId}&order=desc&limit=500`,
    { as: "dana" }
  )
  assert.strictEqual(response.status, 200, response.text)
  return page(response.body)
    .events.map((event) => event.data as { endpoint: string; parameters: Record<string, unknown>; returned: number })
    .filter((data) => data.endpoint === "export")
})

/** Plants `count` rows of one aggregate that the app's registry cannot decode (a type nobody registers). */
const plant = (aggregateId: string, count: number, data: unknown) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO events (id, event_type, aggregate_id, aggregate_type, user_id, "timestamp", version, data,
        metadata, stream_version)
      SELECT gen_random_uuid(), 'ghost.appeared', ${aggregateId}, 'ghost', ${alice.userId}, now(), 1,
        ${JSON.stringify(data)}::jsonb, '{}'::jsonb, n
      FROM generate_series(1, ${count}) AS n`
  }).pipe(Effect.orDie)

layer(TestApp.layer, TestApp.layerOptions)("the audit export", (it) => {
  it.effect("CSV: one row per event, parsed back equal to the events, awkward text and all", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization('Ganga "Agro", Exports\nमुंबई 🐘')
      const events = yield* eventsOf(id)
      assert.strictEqual(events.length, 2)
      const response = yield* TestApp.request(
        "GET",
        `/audit/export?aggregateType=organization&aggregateId=${id}&format=csv`,
        { as: "alice" }
      )
      assert.strictEqual(response.status, 200, response.text)
      assert.strictEqual(TestApp.header(response, "content-type"), "text/csv; charset=utf-8")
      assert.match(
        TestApp.header(response, "content-disposition") ?? "",
        /^attachment; filename="annal-export-\d{8}T\d{6}Z\.csv"$/
      )
      assert.isTrue(response.text.startsWith(`${Export.columns.join(",")}\r\n`))
      const rows = yield* parseCsv(response.text)
      assert.deepStrictEqual(
        rows.map((row) => ({
          eventId: row["eventId"],
          eventType: row["eventType"],
          aggregateType: row["aggregateType"],
          aggregateId: row["aggregateId"],
          userId: row["userId"],
          timestamp: row["timestamp"],
          version: Number(row["version"]),
          data: JSON.parse(row["data"]!) as unknown,
          metadata: JSON.parse(row["metadata"]!) as unknown,
          streamVersion: Number(row["streamVersion"]),
          globalPosition: row["globalPosition"],
          transactionId: row["transactionId"],
          recordedAt: row["recordedAt"]
        })),
        events
      )
      assert.deepStrictEqual(
        rows.map((row) => [row["decoded"], row["decodeError"], row["correlationId"]]),
        events.map((event) => ["true", "", (event["metadata"] as { correlationId: string }).correlationId])
      )
      // The awkward text went through the CSV quoting as it was.
      assert.strictEqual((JSON.parse(rows[0]!["data"]!) as { name: string }).name, 'Ganga "Agro", Exports\nमुंबई 🐘')
    })
  )

  it.effect("NDJSON: one line per event, each the audit API's JSON of it", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization('Kaveri, "Silks"\r\nதமிழ்')
      const events = yield* eventsOf(id)
      const response = yield* TestApp.request(
        "GET",
        `/audit/export?aggregateType=organization&aggregateId=${id}&format=ndjson`,
        { as: "alice" }
      )
      assert.strictEqual(response.status, 200, response.text)
      assert.strictEqual(TestApp.header(response, "content-type"), "application/x-ndjson; charset=utf-8")
      assert.match(TestApp.header(response, "content-disposition") ?? "", /filename="annal-export-.*\.ndjson"$/)
      assert.deepStrictEqual(parseNdjson(response.text), events)
    })
  )

  it.effect("an empty range is a CSV header and an empty NDJSON file", () =>
    Effect.gen(function* () {
      const nobody = crypto.randomUUID()
      const csv = yield* TestApp.request("GET", `/audit/export?userId=${nobody}`, { as: "dana" })
      assert.strictEqual(csv.status, 200, csv.text)
      assert.strictEqual(csv.text, `${Export.columns.join(",")}\r\n`)
      const ndjson = yield* TestApp.request("GET", `/audit/export?userId=${nobody}&format=ndjson`, { as: "dana" })
      assert.strictEqual(ndjson.text, "")
    })
  )

  it.effect("who may export what is /audit/events' rule; bad input is a typed 400", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("Tapti Textiles")
      // Bob, a clerk who never touched it, exports neither it nor everyone's events; his own he may.
      for (const path of [`/audit/export?aggregateType=organization&aggregateId=${id}`, "/audit/export"]) {
        const refused = yield* TestApp.request("GET", path, { as: "bob" })
        assert.strictEqual(refused.status, 403, refused.text)
        assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(refused.body)._tag, "Forbidden")
      }
      const own = yield* TestApp.request("GET", `/audit/export?userId=${DemoUsers.user("bob").userId}`, { as: "bob" })
      assert.strictEqual(own.status, 200, own.text)
      const anonymous = yield* TestApp.request("GET", "/audit/export")
      assert.strictEqual(anonymous.status, 401, anonymous.text)

      // The auditor exports everything: this organization's events are in it.
      const everything = yield* TestApp.request("GET", "/audit/export?format=ndjson", { as: "dana" })
      assert.strictEqual(everything.status, 200, everything.text)
      const ids = new Set(parseNdjson(everything.text).map((event) => (event as { eventId: string }).eventId))
      for (const event of yield* eventsOf(id)) assert.isTrue(ids.has(event["eventId"] as string))

      const badFormat = yield* TestApp.request("GET", "/audit/export?format=xlsx", { as: "dana" })
      assert.strictEqual(badFormat.status, 400, badFormat.text)
      assert.deepStrictEqual(TestApp.issueFields(badFormat.body), ["query.format"])
      const backwards = yield* TestApp.request(
        "GET",
        "/audit/export?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        { as: "dana" }
      )
      assert.strictEqual(backwards.status, 400, backwards.text)
      assert.deepStrictEqual(TestApp.issueFields(backwards.body), ["query.from"])
    })
  )

  it.effect("the auditor's export is one audit.read with its filters and count; a clerk's is not recorded", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("Godavari Grains")
      const response = yield* TestApp.request(
        "GET",
        `/audit/export?aggregateType=organization&aggregateId=${id.toUpperCase()}&format=ndjson`,
        { as: "dana" }
      )
      assert.strictEqual(response.status, 200, response.text)
      const recorded = (yield* exportReads).filter((read) => read.parameters["aggregateId"] === id)
      assert.deepStrictEqual(recorded, [
        {
          endpoint: "export",
          parameters: { aggregateType: "organization", aggregateId: id, format: "ndjson" },
          continued: false,
          returned: 2
        } as never
      ])
      const clerk = yield* TestApp.request("GET", `/audit/export?aggregateType=organization&aggregateId=${id}`, {
        as: "alice"
      })
      assert.strictEqual(clerk.status, 200, clerk.text)
      assert.strictEqual((yield* exportReads).filter((read) => read.parameters["aggregateId"] === id).length, 1)
    })
  )

  it.effect("undecodable rows are exported as stored, flagged", () =>
    Effect.gen(function* () {
      const ghost = crypto.randomUUID()
      yield* plant(ghost, 2, { says: 'boo, "twice"' })
      const csv = yield* TestApp.request("GET", `/audit/export?aggregateId=${ghost}`, { as: "dana" })
      const rows = yield* parseCsv(csv.text)
      assert.deepStrictEqual(
        rows.map((row) => [row["eventType"], row["data"], row["decoded"], row["decodeError"] !== ""]),
        [
          ["ghost.appeared", '{"says":"boo, \\"twice\\""}', "false", true],
          ["ghost.appeared", '{"says":"boo, \\"twice\\""}', "false", true]
        ]
      )
      const ndjson = yield* TestApp.request("GET", `/audit/export?aggregateId=${ghost}&format=ndjson`, { as: "dana" })
      for (const line of parseNdjson(ndjson.text)) {
        const event = line as { decoded: boolean; decodeError: string; data: unknown }
        assert.strictEqual(event.decoded, false)
        assert.isTrue(event.decodeError.length > 0)
        assert.deepStrictEqual(event.data, { says: 'boo, "twice"' })
      }
    })
  )

  it.effect("a client that leaves midway: the export stops, and is recorded with what was sent", () =>
    Effect.gen(function* () {
      // Far more than the socket buffers hold, so the server is still writing when the client goes.
      const ghost = crypto.randomUUID()
      const total = 20_000
      yield* plant(ghost, total, { filler: "x".repeat(1_000) })
      const base = yield* TestApp.baseUrl
      yield* Effect.callback<void>((resume) => {
        const request = http.get(
          `${base}/audit/export?aggregateId=${ghost}&format=ndjson`,
          { headers: { authorization: `Bearer ${dana.token}` }, agent: false },
          (response) => {
            response.once("data", () => {
              request.destroy()
              resume(Effect.void)
            })
          }
        )
        request.on("error", () => undefined)
      })
      // The record is written when the server notices the close: looked for until it is there, within a bound.
      const recorded = yield* exportReads.pipe(
        Effect.map((reads) => reads.filter((read) => read.parameters["aggregateId"] === ghost)),
        Effect.repeat({
          schedule: Schedule.spaced("50 millis"),
          until: (reads) => reads.length > 0,
          times: 200
        })
      )
      assert.strictEqual(recorded.length, 1)
      assert.isTrue(recorded[0]!.returned > 0 && recorded[0]!.returned < total, String(recorded[0]!.returned))
    })
  )
})
