/**
 * `AuditService.getChangeStats`, on the engine of the test project: counts per bucket at the bucket edges (UTC days,
 * Monday weeks, calendar months), grouped or not; the top actors, most changed aggregates and reasons; a filter that
 * narrows every part; and the typed refusals of a range it will not read.
 */
import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { AuditService, maxStatsBuckets } from "../src/AuditService.ts"
import { EventEmitter } from "../src/EventEmitter.ts"
import { GstAdded, OrganizationCreated, OrganizationUpdated, uuid } from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const at = (iso: string) => DateTime.makeUnsafe(iso)
const iso = (instant: DateTime.Utc) => DateTime.formatIso(instant)
const acme = { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }

/** An organization created by `userId`, for `reason` if given. */
const created = (aggregateId: string, userId: string, reason?: string) =>
  OrganizationCreated.make({
    aggregateId,
    userId,
    data: acme,
    ...(reason === undefined ? {} : { metadata: { reason } })
  })

/** Each row's key and count. */
const byCount = <A extends { readonly count: number }>(rows: ReadonlyArray<A>, key: (row: A) => string) =>
  rows.map((row) => [key(row), row.count])

layer(TestDatabase.layer())(`AuditService.getChangeStats (${TestDatabase.engine})`, (it) => {
  it.effect("counts per bucket, top actors, most changed aggregates and reasons over [from, to)", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const [org, other, alice, bob] = [uuid(), uuid(), uuid(), uuid()]
      const emit = (event: Parameters<typeof emitter.emit>[0], timestamp: string) =>
        emitter.emit({ ...event, timestamp: at(timestamp) })
      const updated = (userId: string, reason: string) =>
        OrganizationUpdated.make({
          aggregateId: org,
          userId,
          data: { changes: { email: { old: "a@acme.test", new: "b@acme.test" } } },
          metadata: { reason }
        })
      // Outside the range on both sides: `from` is inclusive, `to` exclusive.
      yield* emit(created(uuid(), alice), "2030-03-31T23:59:59.999Z")
      yield* emit(created(org, alice, "onboarding"), "2030-04-01T00:00:00Z")
      yield* emit(updated(bob, "correction"), "2030-04-01T23:59:59.999Z")
      yield* emit(updated(bob, "correction"), "2030-04-02T00:00:00Z")
      yield* emit(
        GstAdded.make({ aggregateId: org, userId: alice, data: { gstin: "29A", state: "KA" } }),
        "2030-04-02T12:00:00Z"
      )
      yield* emit(created(other, bob), "2030-04-03T08:00:00Z")
      yield* emit(created(uuid(), bob), "2030-04-04T00:00:00Z")

      const stats = yield* audit.getChangeStats({
        from: at("2030-04-01T00:00:00Z"),
        to: at("2030-04-04T00:00:00Z"),
        bucket: "day",
        groupBy: "eventType"
      })
      assert.strictEqual(stats.total, 5)
      assert.deepStrictEqual(
        stats.buckets.map((bucket) => [iso(bucket.start), bucket.key, bucket.count]),
        [
          ["2030-04-01T00:00:00.000Z", "organization.created", 1],
          ["2030-04-01T00:00:00.000Z", "organization.updated", 1],
          ["2030-04-02T00:00:00.000Z", "organization.gst.added", 1],
          ["2030-04-02T00:00:00.000Z", "organization.updated", 1],
          ["2030-04-03T00:00:00.000Z", "organization.created", 1]
        ]
      )
      // Ties are broken by the id, so the order is the same on every engine and every run.
      assert.deepStrictEqual(
        byCount(stats.topActors, (row) => row.userId),
        [
          [bob, 3],
          [alice, 2]
        ]
      )
      assert.deepStrictEqual(
        byCount(stats.topEntities, (row) => `${row.aggregateType}/${row.aggregateId}`),
        [
          [`organization/${org}`, 4],
          [`organization/${other}`, 1]
        ]
      )
      assert.deepStrictEqual(
        stats.reasons.map((row) => [row.reason, row.count]),
        // Most first; among equal counts, the events given no reason last.
        [
          ["correction", 2],
          [undefined, 2],
          ["onboarding", 1]
        ]
      )

      // Narrowed to one user, every part counts only that user's events; `top` bounds the lists.
      const bobs = yield* audit.getChangeStats({
        from: at("2030-04-01T00:00:00Z"),
        to: at("2030-04-04T00:00:00Z"),
        bucket: "day",
        filter: { userId: bob.toUpperCase() },
        top: 1
      })
      assert.strictEqual(bobs.total, 3)
      assert.deepStrictEqual(
        bobs.buckets.map((bucket) => [iso(bucket.start), bucket.key, bucket.count]),
        [
          ["2030-04-01T00:00:00.000Z", undefined, 1],
          ["2030-04-02T00:00:00.000Z", undefined, 1],
          ["2030-04-03T00:00:00.000Z", undefined, 1]
        ]
      )
      assert.deepStrictEqual(
        byCount(bobs.topActors, (row) => row.userId),
        [[bob, 3]]
      )
      assert.deepStrictEqual(
        bobs.topEntities.map((row) => row.aggregateId),
        [org]
      )
      assert.deepStrictEqual(
        bobs.reasons.map((row) => [row.reason, row.count]),
        [["correction", 2]]
      )
    })
  )

  it.effect("weeks start on Monday and months on the 1st, in UTC; groups by user", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const user = uuid()
      // 2031-03-02 is a Sunday, 2031-03-03 a Monday.
      for (const timestamp of ["2031-02-28T23:59:59.999Z", "2031-03-02T23:00:00Z", "2031-03-03T00:00:00Z"]) {
        yield* emitter.emit({
          ...OrganizationCreated.make({ aggregateId: uuid(), userId: user, data: acme }),
          timestamp: at(timestamp)
        })
      }
      const range = { from: at("2031-02-01T00:00:00Z"), to: at("2031-04-01T00:00:00Z"), filter: { userId: user } }
      const weeks = yield* audit.getChangeStats({ ...range, bucket: "week", groupBy: "userId" })
      assert.deepStrictEqual(
        weeks.buckets.map((bucket) => [iso(bucket.start), bucket.key, bucket.count]),
        [
          ["2031-02-24T00:00:00.000Z", user, 2],
          ["2031-03-03T00:00:00.000Z", user, 1]
        ]
      )
      const months = yield* audit.getChangeStats({ ...range, bucket: "month" })
      assert.deepStrictEqual(
        months.buckets.map((bucket) => [iso(bucket.start), bucket.count]),
        [
          ["2031-02-01T00:00:00.000Z", 1],
          ["2031-03-01T00:00:00.000Z", 2]
        ]
      )
      const hours = yield* audit.getChangeStats({ ...range, from: at("2031-03-02T22:30:00Z"), bucket: "hour" })
      assert.deepStrictEqual(
        hours.buckets.map((bucket) => [iso(bucket.start), bucket.count]),
        [
          ["2031-03-02T23:00:00.000Z", 1],
          ["2031-03-03T00:00:00.000Z", 1]
        ]
      )
    })
  )

  it.effect("refuses an empty or reversed range, too many buckets, and a bad top or filter, as InvalidQuery", () =>
    Effect.gen(function* () {
      const audit = yield* AuditService
      const refusal = (options: Parameters<typeof audit.getChangeStats>[0]) =>
        audit.getChangeStats(options).pipe(
          Effect.flip,
          Effect.map((error) => (error._tag === "InvalidQuery" ? error.field : error._tag))
        )
      const from = at("2030-01-01T00:00:00Z")
      assert.strictEqual(yield* refusal({ from, to: from, bucket: "day" }), "from")
      assert.strictEqual(yield* refusal({ from, to: at("2029-01-01T00:00:00Z"), bucket: "day" }), "from")
      // 1,000 hours fit; one more does not.
      const edge = DateTime.add(from, { hours: maxStatsBuckets })
      assert.strictEqual((yield* audit.getChangeStats({ from, to: edge, bucket: "hour" })).total, 0)
      assert.strictEqual(yield* refusal({ from, to: DateTime.add(edge, { milliseconds: 1 }), bucket: "hour" }), "to")
      assert.strictEqual(yield* refusal({ from, to: at("2200-01-01T00:00:00Z"), bucket: "month" }), "to")
      assert.strictEqual(yield* refusal({ from, to: edge, bucket: "hour", top: 0 }), "top")
      assert.strictEqual(yield* refusal({ from, to: edge, bucket: "hour", top: 101 }), "top")
      assert.strictEqual(yield* refusal({ from, to: edge, bucket: "fortnight" as "week" }), "bucket")
      assert.strictEqual(yield* refusal({ from, to: edge, bucket: "day", groupBy: "reason" as "userId" }), "groupBy")
      assert.strictEqual(yield* refusal({ from, to: edge, bucket: "day", filter: { userId: "nobody" } }), "userId")
      assert.strictEqual(
        yield* refusal({ from, to: edge, bucket: "day", filter: { aggregateTypes: ["x"] } as never }),
        "aggregateTypes"
      )
    })
  )
})
