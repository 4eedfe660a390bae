/**
 * An operation's trail and an event's effects over real HTTP, on the engine of the test project: the events of one
 * correlation id across aggregates in feed order, page by page; what an event caused as a tree, within its bounds;
 * each caller sees the events `/audit/events` would show them, and an auditor's reads are recorded.
 */
import { EventStore } from "@annal/core"
import { AuditApi, AuditReportsApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as DemoUsers from "../src/DemoUsers.ts"
import { OrganizationUpdated } from "../src/Events.ts"
import * as TestApp from "./support/TestApp.ts"

const dana = DemoUsers.user("dana")
const system = "5e5e0000-0000-4000-8000-000000000005"

const Created = Schema.Struct({ id: Schema.String })
const page = TestApp.decode(AuditApi.EventPage)
const history = TestApp.decode(AuditApi.AggregateHistory)
const treeOf = TestApp.decode(AuditReportsApi.EffectTree)

let panCounter = 7000
const createOrganization = (name: string, as: "alice" | "bob", correlationId: string) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("POST", "/organizations", {
      as,
      body: { name, type: "private_limited", email: "books@example.in", pan: `TESTT${panCounter++}Z` },
      headers: { "x-correlation-id": correlationId }
    })
    assert.strictEqual(response.status, 201, response.text)
    return TestApp.decode(Created)(response.body).id
  })

/** The event ids of an aggregate's history. */
const eventIds = (type: string, id: string) =>
  Effect.map(TestApp.request("GET", `/audit/aggregates/${type}/${id}`, { as: "dana" }), (response) =>
    history(response.body).events.map((event) => event.eventId)
  )

/** Appends an update of `aggregateId` caused by `causationId`, as a consumer would have emitted it. */
const caused = (aggregateId: string, causationId: string, correlationId: string) =>
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const [appended] = yield* store.append([
      OrganizationUpdated.make({
        aggregateId,
        userId: system,
        data: { changes: { email: { old: "books@example.in", new: "gst@example.in" } } },
        metadata: { correlationId, causationId }
      })
    ])
    return appended!.eventId
  }).pipe(Effect.provide(EventStore.layer()), Effect.orDie)

/** What event `id` caused, as `as` sees it. */
const effects = (as: "alice" | "carol" | "dana", id: string, query = "") =>
  TestApp.request("GET", `/audit/events/${id}/effects${query}`, { as })

/** Every id of a tree, depth first. */
const idsOf = (tree: AuditReportsApi.EffectTree): Array<string> => [tree.event.eventId, ...tree.effects.flatMap(idsOf)]

/** The reads dana's trail records for `endpoint`. */
const readsOf = (endpoint: string) =>
  Effect.map(TestApp.request("GET", `/audit/aggregates/audit/${dana.userId}?limit=500`, { as: "dana" }), (response) =>
    history(response.body)
      .events.map((event) => event.data as { readonly endpoint: string })
      .filter((data) => data.endpoint === endpoint)
  )

layer(TestApp.layer, TestApp.layerOptions)("trails over HTTP", (it) => {
  it.effect("one operation's events across aggregates, in feed order; each caller sees what they may", () =>
    Effect.gen(function* () {
      const correlationId = `trail-${crypto.randomUUID()}`
      const mine = yield* createOrganization("Tapti Textiles", "alice", correlationId)
      const update = yield* TestApp.request("PATCH", `/organizations/${mine}`, {
        as: "alice",
        body: { phone: "+91-2612345678" },
        headers: { "x-correlation-id": correlationId }
      })
      assert.strictEqual(update.status, 200, update.text)
      const theirs = yield* createOrganization("Sabarmati Salt", "bob", correlationId)
      const [created, updated] = yield* eventIds("organization", mine)
      const [theirCreated] = yield* eventIds("organization", theirs)
      const effect = yield* caused(mine, created!, correlationId)
      const effectOfEffect = yield* caused(theirs, effect, correlationId)
      const all = [created, updated, theirCreated, effect, effectOfEffect]

      const trail = (as: "alice" | "carol" | "dana", query = "") =>
        TestApp.request("GET", `/audit/correlations/${encodeURIComponent(correlationId)}${query}`, { as })
      const asDana = yield* trail("dana")
      assert.strictEqual(asDana.status, 200, asDana.text)
      assert.deepStrictEqual(
        page(asDana.body).events.map((event) => event.eventId),
        all
      )
      // Alice sees her organization's events (the system's effect on it too), not Bob's organization's.
      assert.deepStrictEqual(
        page((yield* trail("alice")).body).events.map((event) => event.eventId),
        [created, updated, effect]
      )
      assert.deepStrictEqual(page((yield* trail("carol")).body).events, [])

      const first = page((yield* trail("dana", "?limit=2")).body)
      assert.deepStrictEqual(
        first.events.map((event) => event.eventId),
        all.slice(0, 2)
      )
      const rest = page((yield* trail("dana", `?limit=2&cursor=${first.nextCursor}`)).body)
      const last = page((yield* trail("dana", `?limit=2&cursor=${rest.nextCursor}`)).body)
      assert.deepStrictEqual(
        [...rest.events, ...last.events].map((event) => event.eventId),
        all.slice(2)
      )
      assert.isNull(last.nextCursor)
      const forged = yield* trail("dana", `?cursor=${first.nextCursor}x`)
      assert.strictEqual(forged.status, 400, forged.text)
      // A cursor of another trail is refused too: it is bound to its correlation id.
      const other = yield* TestApp.request(
        "GET",
        `/audit/correlations/other-${correlationId}?cursor=${first.nextCursor}`,
        {
          as: "dana"
        }
      )
      assert.strictEqual(other.status, 400, other.text)

      const reads = (yield* readsOf("correlation")).filter(
        (read) =>
          (read as unknown as { parameters: { correlationId: string } }).parameters.correlationId === correlationId
      )
      assert.deepStrictEqual(
        reads.map((read) => [
          (read as unknown as { returned: number }).returned,
          (read as unknown as { continued: boolean }).continued
        ]),
        [
          [5, false],
          [2, false],
          [2, true],
          [1, true]
        ]
      )
    })
  )

  it.effect("what an event caused, as a tree within its bounds; hidden branches left out; a 404 for the unseen", () =>
    Effect.gen(function* () {
      const correlationId = `effects-${crypto.randomUUID()}`
      const mine = yield* createOrganization("Mahi Minerals", "alice", correlationId)
      const theirs = yield* createOrganization("Luni Leather", "bob", correlationId)
      const [root] = yield* eventIds("organization", mine)
      const child = yield* caused(mine, root!, correlationId)
      const grandchild = yield* caused(theirs, child, correlationId)

      const full = yield* effects("dana", root!)
      assert.strictEqual(full.status, 200, full.text)
      const tree = treeOf(full.body)
      assert.deepStrictEqual(idsOf(tree), [root, child, grandchild])
      assert.strictEqual(tree.effects[0]!.effects[0]!.event.metadata.causationId, child)

      assert.deepStrictEqual(idsOf(treeOf((yield* effects("alice", root!)).body)), [root, child])
      const unseen = yield* effects("carol", root!)
      assert.strictEqual(unseen.status, 404, unseen.text)
      assert.strictEqual((yield* effects("dana", crypto.randomUUID())).status, 404)

      const shallow = yield* effects("dana", root!, "?maxDepth=1")
      assert.strictEqual(shallow.status, 400, shallow.text)
      assert.deepStrictEqual(TestApp.issueFields(shallow.body), ["query.maxDepth"])
      const narrow = yield* effects("dana", root!, "?maxEvents=1")
      assert.deepStrictEqual(TestApp.issueFields(narrow.body), ["query.maxEvents"])
      assert.deepStrictEqual(TestApp.issueFields((yield* effects("dana", root!, "?maxEvents=0")).body), [
        "query.maxEvents"
      ])

      const reads = (yield* readsOf("effects")).filter(
        (read) => (read as unknown as { parameters: { eventId: string } }).parameters.eventId === root
      )
      assert.deepStrictEqual(
        reads.map((read) => (read as unknown as { returned: number }).returned),
        [3]
      )
    })
  )
})
