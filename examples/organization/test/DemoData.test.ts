/**
 * `npm run demo`'s data: several organizations kept by three clerks over months, each change at its own moment in
 * the past with a browser request's context, readable through the audit API; a second run writes nothing.
 */
import { AuditApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as App from "../src/App.ts"
import * as DemoData from "../src/DemoData.ts"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const page = TestApp.decode(AuditApi.EventPage)
const until = DateTime.makeUnsafe("2025-10-15T12:00:00Z")

layer(TestApp.layer, TestApp.layerOptions)("the demo data", (it) => {
  it.effect("fills months of history by several users, reporting each month, and only once", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const write = DemoData.write({
        organizations: 4,
        months: 5,
        until,
        onProgress: (line) => Effect.sync(() => lines.push(line))
      }).pipe(Effect.provide(App.services))
      const summary = yield* write
      assert.isTrue(summary.written)
      assert.strictEqual(summary.organizations, 4)
      assert.isAbove(summary.changes, 40)
      assert.isAtLeast(lines.length, 5)
      for (const line of lines) assert.match(line, /^ {2}\d{4}-\d{2}: \d+ changes?$/)
      const reported = lines.reduce((sum, line) => sum + Number(line.split(": ")[1]!.split(" ")[0]), 0)
      assert.strictEqual(reported, summary.changes)

      const response = yield* TestApp.request(
        "GET",
        `/audit/events?from=2025-01-01T00:00:00Z&to=${DateTime.formatIso(until)}&limit=500`,
        { as: "dana" }
      )
      const { events } = page(response.body)
      // Some changes emit more than one event (a new primary account demotes the old one); none emits none.
      assert.isAtLeast(events.length, summary.changes)
      const clerks = ["alice", "bob", "carol"].map((name) => DemoUsers.user(name as "alice").userId)
      assert.sameMembers([...new Set(events.map((event) => event.userId))], clerks)
      const times = events.map((event) => DateTime.toEpochMillis(event.timestamp))
      const days = (Math.max(...times) - Math.min(...times)) / 86_400_000
      assert.isAbove(days, 100)
      assert.isAtMost(Math.max(...times), DateTime.toEpochMillis(until))
      for (const event of events) {
        assert.match(event.metadata.correlationId ?? "", /^demo-\d{4}$/)
        assert.isString(event.metadata.ipAddress)
        assert.include(event.metadata.userAgent ?? "", "Mozilla/5.0")
      }
      const types = new Set(events.map((event) => event.eventType))
      for (const type of [
        "organization.created",
        "organization.updated",
        "organization.deleted",
        "organization.gst.added",
        "organization.gst.updated",
        "organization.bank_account.added",
        "organization.bank_account.updated",
        "organization.financial_year.added",
        "organization.document_series.added",
        "commodity.created",
        "commodity.updated"
      ]) {
        assert.isTrue(types.has(type), type)
      }

      // Every change was made by a member: each clerk who changed an organization reads its history, the other
      // clerk is refused it.
      const organizationEvents = events.filter((event) => event.aggregateType === "organization")
      for (const aggregateId of new Set(organizationEvents.map((event) => event.aggregateId))) {
        const writers = new Set(organizationEvents.filter((e) => e.aggregateId === aggregateId).map((e) => e.userId))
        assert.strictEqual(writers.size, 2)
        for (const user of DemoUsers.users.filter((u) => u.role === "clerk")) {
          const read = yield* TestApp.request("GET", `/audit/aggregates/organization/${aggregateId}`, {
            as: { token: user.token }
          })
          assert.strictEqual(read.status, writers.has(user.userId) ? 200 : 403, `${user.name} on ${aggregateId}`)
        }
      }

      const count = Effect.map(
        TestApp.request("GET", "/audit/changes/count?correlationId=demo-0001", { as: "dana" }),
        (r) => TestApp.decode(Schema.Struct({ count: Schema.Int }))(r.body).count
      )
      const before = yield* count
      const again = yield* write
      assert.isFalse(again.written)
      assert.strictEqual(yield* count, before)
    })
  )
})
