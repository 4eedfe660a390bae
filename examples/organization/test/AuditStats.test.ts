/**
 * `GET /audit/stats` over real HTTP, on the engine of the test project: the counts of a range of the app's own
 * events (per bucket and group, top actors, most changed entities, reasons); who may count what (a clerk their own
 * events, and only by saying so); the auditor's read recorded as an `audit.read`; and typed 400s for a range it will
 * not read.
 */
import { AuditApi, AuditStats } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const [alice, bob, dana] = [DemoUsers.user("alice"), DemoUsers.user("bob"), DemoUsers.user("dana")]
const Created = Schema.Struct({ id: Schema.String })
const statsOf = TestApp.decode(AuditStats.ChangeStats)
const history = TestApp.decode(AuditApi.AggregateHistory)
const iso = (instant: DateTime.Utc) => encodeURIComponent(DateTime.formatIso(instant))

let panCounter = 7000
const freshPan = () => `TESTS${String(panCounter++).padStart(4, "0")}Z`

const createOrganization = (as: "alice" | "bob", name: string, reason?: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("POST", "/organizations", {
      as,
      body: { name, type: "private_limited", email: "books@example.in", pan: freshPan() },
      ...(reason === undefined ? {} : { headers: { "x-change-reason": reason } })
    })
    assert.strictEqual(response.status, 201, response.text)
    return TestApp.decode(Created)(response.body).id
  })

/** The sum of the bucket counts per key. */
const perKey = (stats: AuditStats.ChangeStats): Record<string, number> => {
  const sums: Record<string, number> = {}
  for (const bucket of stats.buckets) sums[bucket.key ?? "-"] = (sums[bucket.key ?? "-"] ?? 0) + bucket.count
  return sums
}

/** The fields a 400 to the auditor's stats `query` names. */
const fields = (query: string) =>
  Effect.map(TestApp.request("GET", `/audit/stats?${query}`, { as: "dana" }), (response) => {
    assert.strictEqual(response.status, 400, response.text)
    return TestApp.issueFields(response.body)
  })

layer(TestApp.layer, TestApp.layerOptions)("GET /audit/stats", (it) => {
  it.effect("counts the range's events per bucket and type, with top actors, entities and reasons; recorded", () =>
    Effect.gen(function* () {
      const from = yield* DateTime.now
      const first = yield* createOrganization("alice", "Tapti Textiles", "new customer")
      yield* createOrganization("alice", "Sabarmati Salt")
      yield* createOrganization("bob", "Mahanadi Metals", "new customer")
      const update = yield* TestApp.request("PATCH", `/organizations/${first}`, {
        as: "alice",
        body: { email: "accounts@tapti.example" },
        headers: { "x-change-reason": "customer asked" }
      })
      assert.strictEqual(update.status, 200, update.text)
      // Just past the last event: nothing else writes to this file's database while the test runs.
      const to = DateTime.add(yield* DateTime.now, { milliseconds: 1 })

      const path = `/audit/stats?from=${iso(from)}&to=${iso(to)}&bucket=hour&groupBy=eventType`
      const response = yield* TestApp.request("GET", path, { as: "dana" })
      assert.strictEqual(response.status, 200, response.text)
      const stats = statsOf(response.body)
      assert.strictEqual(stats.total, 4)
      assert.deepStrictEqual(perKey(stats), { "organization.created": 3, "organization.updated": 1 })
      assert.deepStrictEqual(
        stats.topActors.map((row) => [row.userId, row.count]),
        [
          [alice.userId, 3],
          [bob.userId, 1]
        ]
      )
      assert.deepStrictEqual(stats.topEntities[0]!, { aggregateType: "organization", aggregateId: first, count: 2 })
      assert.deepStrictEqual(
        stats.reasons.map((row) => [row.reason, row.count]),
        [
          ["new customer", 2],
          ["customer asked", 1],
          [null, 1]
        ]
      )

      const trail = history(
        (yield* TestApp.request("GET", `/audit/aggregates/audit/${dana.userId}?limit=500`, { as: "dana" })).body
      ).events
      const recorded = trail
        .filter(
          (event) => event.eventType === "audit.read" && (event.data as { endpoint: string }).endpoint === "stats"
        )
        .map((event) => event.data)
      assert.deepStrictEqual(recorded, [
        {
          endpoint: "stats",
          parameters: {
            from: DateTime.formatIso(from),
            to: DateTime.formatIso(to),
            bucket: "hour",
            groupBy: "eventType"
          },
          continued: false,
          returned: 4
        }
      ])
    })
  )

  it.effect("a clerk counts only their own events, and must say so; others' and everyone's are a 403", () =>
    Effect.gen(function* () {
      const from = yield* DateTime.now
      yield* createOrganization("alice", "Godavari Grains")
      yield* createOrganization("bob", "Krishna Cotton")
      const to = DateTime.add(yield* DateTime.now, { milliseconds: 1 })
      const range = `from=${iso(from)}&to=${iso(to)}&bucket=day`

      const everyone = yield* TestApp.request("GET", `/audit/stats?${range}`, { as: "alice" })
      assert.strictEqual(everyone.status, 403, everyone.text)
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(everyone.body)._tag, "Forbidden")
      const bobs = yield* TestApp.request("GET", `/audit/stats?${range}&userId=${bob.userId}`, { as: "alice" })
      assert.strictEqual(bobs.status, 403, bobs.text)

      const own = yield* TestApp.request(
        "GET",
        `/audit/stats?${range}&userId=${alice.userId.toUpperCase()}&groupBy=entityType`,
        {
          as: "alice"
        }
      )
      assert.strictEqual(own.status, 200, own.text)
      const stats = statsOf(own.body)
      assert.strictEqual(stats.total, 1)
      assert.deepStrictEqual(perKey(stats), { organization: 1 })
      assert.deepStrictEqual(
        stats.topActors.map((row) => row.userId),
        [alice.userId]
      )
    })
  )

  it.effect("a reversed, empty or too long range, or an unknown bucket, is a 400 naming the field", () =>
    Effect.gen(function* () {
      const now = yield* DateTime.now
      const later = DateTime.add(now, { hours: 1 })
      assert.deepStrictEqual(yield* fields(`from=${iso(later)}&to=${iso(now)}`), ["query.from"])
      assert.deepStrictEqual(yield* fields(`from=${iso(now)}&to=${iso(now)}`), ["query.from"])
      assert.deepStrictEqual(yield* fields(`from=${iso(now)}&to=${iso(DateTime.add(now, { days: 60 }))}&bucket=hour`), [
        "query.to"
      ])
      assert.deepStrictEqual(yield* fields(`from=${iso(now)}&to=${iso(later)}&bucket=fortnight`), ["query.bucket"])
      assert.deepStrictEqual(yield* fields(`from=${iso(now)}&to=${iso(later)}&top=1000`), ["query.top"])
      assert.deepStrictEqual(yield* fields(`to=${iso(later)}`), ["query.from"])
    })
  )
})
