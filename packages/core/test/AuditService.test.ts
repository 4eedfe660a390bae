import { assert, layer } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { AuditService } from "../src/AuditService.ts"
import type * as EventRegistry from "../src/EventRegistry.ts"
import { EventEmitter } from "../src/EventEmitter.ts"
import * as Projection from "../src/Projection.ts"
import {
  GstAdded,
  type Organization,
  OrganizationCreated,
  OrganizationEvents,
  OrganizationUpdated,
  uuid
} from "./support/Fixtures.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

type OrganizationEvent = EventRegistry.EventOf<typeof OrganizationEvents>

/** The organization as its events describe it. */
const organization = Projection.make<Option.Option<Organization>, OrganizationEvent>({
  initial: Option.none(),
  apply: (state, event) => {
    switch (event.eventType) {
      case "organization.created":
        return Option.some(event.data)
      case "organization.updated":
        return Option.map(state, (org) => {
          const { changes } = event.data
          return {
            name: changes.name === undefined ? org.name : changes.name.new,
            type: changes.type === undefined ? org.type : changes.type.new,
            email: changes.email === undefined ? org.email : changes.email.new,
            country: changes.country === undefined ? org.country : changes.country.new
          }
        })
      case "organization.deleted":
        return Option.none()
      case "organization.gst.added":
        return state
    }
  }
})

const at = (iso: string) => DateTime.makeUnsafe(iso)
const versions = (page: { readonly events: ReadonlyArray<{ readonly streamVersion: number }> }) =>
  page.events.map((e) => e.streamVersion)
const acme: Organization = { name: "Acme", type: "corporation", email: "a@acme.test", country: "IN" }

layer(TestDatabase.layer())(`AuditService (${TestDatabase.engine})`, (it) => {
  it.effect("entity history, state as of a past moment, user activity, recent changes and counts", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const [org, other, alice, bob] = [uuid(), uuid(), uuid(), uuid()]
      const now = yield* DateTime.now
      yield* emitter.emit({
        ...OrganizationCreated.make({ aggregateId: org, userId: alice, data: acme }),
        timestamp: at("2026-01-01T00:00:00Z")
      })
      yield* emitter.emit({
        ...OrganizationUpdated.make({
          aggregateId: org,
          userId: bob,
          data: { changes: { email: { old: "a@acme.test", new: "b@acme.test" } } }
        }),
        timestamp: at("2026-02-01T00:00:00Z")
      })
      yield* emitter.emit(
        GstAdded.make({ aggregateId: org, userId: bob, data: { gstin: "29A", state: "KA" }, timestamp: now })
      )
      yield* emitter.emit(OrganizationCreated.make({ aggregateId: other, userId: alice, data: acme, timestamp: now }))

      const history = (yield* audit.getEntityHistory(OrganizationEvents, "organization", org)).events
      assert.deepStrictEqual(
        history.map((e) => e.eventType),
        ["organization.created", "organization.updated", "organization.gst.added"]
      )
      assert.deepStrictEqual(Projection.fold(organization, history), Option.some({ ...acme, email: "b@acme.test" }))
      const january = yield* audit.getEntityStateAsOf(OrganizationEvents, "organization", org, {
        projection: organization,
        asOf: at("2026-01-15T00:00:00Z")
      })
      assert.deepStrictEqual(january, Option.some(acme))
      const before = yield* audit.getEntityStateAsOf(OrganizationEvents, "organization", org, {
        projection: organization,
        asOf: at("2025-12-31T00:00:00Z")
      })
      assert.deepStrictEqual(before, Option.none())

      const activity = yield* audit.getUserActivity(OrganizationEvents, bob, { limit: 1 })
      assert.deepStrictEqual(
        activity.events.map((e) => e.eventType),
        ["organization.gst.added"]
      )
      assert.isTrue(Option.isSome(activity.nextCursor))
      const older = yield* audit.getUserActivity(OrganizationEvents, bob, {
        limit: 1,
        cursor: Option.getOrThrow(activity.nextCursor)
      })
      assert.deepStrictEqual(
        older.events.map((e) => e.eventType),
        ["organization.updated"]
      )

      const recent = yield* audit.getRecentChanges(OrganizationEvents, { hours: 24, aggregateType: "organization" })
      // Of this test's events, the last day's, newest first; under the test clock the dated ones are in the future.
      assert.deepStrictEqual(
        recent.events
          .filter((e) => e.aggregateId === org || e.aggregateId === other)
          .map((e) => [e.eventType, e.aggregateId]),
        [
          ["organization.created", other],
          ["organization.gst.added", org],
          ["organization.updated", org],
          ["organization.created", org]
        ]
      )
      assert.isTrue(
        recent.events.every((e) => DateTime.isGreaterThanOrEqualTo(e.timestamp, DateTime.subtract(now, { hours: 24 })))
      )
      const badHours = yield* Effect.flip(audit.getRecentChanges(OrganizationEvents, { hours: 0 }))
      assert.strictEqual(badHours._tag, "InvalidQuery")

      assert.strictEqual(yield* audit.getChangeCount({ aggregateType: "organization", aggregateId: org }), 3)
      assert.strictEqual(yield* audit.getChangeCount({ userId: alice }), 2)
      assert.strictEqual(
        yield* audit.getChangeCount({ aggregateId: org, userId: bob, eventTypes: ["organization.updated"] }),
        1
      )
    })
  )

  it.effect("recent changes are the window's only: an event from before it is left out, one on its edge is in", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const [early, outside, edge, inside, user] = [uuid(), uuid(), uuid(), uuid(), uuid()]
      const created = (aggregateId: string, timestamp?: DateTime.Utc) => ({
        ...OrganizationCreated.make({ aggregateId, userId: user, data: acme }),
        ...(timestamp === undefined ? {} : { timestamp })
      })
      // The test clock's now, which the service reads too; the events before the window are dated explicitly.
      const now = yield* DateTime.now
      const windowStart = DateTime.subtract(now, { hours: 24 })
      yield* emitter.emit(created(early, DateTime.subtract(now, { hours: 25 })))
      yield* emitter.emit(created(outside, DateTime.subtract(windowStart, { milliseconds: 1 })))
      yield* emitter.emit(created(edge, windowStart))
      yield* emitter.emit(created(inside))

      const recent = yield* audit.getRecentChanges(OrganizationEvents, { hours: 24 })
      // Newest first, and only this test's user: the table is the file's, and other tests write to it too.
      assert.deepStrictEqual(
        recent.events.filter((e) => e.userId === user).map((e) => e.aggregateId),
        [inside, edge]
      )
      const wider = yield* audit.getRecentChanges(OrganizationEvents, { hours: 26 })
      assert.deepStrictEqual(
        wider.events.filter((e) => e.userId === user).map((e) => e.aggregateId),
        [inside, edge, outside, early]
      )
    })
  )

  it.effect("an aggregate's history pages oldest first, with asOf inclusive and applied before the page is cut", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const [org, user] = [uuid(), uuid()]
      const dates = ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00.001Z"]
      yield* emitter.emit({
        ...OrganizationCreated.make({ aggregateId: org, userId: user, data: acme }),
        timestamp: at(dates[0]!)
      })
      for (const [n, date] of dates.slice(1).entries()) {
        yield* emitter.emit(
          GstAdded.make({ aggregateId: org, userId: user, data: { gstin: `G${n}`, state: "KA" }, timestamp: at(date) })
        )
      }

      const first = yield* audit.getEntityHistory(OrganizationEvents, "organization", org, { limit: 2 })
      assert.deepStrictEqual(versions(first), [1, 2])
      const rest = yield* audit.getEntityHistory(OrganizationEvents, "organization", org, {
        limit: 2,
        cursor: Option.getOrThrow(first.nextCursor)
      })
      assert.deepStrictEqual(versions(rest), [3])
      assert.isTrue(Option.isNone(rest.nextCursor))

      // The third event is one millisecond after asOf, the second exactly at it: the page holds the first two and
      // knows it is the last. Filtering a page of the whole stream in memory would offer a next page of nothing.
      const asOf = at("2026-03-01T00:00:00Z")
      const until = yield* audit.getEntityHistory(OrganizationEvents, "organization", org, { limit: 2, asOf })
      assert.deepStrictEqual(versions(until), [1, 2])
      assert.isTrue(Option.isNone(until.nextCursor))
      const atEdge = yield* audit.getEntityHistory(OrganizationEvents, "organization", org, {
        asOf: at("2026-02-01T00:00:00Z")
      })
      assert.deepStrictEqual(versions(atEdge), [1, 2])

      const streamed = yield* Stream.runCollect(
        audit.streamEntityHistory(OrganizationEvents, "organization", org, { asOf })
      )
      assert.deepStrictEqual(
        streamed.map((e) => e.streamVersion),
        [1, 2]
      )
      const gstins = Projection.make<ReadonlyArray<string>, OrganizationEvent>({
        initial: [],
        apply: (state, event) => (event.eventType === "organization.gst.added" ? [...state, event.data.gstin] : state)
      })
      assert.deepStrictEqual(
        yield* audit.getEntityStateAsOf(OrganizationEvents, "organization", org, { projection: gstins, asOf }),
        ["G0"]
      )
    })
  )

  it.effect("getEvents pages the events that match a filter, in either direction", () =>
    Effect.gen(function* () {
      const emitter = yield* EventEmitter
      const audit = yield* AuditService
      const [a, b, user] = [uuid(), uuid(), uuid()]
      yield* emitter.emit(OrganizationCreated.make({ aggregateId: a, userId: user, data: acme }))
      yield* emitter.emit(OrganizationCreated.make({ aggregateId: b, userId: user, data: acme }))
      yield* emitter.emit(GstAdded.make({ aggregateId: a, userId: user, data: { gstin: "G", state: "KA" } }))

      const created = { userId: user, eventTypes: ["organization.created"] }
      const forward = yield* audit.getEvents(OrganizationEvents, created)
      assert.deepStrictEqual(
        forward.events.map((e) => e.aggregateId),
        [a, b]
      )
      const backward = yield* audit.getEvents(OrganizationEvents, created, { direction: "backward", limit: 1 })
      assert.deepStrictEqual(
        backward.events.map((e) => e.aggregateId),
        [b]
      )
      assert.isTrue(Option.isSome(backward.nextCursor))
      assert.strictEqual(yield* audit.getChangeCount({ userId: user, aggregateId: a }), 2)
    })
  )
})
