/**
 * Who may see what, over real HTTP: requests without a known token are refused before anything is read, with a
 * body that holds no data; a clerk reads their own activity and the history of what they may see, and nothing
 * else; only the auditor reads everything; auditors do not change business data; nothing writes events through
 * the audit API.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as DemoUsers from "../src/DemoUsers.ts"
import { importedCommodities } from "../src/Migrations.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")
const bob = DemoUsers.user("bob")

const Created = Schema.Struct({ id: Schema.String })

let panCounter = 2000
const createOrganization = (as: "alice" | "bob") =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("POST", "/organizations", {
      as,
      body: {
        name: "Narmada Cotton Mills",
        type: "public_limited",
        email: "a@narmada.example",
        pan: `TESTB${panCounter++}Z`
      }
    })
    assert.strictEqual(response.status, 201, response.text)
    return TestApp.decode(Created)(response.body).id
  })

/** Every read endpoint of the audit API, with valid parameters. */
const auditReads = (aggregateId: string) => [
  `/audit/aggregates/organization/${aggregateId}`,
  `/audit/users/${alice.userId}/activity`,
  "/audit/changes/recent",
  "/audit/changes/count",
  "/audit/events"
]

/** The body of a refusal: a tag and a message, and nothing else. */
const assertRefusal = (response: TestApp.Response, status: number, tag: string) => {
  assert.strictEqual(response.status, status, response.text)
  const body = TestApp.decode(TestApp.ErrorBody)(response.body)
  assert.strictEqual(body._tag, tag)
  assert.deepStrictEqual(Object.keys(response.body as object).toSorted(), ["_tag", "message"])
}

/** How many organization.created events the auditor counts. */
const createdCount = Effect.map(
  TestApp.request("GET", "/audit/changes/count?eventType=organization.created", { as: "dana" }),
  (response) => TestApp.decode(Schema.Struct({ count: Schema.Int }))(response.body).count
)

layer(TestApp.layer, TestApp.layerOptions)("who may see what", (it) => {
  it.effect("no token, an unknown token, or another scheme: 401 on every endpoint, with no data", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("alice")
      const paths = [...auditReads(id), `/organizations/${id}`, "/commodities"]
      const credentials: ReadonlyArray<Record<string, string>> = [
        {},
        { authorization: "Bearer not-a-token" },
        { authorization: `Basic ${btoa(`alice:${alice.token}`)}` },
        { authorization: "Bearer " },
        { authorization: `bearer ${alice.token}x` }
      ]
      for (const path of paths) {
        for (const headers of credentials) {
          const response = yield* TestApp.request("GET", path, { headers })
          assertRefusal(response, 401, "Unauthenticated")
          assert.strictEqual(TestApp.header(response, "www-authenticate"), 'Bearer realm="annal"')
        }
      }
      // Authentication comes first: a malformed request without a token learns nothing about its parameters.
      assertRefusal(yield* TestApp.request("GET", "/audit/events?limit=0&nope=1"), 401, "Unauthenticated")
      const write = yield* TestApp.request("POST", "/organizations", { body: { name: "x" } })
      assertRefusal(write, 401, "Unauthenticated")
      // The scheme name is case-insensitive (RFC 9110), so a valid token in lowercase "bearer" works.
      const lower = yield* TestApp.request("GET", "/commodities", {
        headers: { authorization: `bearer ${alice.token}` }
      })
      assert.strictEqual(lower.status, 200)
    })
  )

  it.effect("a clerk reads their own activity; another user's is 403, with no events in the body", () =>
    Effect.gen(function* () {
      yield* createOrganization("bob")
      const own = yield* TestApp.request("GET", `/audit/users/${bob.userId}/activity`, { as: "bob" })
      assert.strictEqual(own.status, 200)
      const other = yield* TestApp.request("GET", `/audit/users/${bob.userId}/activity`, { as: "alice" })
      assertRefusal(other, 403, "Forbidden")
      assert.notInclude(other.text, "organization.created")
      // The user id's case does not matter, to the check or to the query.
      const upper = yield* TestApp.request("GET", `/audit/users/${bob.userId.toUpperCase()}/activity`, { as: "bob" })
      assert.strictEqual(upper.status, 200)
      assert.deepStrictEqual(upper.body, own.body)
      const dana = yield* TestApp.request("GET", `/audit/users/${bob.userId}/activity`, { as: "dana" })
      assert.strictEqual(dana.status, 200)
    })
  )

  it.effect("a clerk reads the history of the entities they may see, and no other", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("bob")
      const path = `/audit/aggregates/organization/${id}`
      assertRefusal(yield* TestApp.request("GET", path, { as: "alice" }), 403, "Forbidden")
      // Filters that reach the same events are refused too.
      assertRefusal(
        yield* TestApp.request("GET", `/audit/events?aggregateType=organization&aggregateId=${id}`, { as: "alice" }),
        403,
        "Forbidden"
      )
      assertRefusal(
        yield* TestApp.request("GET", `/audit/changes/count?aggregateType=organization&aggregateId=${id}`, {
          as: "alice"
        }),
        403,
        "Forbidden"
      )
      assert.strictEqual((yield* TestApp.request("GET", path, { as: "bob" })).status, 200)
      // The catalog is shared: anyone reads a commodity's history.
      const commodity = `/audit/aggregates/commodity/${importedCommodities[1].id}`
      assert.strictEqual((yield* TestApp.request("GET", commodity, { as: "carol" })).status, 200)
    })
  )

  it.effect(
    "writing grants no reading: a clerk who is not a member can neither change an organization nor so read it",
    () =>
      Effect.gen(function* () {
        const id = yield* createOrganization("bob")
        const history = `/audit/aggregates/organization/${id}`
        const before = yield* TestApp.request("GET", history, { as: "bob" })
        assert.strictEqual(before.status, 200)
        // Every write to Bob's organization, by Alice who is not a member: refused, and nothing is written.
        const pan = TestApp.decode(Schema.Struct({ pan: Schema.String }))(
          (yield* TestApp.request("GET", `/organizations/${id}`, { as: "alice" })).body
        ).pan
        const attempts = [
          TestApp.request("PATCH", `/organizations/${id}`, { as: "alice", body: { name: "Renamed by Alice" } }),
          TestApp.request("DELETE", `/organizations/${id}`, { as: "alice" }),
          TestApp.request("POST", `/organizations/${id}/gst-registrations`, {
            as: "alice",
            body: { gstin: `24${pan}1Z5`, stateCode: "24", registrationType: "regular", effectiveFrom: "2025-04-01" }
          }),
          TestApp.request("POST", `/organizations/${id}/financial-years`, {
            as: "alice",
            body: { startDate: "2025-04-01", endDate: "2026-03-31" }
          })
        ]
        for (const attempt of attempts) assertRefusal(yield* attempt, 403, "Forbidden")
        // She still cannot read its history, by any filter that reaches it, and it holds none of her events.
        assertRefusal(yield* TestApp.request("GET", history, { as: "alice" }), 403, "Forbidden")
        assertRefusal(
          yield* TestApp.request("GET", `/audit/events?aggregateType=organization&aggregateId=${id}`, { as: "alice" }),
          403,
          "Forbidden"
        )
        const after = yield* TestApp.request("GET", history, { as: "bob" })
        assert.strictEqual(after.status, 200)
        assert.notInclude(after.text, alice.userId)
        assert.notInclude(after.text, "Renamed by Alice")
        // Bob, a member, changes it, and reads the change.
        const changed = yield* TestApp.request("PATCH", `/organizations/${id}`, {
          as: "bob",
          body: { name: "Narmada Mills" }
        })
        assert.strictEqual(changed.status, 200, changed.text)
        const read = yield* TestApp.request("GET", history, { as: "bob" })
        assert.strictEqual(read.status, 200)
        assert.include(read.text, "organization.updated")
        // The auditor reads it, without being a member.
        assert.strictEqual((yield* TestApp.request("GET", history, { as: "dana" })).status, 200)
      })
  )

  it.effect("only the auditor reads everything: recent changes, and lists and counts not restricted to one's own", () =>
    Effect.gen(function* () {
      for (const path of [
        "/audit/changes/recent",
        "/audit/events",
        "/audit/changes/count",
        "/audit/events?eventType=organization.created"
      ]) {
        assertRefusal(yield* TestApp.request("GET", path, { as: "alice" }), 403, "Forbidden")
        assert.strictEqual((yield* TestApp.request("GET", path, { as: "dana" })).status, 200, path)
      }
      const own = yield* TestApp.request("GET", `/audit/events?userId=${alice.userId}`, { as: "alice" })
      assert.strictEqual(own.status, 200)
      const ownCount = yield* TestApp.request("GET", `/audit/changes/count?userId=${alice.userId}`, { as: "alice" })
      assert.strictEqual(ownCount.status, 200)
    })
  )

  it.effect("auditors read business data but do not change it: 403, and nothing is written", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("alice")
      const before = yield* TestApp.request(
        "GET",
        `/audit/changes/count?aggregateType=organization&aggregateId=${id}`,
        {
          as: "dana"
        }
      )
      const attempts = [
        TestApp.request("POST", "/organizations", {
          as: "dana",
          body: { name: "Audit Co", type: "llp", email: "a@b.example", pan: "AUDIT1234A" }
        }),
        TestApp.request("PATCH", `/organizations/${id}`, { as: "dana", body: { name: "Renamed by the auditor" } }),
        TestApp.request("DELETE", `/organizations/${id}`, { as: "dana" }),
        TestApp.request("POST", "/commodities", {
          as: "dana",
          body: { name: "Audit grain", category: "Grains", hsnCode: "1001", unit: "KG" }
        })
      ]
      for (const attempt of attempts) assertRefusal(yield* attempt, 403, "Forbidden")
      const read = yield* TestApp.request("GET", `/organizations/${id}`, { as: "dana" })
      assert.strictEqual(read.status, 200)
      assert.strictEqual(TestApp.decode(Schema.Struct({ name: Schema.String }))(read.body).name, "Narmada Cotton Mills")
      const after = yield* TestApp.request("GET", `/audit/changes/count?aggregateType=organization&aggregateId=${id}`, {
        as: "dana"
      })
      assert.deepStrictEqual(after.body, before.body)
    })
  )

  it.effect("nothing writes events through the audit API: other methods find no route", () =>
    Effect.gen(function* () {
      const before = yield* createdCount
      const event = { eventType: "organization.created", aggregateId: crypto.randomUUID(), data: {} }
      for (const method of ["POST", "PUT", "PATCH", "DELETE"] as const) {
        for (const path of ["/audit/events", `/audit/aggregates/organization/${event.aggregateId}`]) {
          const response = yield* TestApp.request(method, path, { as: "dana", body: event })
          assert.strictEqual(response.status, 404, `${method} ${path}`)
          assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(response.body)._tag, "NotFound")
        }
      }
      // No organization.created was recorded by any of them.
      assert.strictEqual(yield* createdCount, before)
    })
  )
})
