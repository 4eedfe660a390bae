/**
 * The Organization app over real HTTP, on the engine of the test project: every business endpoint writes its rows
 * and its events; the audit API reads them back decoded, with the request's metadata; v1 rows read as v2; an
 * auditor's read is recorded; the OpenAPI document and the documentation page are served.
 */
import { Digest, EventStore } from "@annal/core"
import { AuditApi } from "@annal/http"
import { assert, describe, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as DemoUsers from "../src/DemoUsers.ts"
import { OrganizationCreated } from "../src/Events.ts"
import { importedCommodities } from "../src/Migrations.ts"
import * as TestApp from "./support/TestApp.ts"

const alice = DemoUsers.user("alice")
const bob = DemoUsers.user("bob")
const dana = DemoUsers.user("dana")

const Created = Schema.Struct({ id: Schema.String })
const history = TestApp.decode(AuditApi.AggregateHistory)
const page = TestApp.decode(AuditApi.EventPage)

/** A PAN of its own for each organization a test creates, so tests never collide. */
let panCounter = 1000
const freshPan = () => `TESTA${String(panCounter++).padStart(4, "0")}Z`

const organizationInput = (name: string) => ({
  name,
  type: "private_limited",
  email: `accounts@${name.toLowerCase().replaceAll(/[^a-z]/g, "")}.example`,
  pan: freshPan()
})

const createOrganization = (name: string, as: "alice" | "bob" = "alice", headers?: Record<string, string>) =>
  Effect.gen(function* () {
    const response = yield* TestApp.request("POST", "/organizations", {
      as,
      body: organizationInput(name),
      headers
    })
    assert.strictEqual(response.status, 201, response.text)
    return TestApp.decode(Created)(response.body).id
  })

layer(TestApp.layer, TestApp.layerOptions)("the Organization app over HTTP", (it) => {
  it.effect("answers the health check without a token", () =>
    Effect.gen(function* () {
      const response = yield* TestApp.request("GET", "/health")
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(response.body, { status: "ok" })
    })
  )

  it.effect("create, update, history: the diff with old and new, and the request's metadata", () =>
    Effect.gen(function* () {
      const input = organizationInput("Acme Trading")
      const created = yield* TestApp.request("POST", "/organizations", {
        as: "alice",
        body: input,
        headers: { "x-correlation-id": "onboard-42", "x-change-reason": "New customer", "user-agent": "annal-test/1.0" }
      })
      assert.strictEqual(created.status, 201, created.text)
      assert.strictEqual(TestApp.header(created, "x-correlation-id"), "onboard-42")
      const id = TestApp.decode(Created)(created.body).id
      assert.deepStrictEqual(created.body, { id, ...input, phone: null })

      const updated = yield* TestApp.request("PATCH", `/organizations/${id}`, {
        as: "alice",
        body: { email: "finance@acme.example", phone: "+91-9876543210" },
        headers: { "x-change-reason": "Customer asked by email", "user-agent": "annal-test/1.0" }
      })
      assert.strictEqual(updated.status, 200, updated.text)
      const generated = TestApp.header(updated, "x-correlation-id")
      assert.isDefined(generated)
      assert.notStrictEqual(generated, "onboard-42")

      // An update that changes nothing records nothing.
      const unchanged = yield* TestApp.request("PATCH", `/organizations/${id}`, {
        as: "alice",
        body: { email: "finance@acme.example" }
      })
      assert.strictEqual(unchanged.status, 200)

      const response = yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })
      assert.strictEqual(response.status, 200, response.text)
      const { events, nextCursor } = history(response.body)
      assert.isNull(nextCursor)
      assert.deepStrictEqual(
        events.map((event) => [event.eventType, event.streamVersion, event.version, event.userId]),
        [
          ["organization.created", 1, 1, alice.userId],
          ["organization.updated", 2, 1, alice.userId]
        ]
      )
      const [createdEvent, updatedEvent] = events
      assert.deepStrictEqual(createdEvent!.data, { ...input, phone: null })
      assert.deepStrictEqual(createdEvent!.metadata, {
        correlationId: "onboard-42",
        reason: "New customer",
        userAgent: "annal-test/1.0",
        ipAddress: "127.0.0.1"
      })
      assert.deepStrictEqual(updatedEvent!.data, {
        changes: {
          email: { old: input.email, new: "finance@acme.example" },
          phone: { old: null, new: "+91-9876543210" }
        }
      })
      assert.deepStrictEqual(updatedEvent!.metadata, {
        correlationId: generated!,
        reason: "Customer asked by email",
        userAgent: "annal-test/1.0",
        ipAddress: "127.0.0.1"
      })
    })
  )

  it.effect("every organization endpoint writes its rows and its events", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("Deccan Agro Commodities")
      const detail = yield* TestApp.request("GET", `/organizations/${id}`, { as: "bob" })
      const pan = TestApp.decode(Schema.Struct({ pan: Schema.String }))(detail.body).pan

      const gst = yield* TestApp.request("POST", `/organizations/${id}/gst-registrations`, {
        as: "alice",
        body: { gstin: `36${pan}1Z5`, stateCode: "36", registrationType: "regular", effectiveFrom: "2025-04-01" }
      })
      assert.strictEqual(gst.status, 201, gst.text)
      const gstId = TestApp.decode(Created)(gst.body).id
      const gstUpdate = yield* TestApp.request("PATCH", `/organizations/${id}/gst-registrations/${gstId}`, {
        as: "alice",
        body: { registrationType: "composition" }
      })
      assert.strictEqual(gstUpdate.status, 200, gstUpdate.text)

      const account = {
        accountName: "Deccan Agro Commodities",
        accountNumber: "50100012345678",
        ifsc: "HDFC0000521",
        bankName: "HDFC Bank",
        isPrimary: true
      }
      const first = yield* TestApp.request("POST", `/organizations/${id}/bank-accounts`, { as: "alice", body: account })
      assert.strictEqual(first.status, 201, first.text)
      const firstId = TestApp.decode(Created)(first.body).id
      const second = yield* TestApp.request("POST", `/organizations/${id}/bank-accounts`, {
        as: "alice",
        body: { ...account, accountNumber: "917020000123456", ifsc: "UTIB0000432", bankName: "Axis Bank" }
      })
      assert.strictEqual(second.status, 201, second.text)
      const renamed = yield* TestApp.request("PATCH", `/organizations/${id}/bank-accounts/${firstId}`, {
        as: "alice",
        body: { accountName: "Deccan Agro Commodities LLP" }
      })
      assert.strictEqual(renamed.status, 200, renamed.text)

      const year = yield* TestApp.request("POST", `/organizations/${id}/financial-years`, {
        as: "alice",
        body: { startDate: "2025-04-01", endDate: "2026-03-31" }
      })
      assert.strictEqual(year.status, 201, year.text)
      const yearBody = TestApp.decode(Schema.Struct({ id: Schema.String, label: Schema.String }))(year.body)
      assert.strictEqual(yearBody.label, "2025-26")
      const series = yield* TestApp.request("POST", `/organizations/${id}/document-series`, {
        as: "alice",
        body: { financialYearId: yearBody.id, documentType: "invoice", prefix: "INV/25", startNumber: 1 }
      })
      assert.strictEqual(series.status, 201, series.text)

      const read = yield* TestApp.request("GET", `/organizations/${id}`, { as: "bob" })
      const organization = TestApp.decode(
        Schema.Struct({
          gstRegistrations: Schema.Array(Schema.Struct({ registrationType: Schema.String })),
          bankAccounts: Schema.Array(Schema.Struct({ id: Schema.String, isPrimary: Schema.Boolean })),
          financialYears: Schema.Array(Schema.Struct({ label: Schema.String })),
          documentSeries: Schema.Array(Schema.Struct({ prefix: Schema.String }))
        })
      )(read.body)
      assert.deepStrictEqual(
        organization.gstRegistrations.map((g) => g.registrationType),
        ["composition"]
      )
      // The second primary account demoted the first.
      assert.deepStrictEqual(
        organization.bankAccounts.filter((a) => a.isPrimary).map((a) => a.id),
        [TestApp.decode(Created)(second.body).id]
      )
      assert.deepStrictEqual(
        organization.financialYears.map((y) => y.label),
        ["2025-26"]
      )
      assert.deepStrictEqual(
        organization.documentSeries.map((s) => s.prefix),
        ["INV/25"]
      )

      const removed = yield* TestApp.request("DELETE", `/organizations/${id}`, { as: "alice" })
      assert.strictEqual(removed.status, 204, removed.text)
      const gone = yield* TestApp.request("GET", `/organizations/${id}`, { as: "bob" })
      assert.strictEqual(gone.status, 404)
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(gone.body)._tag, "NotFound")

      const events = history(
        (yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "dana" })).body
      ).events
      assert.deepStrictEqual(
        events.map((event) => event.eventType),
        [
          "organization.created",
          "organization.gst.added",
          "organization.gst.updated",
          "organization.bank_account.added",
          "organization.bank_account.updated",
          "organization.bank_account.added",
          "organization.bank_account.updated",
          "organization.financial_year.added",
          "organization.document_series.added",
          "organization.deleted"
        ]
      )
      assert.deepStrictEqual(events[2]!.data, {
        gstRegistrationId: gstId,
        changes: { registrationType: { old: "regular", new: "composition" } }
      })
      assert.deepStrictEqual(events[4]!.data, {
        bankAccountId: firstId,
        changes: { isPrimary: { old: true, new: false } }
      })
      assert.deepStrictEqual(events[6]!.data, {
        bankAccountId: firstId,
        changes: { accountName: { old: "Deccan Agro Commodities", new: "Deccan Agro Commodities LLP" } }
      })
      const deleted = events[9]!
      assert.strictEqual(deleted.userId, alice.userId)
      assert.deepStrictEqual(Object.keys(deleted.data as object).toSorted(), ["deletedAt", "name"])
    })
  )

  it.effect("commodities: create, list, get, update with the diff", () =>
    Effect.gen(function* () {
      const created = yield* TestApp.request("POST", "/commodities", {
        as: "carol",
        body: { name: "Black pepper", category: "Spices", hsnCode: "090411", unit: "KG" }
      })
      assert.strictEqual(created.status, 201, created.text)
      const id = TestApp.decode(Created)(created.body).id
      const updated = yield* TestApp.request("PATCH", `/commodities/${id}`, {
        as: "carol",
        body: { hsnCode: "09041100" }
      })
      assert.deepStrictEqual(updated.body, {
        id,
        name: "Black pepper",
        category: "Spices",
        hsnCode: "09041100",
        unit: "KG"
      })
      const read = yield* TestApp.request("GET", `/commodities/${id}`, { as: "alice" })
      assert.deepStrictEqual(read.body, updated.body)
      const list = yield* TestApp.request("GET", "/commodities", { as: "alice" })
      assert.isTrue(TestApp.decode(Schema.Array(Created))(list.body).some((c) => c.id === id))
      const events = history(
        (yield* TestApp.request("GET", `/audit/aggregates/commodity/${id}`, { as: "alice" })).body
      ).events
      assert.deepStrictEqual(
        events.map((event) => [event.eventType, event.version, event.data]),
        [
          ["commodity.created", 2, { name: "Black pepper", category: "Spices", hsnCode: "090411", unit: "KG" }],
          ["commodity.updated", 1, { changes: { hsnCode: { old: "090411", new: "09041100" } } }]
        ]
      )
    })
  )

  it.effect("commodities the first release stored as commodity.created v1 read as v2", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [wheat] = importedCommodities
      const stored = yield* sql<{ readonly version: number; readonly data: unknown }>`SELECT version, data
        FROM events WHERE aggregate_id = ${wheat.id}`
      assert.deepStrictEqual(stored, [{ version: 1, data: { name: "Wheat", category: "Grains", hsn_code: "1001" } }])
      const response = yield* TestApp.request("GET", `/audit/aggregates/commodity/${wheat.id}`, { as: "bob" })
      assert.strictEqual(response.status, 200, response.text)
      const [event] = history(response.body).events
      assert.strictEqual(event!.version, 2)
      assert.deepStrictEqual(event!.data, { name: "Wheat", category: "Grains", hsnCode: "1001", unit: "KG" })
      assert.strictEqual(event!.metadata.correlationId, "catalog-import-2024")
      const read = yield* TestApp.request("GET", `/commodities/${wheat.id}`, { as: "bob" })
      assert.deepStrictEqual(read.body, {
        id: wheat.id,
        name: "Wheat",
        category: "Grains",
        hsnCode: "1001",
        unit: "KG"
      })
    })
  )

  it.effect("user activity, recent changes, counts and filtered events, a page at a time", () =>
    Effect.gen(function* () {
      const correlationId = `batch-${crypto.randomUUID()}`
      const ids: Array<string> = []
      for (const name of ["Alpha Foods", "Beta Foods", "Gamma Foods"]) {
        ids.push(yield* createOrganization(name, "bob", { "x-correlation-id": correlationId }))
      }

      const activity = yield* TestApp.request("GET", `/audit/users/${bob.userId}/activity?limit=2`, { as: "bob" })
      assert.strictEqual(activity.status, 200, activity.text)
      const firstPage = page(activity.body)
      assert.deepStrictEqual(
        firstPage.events.map((event) => event.aggregateId),
        [ids[2], ids[1]]
      )
      assert.isNotNull(firstPage.nextCursor)
      const next = yield* TestApp.request(
        "GET",
        `/audit/users/${bob.userId}/activity?limit=2&cursor=${encodeURIComponent(firstPage.nextCursor!)}`,
        { as: "bob" }
      )
      assert.strictEqual(page(next.body).events[0]!.aggregateId, ids[0])

      const byCorrelation = `/audit/events?correlationId=${correlationId}`
      const listed = yield* TestApp.request("GET", `${byCorrelation}&userId=${bob.userId}`, { as: "bob" })
      assert.deepStrictEqual(
        page(listed.body).events.map((event) => event.aggregateId),
        ids
      )
      const descending = yield* TestApp.request("GET", `${byCorrelation}&order=desc&limit=1`, { as: "dana" })
      const descPage = page(descending.body)
      assert.deepStrictEqual(
        descPage.events.map((event) => event.aggregateId),
        [ids[2]]
      )
      // Follow the cursors to the end: every event once, in order.
      const seen: Array<string> = []
      let cursor: string | null = null
      do {
        const suffix: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`
        const response = yield* TestApp.request(
          "GET",
          `${byCorrelation}&eventType=organization.created&aggregateType=organization&limit=1${suffix}`,
          { as: "dana" }
        )
        const current = page(response.body)
        seen.push(...current.events.map((event) => event.aggregateId))
        cursor = current.nextCursor
      } while (cursor !== null)
      assert.deepStrictEqual(seen, ids)

      const counted = yield* TestApp.request("GET", `/audit/changes/count?correlationId=${correlationId}`, {
        as: "dana"
      })
      assert.deepStrictEqual(counted.body, { count: 3 })
      const ownCount = yield* TestApp.request(
        "GET",
        `/audit/changes/count?userId=${bob.userId}&aggregateType=organization&aggregateId=${ids[0]}`,
        { as: "bob" }
      )
      assert.deepStrictEqual(ownCount.body, { count: 1 })

      const future = "2999-01-01T00:00:00Z"
      const none = yield* TestApp.request("GET", `${byCorrelation}&from=${future}`, { as: "dana" })
      assert.deepStrictEqual(page(none.body).events, [])
      const window = yield* TestApp.request("GET", `${byCorrelation}&from=2000-01-01T00:00:00Z&to=${future}`, {
        as: "dana"
      })
      assert.strictEqual(page(window.body).events.length, 3)

      // An organization created two hours ago, appended last: the newest in the log, but outside the last hour.
      const store = yield* EventStore.make()
      const old = crypto.randomUUID()
      yield* store.append([
        {
          ...OrganizationCreated.make({
            aggregateId: old,
            userId: alice.userId,
            data: { ...organizationInput("Old Foods"), type: "private_limited", phone: null }
          }),
          timestamp: DateTime.subtract(yield* DateTime.now, { hours: 2 })
        }
      ])
      // Only this test's organizations: the file's other tests create some in the same hour.
      const ours = new Set([old, ...ids])
      const recentOf = (hours: number) =>
        Effect.map(
          TestApp.request("GET", `/audit/changes/recent?hours=${hours}&aggregateType=organization&limit=500`, {
            as: "dana"
          }),
          (response) => {
            assert.strictEqual(response.status, 200, response.text)
            return page(response.body)
              .events.map((event) => event.aggregateId)
              .filter((id) => ours.has(id))
          }
        )
      // Newest first: the three just created, and not the one before the window, which comes first in a wider one.
      assert.deepStrictEqual(yield* recentOf(1), [ids[2], ids[1], ids[0]])
      assert.deepStrictEqual(yield* recentOf(3), [old, ids[2], ids[1], ids[0]])
    })
  )

  it.effect("an auditor's read is itself recorded, with who, what and the request's metadata", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("Konkan Cashew Processors")
      const auditTrail = `/audit/aggregates/audit/${dana.userId}?limit=500`
      const countReads = Effect.map(
        TestApp.request("GET", `/audit/changes/count?aggregateType=audit&aggregateId=${dana.userId}`, { as: "dana" }),
        (response) => TestApp.decode(Schema.Struct({ count: Schema.Int }))(response.body).count
      )
      const before = yield* countReads
      // Counting is a read too: this one is recorded as well.
      const afterCounting = yield* countReads
      assert.strictEqual(afterCounting, before + 1)

      const read = yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, {
        as: "dana",
        headers: { "x-correlation-id": "inspection-7", "x-change-reason": "Quarterly inspection" }
      })
      assert.strictEqual(read.status, 200)
      // A clerk's read is not an auditor's: nothing is recorded for it.
      yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })

      const trail = history((yield* TestApp.request("GET", auditTrail, { as: "dana" })).body).events
      const recorded = trail.filter((event) => event.metadata.correlationId === "inspection-7")
      assert.strictEqual(recorded.length, 1)
      const [event] = recorded
      assert.strictEqual(event!.eventType, "audit.read")
      assert.strictEqual(event!.userId, dana.userId)
      assert.deepStrictEqual(event!.data, {
        endpoint: "aggregateHistory",
        parameters: { aggregateType: "organization", aggregateId: id },
        continued: false,
        returned: 1
      })
      assert.strictEqual(event!.metadata.reason, "Quarterly inspection")
      assert.strictEqual(yield* countReads, afterCounting + 3)
      const aliceReads = yield* TestApp.request(
        "GET",
        `/audit/changes/count?eventType=audit.read&userId=${alice.userId}`,
        {
          as: "alice"
        }
      )
      assert.deepStrictEqual(aliceReads.body, { count: 0 })
    })
  )

  describe("the API's own description", () => {
    it.effect("serves the OpenAPI 3.1 document and a documentation page generated from the definition", () =>
      Effect.gen(function* () {
        const document = yield* TestApp.request("GET", "/openapi.json")
        assert.strictEqual(document.status, 200)
        const spec = TestApp.decode(
          Schema.Struct({
            openapi: Schema.String,
            paths: Schema.Record(Schema.String, Schema.Unknown),
            components: Schema.Struct({ securitySchemes: Schema.Record(Schema.String, Schema.Unknown) })
          })
        )(document.body)
        assert.strictEqual(spec.openapi, "3.1.0")
        for (const path of [
          "/audit/aggregates/{aggregateType}/{aggregateId}",
          "/audit/users/{userId}/activity",
          "/audit/changes/recent",
          "/audit/changes/count",
          "/audit/events",
          "/organizations/{id}/gst-registrations",
          "/commodities/{id}"
        ]) {
          assert.property(spec.paths, path)
        }
        assert.deepStrictEqual(spec.components.securitySchemes, { bearer: { type: "http", scheme: "Bearer" } })
        const docs = yield* TestApp.request("GET", "/docs")
        assert.strictEqual(docs.status, 200)
        assert.include(TestApp.header(docs, "content-type") ?? "", "text/html")
        assert.include(docs.text, "SwaggerUIBundle")
        assert.include(docs.text, "/audit/events")
      })
    )
  })
  it.effect("entity history says whether the entity's hash chain verified, and where a tampering breaks it", () =>
    Effect.gen(function* () {
      const id = yield* createOrganization("Verified Traders")
      const before = history(
        (yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })).body
      )
      assert.deepStrictEqual(
        { ...before.verification, digest: undefined },
        {
          scope: "page",
          verified: true,
          events: 1,
          page: { fromVersion: 1, toVersion: 1, anchor: { kind: "genesis", streamVersion: 0, hash: "0".repeat(64) } },
          finding: null,
          digest: undefined
        }
      )

      // A superuser gets past the append-only triggers and rewrites the stored name.
      const sql = yield* SqlClient.SqlClient
      yield* sql`ALTER TABLE events DISABLE TRIGGER USER`
      yield* sql`UPDATE events SET data = jsonb_set(data, '{name}', '"Forged Traders"') WHERE aggregate_id = ${id}::uuid`
      const triggers = yield* sql<{ readonly name: string }>`SELECT tgname AS name FROM pg_trigger
        WHERE tgrelid = 'events'::regclass AND NOT tgisinternal`
      for (const trigger of triggers) yield* sql`ALTER TABLE events ENABLE ALWAYS TRIGGER ${sql(trigger.name)}`

      const after = history(
        (yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })).body
      )
      assert.strictEqual(after.verification?.verified, false)
      assert.strictEqual(after.verification?.finding?.kind, "changed")
      assert.strictEqual(after.verification?.finding?.streamVersion, 1)
    })
  )

  it.effect(
    "entity history checks the head against the latest digest: a stream cut below its signed head is not verified",
    () =>
      Effect.gen(function* () {
        const id = yield* createOrganization("Signed Traders")
        for (const email of ["one@signed.example", "two@signed.example"]) {
          const updated = yield* TestApp.request("PATCH", `/organizations/${id}`, { as: "alice", body: { email } })
          assert.strictEqual(updated.status, 200, updated.text)
        }
        // The signer, in a process of its own with its own key, makes a digest after the three events.
        const key = yield* Effect.flatMap(Digest.generateSigningKey, (generated) =>
          Digest.parseSigningKey(generated.privateKeyPem)
        )
        const document = yield* Effect.flatMap(Digest.make(), (digest) => digest.create()).pipe(
          Effect.provideService(Digest.SigningKey, key)
        )
        const read = Effect.map(
          TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" }),
          (response) => history(response.body).verification
        )
        const signed = yield* read
        assert.deepStrictEqual(signed, {
          scope: "page",
          verified: true,
          events: 3,
          page: { fromVersion: 1, toVersion: 3, anchor: { kind: "genesis", streamVersion: 0, hash: "0".repeat(64) } },
          finding: null,
          digest: { id: document.id, checkpoint: document.checkpoint, signedVersion: 3 }
        })

        // A superuser gets past the triggers and cuts the stream to version 2: every link left still holds.
        const sql = yield* SqlClient.SqlClient
        yield* sql`ALTER TABLE events DISABLE TRIGGER USER`
        yield* sql`DELETE FROM events WHERE aggregate_id = ${id}::uuid AND stream_version = 3`
        const triggers = yield* sql<{ readonly name: string }>`SELECT tgname AS name FROM pg_trigger
        WHERE tgrelid = 'events'::regclass AND NOT tgisinternal`
        for (const trigger of triggers) yield* sql`ALTER TABLE events ENABLE ALWAYS TRIGGER ${sql(trigger.name)}`

        const cut = yield* read
        assert.strictEqual(cut?.verified, false)
        assert.strictEqual(cut?.events, 2)
        assert.strictEqual(cut?.finding?.kind, "truncated")
        assert.strictEqual(cut?.finding?.streamVersion, 3)
        assert.include(cut?.finding?.detail ?? "", `digest #${document.id}`)
        assert.deepStrictEqual(cut?.digest, { id: document.id, checkpoint: document.checkpoint, signedVersion: 3 })
      })
  )

  it.effect(
    "entity history verifies each page from the previous page's last event, which its cursor carries signed",
    () =>
      Effect.gen(function* () {
        const id = yield* createOrganization("Paged Traders")
        for (const email of [
          "1@paged.example",
          "2@paged.example",
          "3@paged.example",
          "4@paged.example",
          "5@paged.example"
        ]) {
          const updated = yield* TestApp.request("PATCH", `/organizations/${id}`, { as: "alice", body: { email } })
          assert.strictEqual(updated.status, 200, updated.text)
        }
        const read = (query: string) =>
          Effect.map(
            TestApp.request("GET", `/audit/aggregates/organization/${id}?${query}`, { as: "alice" }),
            (response) => {
              assert.strictEqual(response.status, 200, `${query}: ${response.text}`)
              return history(response.body)
            }
          )
        const first = yield* read("limit=2")
        assert.deepStrictEqual(
          [first.verification?.scope, first.verification?.verified, first.verification?.page?.anchor.kind],
          ["page", true, "genesis"]
        )
        const cursor = first.nextCursor!
        const second = yield* read(`limit=2&cursor=${cursor}`)
        assert.deepStrictEqual(
          [second.verification?.scope, second.verification?.verified, second.verification?.page],
          [
            "page",
            true,
            {
              fromVersion: 3,
              toVersion: 4,
              anchor: { kind: "previousPage", streamVersion: 2, hash: second.verification?.page?.anchor.hash ?? "" }
            }
          ]
        )
        assert.match(second.verification?.page?.anchor.hash ?? "", /^[0-9a-f]{64}$/)

        // The anchor the cursor carries cannot be changed: the signature covers it.
        const [position, anchor, tag] = cursor.split(".")
        const forged = `${position}.${anchor!.replace(/^2-/, "1-")}.${tag}`
        const refused = yield* TestApp.request("GET", `/audit/aggregates/organization/${id}?limit=2&cursor=${forged}`, {
          as: "alice"
        })
        assert.strictEqual(refused.status, 400, refused.text)

        // A superuser rewrites the last event of the first page, after it was served, and leaves its hash alone.
        const sql = yield* SqlClient.SqlClient
        yield* sql`ALTER TABLE events DISABLE TRIGGER USER`
        yield* sql`UPDATE events SET data = jsonb_set(data, '{changes}', '{}') WHERE aggregate_id = ${id}::uuid
          AND stream_version = 2`
        const triggers = yield* sql<{ readonly name: string }>`SELECT tgname AS name FROM pg_trigger
        WHERE tgrelid = 'events'::regclass AND NOT tgisinternal`
        for (const trigger of triggers) yield* sql`ALTER TABLE events ENABLE ALWAYS TRIGGER ${sql(trigger.name)}`

        const after = yield* read(`limit=2&cursor=${cursor}`)
        assert.strictEqual(after.verification?.verified, false)
        assert.deepStrictEqual(
          [after.verification?.finding?.kind, after.verification?.finding?.streamVersion],
          ["changed", 2]
        )
        // The next cursor carries no anchor: the page did not verify, so the page after it is verified in full.
        const third = yield* read(`limit=2&cursor=${after.nextCursor}`)
        assert.deepStrictEqual(
          [third.verification?.scope, third.verification?.verified, third.verification?.finding?.streamVersion],
          ["stream", false, 2]
        )
        const full = yield* read("verify=full")
        assert.deepStrictEqual(
          [full.verification?.scope, full.verification?.events, full.verification?.page, full.verification?.verified],
          ["stream", 6, null, false]
        )
      })
  )
})
