/**
 * Malformed requests over real HTTP: each gets a 400 whose body names every wrong field and why, never a 500, and
 * a refused business write leaves no row and no event behind.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Schema from "effect/Schema"
import * as fc from "fast-check"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")
const uuid = "7d444840-9dc0-41e0-8b46-2bbc0bb49d0e"

/** Asserts a 400 `InvalidRequest` that names `field` (and returns every field it names). */
const assertInvalid = (response: TestApp.Response, field: string, reason?: string) => {
  assert.strictEqual(response.status, 400, response.text)
  const body = TestApp.decode(TestApp.ErrorBody)(response.body)
  assert.strictEqual(body._tag, "InvalidRequest")
  const issue = body.issues?.find((i) => i.field === field)
  assert.isDefined(issue, `${field} is not named in ${response.text}`)
  if (reason !== undefined) assert.include(issue!.reason, reason)
  return body.issues!.map((i) => i.field)
}

const Page = Schema.Struct({ events: Schema.Array(Schema.Unknown), nextCursor: Schema.NullOr(Schema.String) })
const Count = Schema.Struct({ count: Schema.Int })

let panCounter = 3000
const freshPan = () => `TESTC${panCounter++}Z`

/** How many events and organizations there are, as the auditor sees them. */
const snapshot = Effect.gen(function* () {
  const events = yield* TestApp.request("GET", "/audit/changes/count?aggregateType=organization", { as: "dana" })
  const organizations = yield* TestApp.request("GET", "/organizations", { as: "dana" })
  return {
    events: TestApp.decode(Count)(events.body).count,
    organizations: TestApp.decode(Schema.Array(Schema.Unknown))(organizations.body).length
  }
})

layer(TestApp.layer, TestApp.layerOptions)("malformed requests", (it) => {
  it.effect("malformed ids and names in paths and filters", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["/audit/aggregates/organization/not-a-uuid", "path.aggregateId"],
        [`/audit/aggregates/Organization!/${uuid}`, "path.aggregateType"],
        [`/audit/aggregates/${encodeURIComponent("organization' OR 1=1 --")}/${uuid}`, "path.aggregateType"],
        ["/audit/users/123/activity", "path.userId"],
        ["/audit/events?userId=zzz", "query.userId"],
        ["/audit/events?aggregateId=1", "query.aggregateId"],
        ["/audit/changes/count?aggregateType=Bad%20Type", "query.aggregateType"],
        ["/audit/events?eventType=organization.created&eventType=Organization%20Created", "query.eventType.1"],
        ["/organizations/not-a-uuid", "path.id"],
        [`/organizations/${uuid}/gst-registrations/xyz`, "path.gstRegistrationId"]
      ]
      for (const [path, field] of cases) {
        const method = path.includes("gst-registrations") ? "PATCH" : "GET"
        assertInvalid(
          yield* TestApp.request(method, path, { as: "dana", body: method === "PATCH" ? {} : undefined }),
          field
        )
      }
    })
  )

  it.effect("page sizes outside 1 to 500, such as 10^9", () =>
    Effect.gen(function* () {
      for (const limit of ["1000000000", "501", "0", "-5", "1.5", "abc", "", "1e3"]) {
        assertInvalid(yield* TestApp.request("GET", `/audit/events?limit=${limit}`, { as: "dana" }), "query.limit")
        assertInvalid(
          yield* TestApp.request("GET", `/audit/users/${alice.userId}/activity?limit=${limit}`, { as: "alice" }),
          "query.limit"
        )
      }
      const largest = yield* TestApp.request("GET", "/audit/events?limit=500", { as: "dana" })
      assert.strictEqual(largest.status, 200)
    })
  )

  it.effect("forged, truncated, altered and borrowed cursors", () =>
    Effect.gen(function* () {
      // Three events of Alice's, so that her activity has a second page.
      for (let i = 0; i < 3; i++) {
        const created = yield* TestApp.request("POST", "/commodities", {
          as: "alice",
          body: { name: `Grain ${i}`, category: "Grains", hsnCode: "1001", unit: "QTL" }
        })
        assert.strictEqual(created.status, 201)
      }
      const activity = `/audit/users/${alice.userId}/activity`
      const first = TestApp.decode(Page)((yield* TestApp.request("GET", `${activity}?limit=1`, { as: "alice" })).body)
      const cursor = first.nextCursor!
      assert.isString(cursor)
      const ok = yield* TestApp.request("GET", `${activity}?limit=1&cursor=${encodeURIComponent(cursor)}`, {
        as: "alice"
      })
      assert.strictEqual(ok.status, 200)

      const [position, signature] = cursor.split(".")
      const forgedPosition = Base64Url.encode("annal.v1:1")
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["made up", "abc"],
        ["truncated", cursor.slice(0, -3)],
        ["position only", position!],
        ["the store's own, unsigned, cursor", forgedPosition],
        ["another position with this signature", `${forgedPosition}.${signature}`],
        // The 11th character: all 6 of its bits are the signature's (the last one's lowest 2 are padding).
        [
          "a flipped signature",
          `${position}.${signature!.slice(0, 10)}${signature![10] === "A" ? "B" : "A"}${signature!.slice(11)}`
        ],
        ["too long", "a".repeat(600)]
      ]
      for (const [what, forged] of cases) {
        const response = yield* TestApp.request("GET", `${activity}?cursor=${encodeURIComponent(forged)}`, {
          as: "alice"
        })
        assertInvalid(response, "query.cursor")
        assert.notInclude(response.text, "events", what)
      }
      // A cursor belongs to its query: the same cursor on another query is refused.
      const borrowed = [
        `/audit/events?userId=${alice.userId}&cursor=${encodeURIComponent(cursor)}`,
        `/audit/events?userId=${alice.userId}&order=desc&cursor=${encodeURIComponent(cursor)}`,
        `/audit/changes/recent?cursor=${encodeURIComponent(cursor)}`
      ]
      for (const path of borrowed) {
        assertInvalid(yield* TestApp.request("GET", path, { as: "dana" }), "query.cursor")
      }
    })
  )

  it.effect("inverted and malformed time ranges", () =>
    Effect.gen(function* () {
      const inverted = "from=2025-06-01T00:00:00Z&to=2025-01-01T00:00:00Z"
      assertInvalid(yield* TestApp.request("GET", `/audit/events?${inverted}`, { as: "dana" }), "query.from", "after")
      assertInvalid(yield* TestApp.request("GET", `/audit/changes/count?${inverted}`, { as: "dana" }), "query.from")
      for (const from of ["yesterday", "2025-13-01T00:00:00Z", "1714000000"]) {
        assertInvalid(yield* TestApp.request("GET", `/audit/events?from=${from}`, { as: "dana" }), "query.from")
      }
      const empty = yield* TestApp.request("GET", "/audit/events?from=2025-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", {
        as: "dana"
      })
      assert.strictEqual(empty.status, 200)
      assert.deepStrictEqual(TestApp.decode(Page)(empty.body).events, [])
      for (const hours of ["0", "-1", "100000", "soon"]) {
        assertInvalid(
          yield* TestApp.request("GET", `/audit/changes/recent?hours=${hours}`, { as: "dana" }),
          "query.hours"
        )
      }
    })
  )

  it.effect("unknown filters are refused, not ignored", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, string]> = [
        [`/audit/events?userid=${alice.userId}`, "query.userid"],
        // The old name of the filter is refused too, not ignored: a client written against it learns at once.
        [`/audit/events?entityId=${uuid}`, "query.entityId"],
        ["/audit/changes/count?type=organization", "query.type"],
        [`/audit/aggregates/organization/${uuid}?asOf=2025-01-01T00:00:00Z`, "query.asOf"],
        ["/audit/changes/recent?order=desc", "query.order"],
        ["/audit/events?order=sideways", "query.order"]
      ]
      for (const [path, field] of cases) {
        assertInvalid(yield* TestApp.request("GET", path, { as: "dana" }), field)
      }
      const many = Array.from({ length: 51 }, (_, i) => `eventType=organization.e${i}`).join("&")
      assertInvalid(yield* TestApp.request("GET", `/audit/events?${many}`, { as: "dana" }), "query.eventType")
      // Every problem of a request is named, not only the first.
      const fields = assertInvalid(
        yield* TestApp.request("GET", "/audit/events?limit=0&userId=x&nope=1", { as: "dana" }),
        "query.limit"
      )
      assert.deepStrictEqual(fields.toSorted(), ["query.limit", "query.nope", "query.userId"])
    })
  )

  it.effect("malformed request headers", () =>
    Effect.gen(function* () {
      const long = yield* TestApp.request("GET", "/commodities", {
        as: "alice",
        headers: { "x-correlation-id": "x".repeat(129) }
      })
      assertInvalid(long, "header.x-correlation-id")
      const spaced = yield* TestApp.request("GET", "/commodities", {
        as: "alice",
        headers: { "x-correlation-id": "two words" }
      })
      assertInvalid(spaced, "header.x-correlation-id")
      const reason = yield* TestApp.request("GET", "/commodities", {
        as: "alice",
        headers: { "x-change-reason": "because ".repeat(80) }
      })
      assertInvalid(reason, "header.x-change-reason")
    })
  )

  it.effect("malformed business input: 400 naming each field and why, and nothing written", () =>
    Effect.gen(function* () {
      const before = yield* snapshot
      const organization = { name: "Ganga Pulses Company", type: "trust", email: "a@ganga.example", pan: freshPan() }

      assertInvalid(yield* TestApp.request("POST", "/organizations", { as: "alice", body: "{ not json" }), "payload")
      const text = yield* TestApp.request("POST", "/organizations", {
        as: "alice",
        body: "name=Acme",
        headers: { "content-type": "text/plain" }
      })
      assert.strictEqual(text.status, 415, text.text)
      assert.deepStrictEqual(TestApp.issueFields(text.body), ["header.content-type"])
      const fields = assertInvalid(
        yield* TestApp.request("POST", "/organizations", {
          as: "alice",
          body: { name: " ", type: "company", email: "no-at-sign", pan: "abcde1234f", phone: "call me", fax: "1" }
        }),
        "payload.pan",
        "must be a PAN"
      )
      assert.deepStrictEqual(fields.toSorted(), [
        "payload.email",
        "payload.fax",
        "payload.name",
        "payload.pan",
        "payload.phone",
        "payload.type"
      ])
      assertInvalid(
        yield* TestApp.request("POST", "/organizations", { as: "alice", body: { ...organization, name: 42 } }),
        "payload.name"
      )
      const missing = { ...organization } as Partial<typeof organization>
      delete missing.email
      assertInvalid(yield* TestApp.request("POST", "/organizations", { as: "alice", body: missing }), "payload.email")
      assert.deepStrictEqual(yield* snapshot, before)

      const created = yield* TestApp.request("POST", "/organizations", { as: "alice", body: organization })
      assert.strictEqual(created.status, 201)
      const id = TestApp.decode(Schema.Struct({ id: Schema.String }))(created.body).id
      const afterCreate = yield* snapshot

      const gst = (body: object) =>
        TestApp.request("POST", `/organizations/${id}/gst-registrations`, { as: "alice", body })
      const registration = {
        gstin: `09${organization.pan}1Z5`,
        stateCode: "09",
        registrationType: "regular",
        effectiveFrom: "2025-04-01"
      }
      assertInvalid(yield* gst({ ...registration, gstin: "09ABCDE1234F1Z5" }), "payload.gstin", organization.pan)
      assertInvalid(yield* gst({ ...registration, stateCode: "27" }), "payload.gstin", "state code 27")
      assertInvalid(yield* gst({ ...registration, gstin: "123" }), "payload.gstin", "must be a GSTIN")
      assertInvalid(yield* gst({ ...registration, stateCode: "99" }), "payload.stateCode")
      assertInvalid(yield* gst({ ...registration, effectiveFrom: "2025-02-30" }), "payload.effectiveFrom", "calendar")
      assertInvalid(yield* gst({ ...registration, registrationType: "casual" }), "payload.registrationType")

      const year = (body: object) =>
        TestApp.request("POST", `/organizations/${id}/financial-years`, { as: "alice", body })
      assertInvalid(yield* year({ startDate: "2025-04-02", endDate: "2026-03-31" }), "payload.startDate", "April")
      assertInvalid(yield* year({ startDate: "2025-04-01", endDate: "2027-03-31" }), "payload.endDate", "March")

      const account = (body: object) =>
        TestApp.request("POST", `/organizations/${id}/bank-accounts`, { as: "alice", body })
      assertInvalid(
        yield* account({
          accountName: "Ganga",
          accountNumber: "12",
          ifsc: "HDFC0000521",
          bankName: "HDFC",
          isPrimary: true
        }),
        "payload.accountNumber"
      )
      assertInvalid(
        yield* account({
          accountName: "Ganga",
          accountNumber: "501000123456",
          ifsc: "HDFC1000521",
          bankName: "HDFC",
          isPrimary: "yes"
        }),
        "payload.ifsc"
      )

      // A financial year of another organization is refused by the business rules, with the field named.
      const series = yield* TestApp.request("POST", `/organizations/${id}/document-series`, {
        as: "alice",
        body: { financialYearId: uuid, documentType: "invoice", prefix: "INV", startNumber: 1 }
      })
      assertInvalid(series, "payload.financialYearId", "not a financial year of this organization")
      assertInvalid(
        yield* TestApp.request("PATCH", `/organizations/${id}`, { as: "alice", body: { email: "" } }),
        "payload.email"
      )
      assertInvalid(
        yield* TestApp.request("PATCH", "/commodities/" + uuid, { as: "alice", body: { unit: "TONNES" } }),
        "payload.unit"
      )
      assert.deepStrictEqual(yield* snapshot, afterCreate)

      // A second organization with the same PAN conflicts with the first, and is not written either.
      const duplicate = yield* TestApp.request("POST", "/organizations", { as: "alice", body: organization })
      assert.strictEqual(duplicate.status, 409, duplicate.text)
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(duplicate.body)._tag, "Conflict")
      assert.deepStrictEqual(yield* snapshot, afterCreate)
    })
  )

  it.effect("arbitrary query values get a 200 or a 400, never a 500", () =>
    Effect.gen(function* () {
      const parameter = fc.constantFrom(
        "eventType",
        "aggregateType",
        "aggregateId",
        "userId",
        "correlationId",
        "from",
        "to",
        "order",
        "limit",
        "cursor",
        "hours"
      )
      const samples = fc.sample(
        fc.array(fc.tuple(parameter, fc.string({ unit: "binary", maxLength: 40 })), { maxLength: 4 }),
        {
          numRuns: 60,
          seed: 42
        }
      )
      for (const sample of samples) {
        const query = sample.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&")
        for (const path of ["/audit/events", "/audit/changes/count", "/audit/changes/recent"]) {
          const response = yield* TestApp.request("GET", `${path}?${query}`, { as: "dana" })
          assert.include([200, 400], response.status, `${path}?${query}: ${response.text}`)
        }
      }
    })
  )
})
