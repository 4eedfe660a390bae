/**
 * The audit reports over real HTTP, on the engine of the test project: an aggregate's state as of a moment, rebuilt
 * by the payload conventions (organizations) or folded by the app's registered projection (commodities); who may
 * read it; and the auditor's read recorded as an `audit.read`.
 */
import { AuditApi, AuditReportsApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const dana = DemoUsers.user("dana")

const Created = Schema.Struct({ id: Schema.String })
const history = TestApp.decode(AuditApi.AggregateHistory)
const stateOf = TestApp.decode(AuditReportsApi.AggregateState)

let panCounter = 5000
const freshPan = () => `TESTR${String(panCounter++).padStart(4, "0")}Z`

const iso = (instant: DateTime.Utc) => encodeURIComponent(DateTime.formatIso(instant))

const createOrganization = (name: string) =>
  Effect.gen(function* () {
    const input = { name, type: "private_limited", email: "books@example.in", pan: freshPan() }
    const response = yield* TestApp.request("POST", "/organizations", { as: "alice", body: input })
    assert.strictEqual(response.status, 201, response.text)
    return { id: TestApp.decode(Created)(response.body).id, input }
  })

const state = (type: string, id: string, asOf: DateTime.Utc, as: "alice" | "bob" | "dana" = "alice") =>
  TestApp.request("GET", `/audit/aggregates/${type}/${id}/state?asOf=${iso(asOf)}`, { as })

layer(TestApp.layer, TestApp.layerOptions)("an aggregate's state as of a moment", (it) => {
  it.effect("by the conventions: nothing before it was created, each version as of its event, deleted after", () =>
    Effect.gen(function* () {
      // Commas, quotes, a newline and non-ASCII letters in the data: the state is the JSON the events carry.
      const { id, input } = yield* createOrganization('Ganga "Agro", Exports\nमुंबई')
      const update = yield* TestApp.request("PATCH", `/organizations/${id}`, {
        as: "alice",
        body: { email: "accounts@ganga.example", phone: "+91-2212345678" }
      })
      assert.strictEqual(update.status, 200, update.text)
      const events = history(
        (yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })).body
      ).events
      assert.strictEqual(events.length, 2)
      const [created, updated] = events

      const before = stateOf(
        (yield* state("organization", id, DateTime.subtract(created!.timestamp, { milliseconds: 1 }))).body
      )
      assert.deepStrictEqual(
        { state: before.state, status: before.status, streamVersion: before.streamVersion, events: before.events },
        { state: null, status: "absent", streamVersion: 0, events: 0 }
      )

      const first = yield* state("organization", id, created!.timestamp)
      assert.strictEqual(first.status, 200, first.text)
      const atCreation = stateOf(first.body)
      // Both events may carry the same millisecond: then both are at or before it.
      const upTo = events.filter((event) => DateTime.isLessThanOrEqualTo(event.timestamp, created!.timestamp))
      assert.strictEqual(atCreation.streamVersion, upTo.length)
      assert.strictEqual(atCreation.rebuiltWith, "conventions")
      assert.deepStrictEqual(
        atCreation.state,
        upTo.length === 1
          ? { ...input, phone: null }
          : { ...input, email: "accounts@ganga.example", phone: "+91-2212345678" }
      )

      const now = stateOf((yield* state("organization", id, updated!.timestamp)).body)
      assert.deepStrictEqual(now.state, { ...input, email: "accounts@ganga.example", phone: "+91-2212345678" })
      assert.deepStrictEqual(
        { status: now.status, streamVersion: now.streamVersion, events: now.events, ignored: now.ignored },
        { status: "exists", streamVersion: 2, events: 2, ignored: 0 }
      )
      assert.deepStrictEqual(now.verification, {
        scope: "stream",
        verified: true,
        events: 2,
        page: null,
        finding: null,
        digest: null
      })

      const removed = yield* TestApp.request("DELETE", `/organizations/${id}`, { as: "alice" })
      assert.strictEqual(removed.status, 204, removed.text)
      const after = stateOf((yield* state("organization", id, yield* DateTime.now)).body)
      assert.strictEqual(after.status, "deleted")
      assert.strictEqual(after.streamVersion, 3)
      // The fields it had when it was deleted stay visible: that is what was deleted.
      assert.deepStrictEqual(after.state, now.state)
    })
  )

  it.effect("by the conventions: what belongs to the entity (a GST registration) is counted as ignored", () =>
    Effect.gen(function* () {
      const { id, input } = yield* createOrganization("Narmada Pulses")
      const gst = yield* TestApp.request("POST", `/organizations/${id}/gst-registrations`, {
        as: "alice",
        body: { gstin: `24${input.pan}1Z5`, stateCode: "24", registrationType: "regular", effectiveFrom: "2025-04-01" }
      })
      assert.strictEqual(gst.status, 201, gst.text)
      const answer = stateOf((yield* state("organization", id, yield* DateTime.now)).body)
      assert.deepStrictEqual(answer.state, { ...input, phone: null })
      assert.deepStrictEqual([answer.events, answer.ignored, answer.streamVersion], [2, 1, 2])
    })
  )

  it.effect("by the app's registered projection, for commodities", () =>
    Effect.gen(function* () {
      const created = yield* TestApp.request("POST", "/commodities", {
        as: "carol",
        body: { name: "Cardamom", category: "Spices", hsnCode: "090831", unit: "KG" }
      })
      assert.strictEqual(created.status, 201, created.text)
      const id = TestApp.decode(Created)(created.body).id
      const updated = yield* TestApp.request("PATCH", `/commodities/${id}`, { as: "carol", body: { unit: "QTL" } })
      assert.strictEqual(updated.status, 200, updated.text)
      const response = yield* TestApp.request(
        "GET",
        `/audit/aggregates/commodity/${id}/state?asOf=${iso(yield* DateTime.now)}`,
        {
          as: "carol"
        }
      )
      assert.strictEqual(response.status, 200, response.text)
      const answer = stateOf(response.body)
      assert.strictEqual(answer.rebuiltWith, "projection")
      assert.deepStrictEqual(answer.state, {
        commodity: { name: "Cardamom", category: "Spices", hsnCode: "090831", unit: "QTL" },
        revisions: 1
      })
      assert.deepStrictEqual([answer.status, answer.ignored, answer.streamVersion, answer.events], [null, null, 2, 2])
    })
  )

  it.effect("the history's rule: a clerk who never touched it is refused; an auditor's read is recorded", () =>
    Effect.gen(function* () {
      const { id } = yield* createOrganization("Kaveri Silks")
      const asOf = yield* DateTime.now
      const refused = yield* state("organization", id, asOf, "bob")
      assert.strictEqual(refused.status, 403, refused.text)
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(refused.body)._tag, "Forbidden")

      const malformed = yield* TestApp.request("GET", `/audit/aggregates/organization/${id}/state?asOf=yesterday`, {
        as: "dana"
      })
      assert.strictEqual(malformed.status, 400, malformed.text)
      assert.deepStrictEqual(TestApp.issueFields(malformed.body), ["query.asOf"])

      const read = yield* state("organization", id, asOf, "dana")
      assert.strictEqual(read.status, 200, read.text)
      const trail = history(
        (yield* TestApp.request("GET", `/audit/aggregates/audit/${dana.userId}?limit=500`, { as: "dana" })).body
      ).events
      const recorded = trail.filter(
        (event) =>
          event.eventType === "audit.read" &&
          (event.data as { endpoint: string }).endpoint === "aggregateState" &&
          (event.data as { parameters: { aggregateId: string } }).parameters.aggregateId === id
      )
      assert.deepStrictEqual(
        recorded.map((event) => event.data),
        [
          {
            endpoint: "aggregateState",
            parameters: { aggregateType: "organization", aggregateId: id, asOf: DateTime.formatIso(asOf) },
            continued: false,
            returned: 1
          }
        ]
      )
    })
  )
})
