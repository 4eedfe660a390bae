/**
 * Events the API's registry cannot decode are sent as stored and flagged, and logged once each (security issue 14,
 * "log them once"): a page that is read again and again, or a stream that meets the same row on every reconnect,
 * must not write a warning per read. The counted warnings are the ones `EventJson` writes, by event id.
 */
import { EventRegistry, EventStore } from "@annal/core"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import * as EventJson from "../src/EventJson.ts"
import { GstAdded, OrganizationEvents, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"

/** The event ids of the warnings logged while `effect` runs, in order. */
const warningsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const warned: Array<string> = []
    const collector = Logger.make((options) => {
      if (options.logLevel !== "Warn") return
      const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
      warned.push(String(annotations["eventId"]))
    })
    const result = yield* effect.pipe(Effect.provide(Logger.layer([collector])))
    return { result, warned }
  })

layer(TestDatabase.layer())(`EventJson (${TestDatabase.engine})`, (it) => {
  it.effect("an undecodable event is sent as stored and flagged on every read, and logged once", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const aggregateId = uuid()
      const appended = yield* store.append(
        Array.from({ length: 2 }, (_, i) =>
          GstAdded.make({ aggregateId, userId: uuid(), data: { gstin: `GSTIN${i}`, state: "KA" } })
        )
      )
      // A registry that knows none of the store's types: every event it reads is one it cannot decode.
      const registry = EventJson.withAuditRead(EventRegistry.make())
      const toAuditEvent = EventJson.makeToAuditEvent(registry)
      const readPage = Effect.flatMap(store.query(registry, { aggregateId }), (page) =>
        Effect.forEach(page.events, toAuditEvent)
      )
      const { result: pages, warned } = yield* warningsOf(Effect.all([readPage, readPage, readPage]))
      for (const page of pages) {
        assert.deepStrictEqual(
          page.map((event) => [event.eventId, event.decoded]),
          appended.map((event) => [event.eventId, false as const])
        )
        for (const event of page) assert.include(event.decodeError ?? "", "not registered")
      }
      // Three reads of two undecodable events: one warning for each event, the first time it is sent.
      assert.deepStrictEqual(
        warned,
        appended.map((event) => event.eventId)
      )

      // The control: the app's own registry decodes them, flags nothing and logs nothing.
      const known = EventJson.withAuditRead(OrganizationEvents)
      const decoded = yield* warningsOf(
        Effect.flatMap(store.query(known, { aggregateId }), (page) =>
          Effect.forEach(page.events, EventJson.makeToAuditEvent(known))
        )
      )
      assert.deepStrictEqual(
        decoded.result.map((event) => event.decoded),
        [undefined, undefined]
      )
      assert.deepStrictEqual(decoded.warned, [])
    })
  )
})
