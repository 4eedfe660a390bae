/**
 * Correlation and causation, on the engine of the test project: what a consumer's handler emits through
 * `Consumer.eachEvent` carries the handled event's id as its causation id and its correlation id; `getEffects` reads
 * that back as a tree, within its bounds or with a typed error; `getCorrelation` reads one operation's events in
 * commit order, page by page.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as AuditService from "../src/AuditService.ts"
import * as Consumer from "../src/Consumer.ts"
import * as Consumers from "../src/Consumers.ts"
import * as EventContext from "../src/EventContext.ts"
import * as EventEmitter from "../src/EventEmitter.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import { GstAdded, OrganizationEvents, OrganizationUpdated, uuid } from "./support/Fixtures.ts"
import * as FeedDatabase from "./support/FeedDatabase.ts"
import * as TestDatabase from "./support/TestDatabase.ts"

const schema = TestDatabase.uniqueSchema()

const quick = {
  registry: OrganizationEvents,
  batchSize: 10,
  pollInterval: "50 millis",
  leaseDuration: "30 seconds",
  acquireInterval: "50 millis"
} as const

layer(FeedDatabase.layerWith(schema), { excludeTestServices: true })(`trails (${TestDatabase.engine})`, (it) => {
  it.effect("a handler's events carry their cause and its correlation; the effects read back as a tree", () =>
    Effect.gen(function* () {
      const consumers = yield* Consumers.Consumers
      const emitter = yield* EventEmitter.EventEmitter
      const audit = yield* AuditService.AuditService
      const correlationId = `onboarding-${uuid()}`
      const system = uuid()
      // Two consumers: one registers a GST number for each new organization, the other records each registration
      // on the organization. A chain of two causes, across two consumers and three transactions.
      const registrar = Consumer.make({
        ...quick,
        name: `registrar-${uuid()}`,
        eventTypes: ["organization.created"],
        handle: Consumer.eachEvent((event) =>
          emitter
            .emit(
              GstAdded.make({ aggregateId: event.aggregateId, userId: system, data: { gstin: "29A", state: "KA" } })
            )
            .pipe(Effect.orDie)
        )
      })
      const recorder = Consumer.make({
        ...quick,
        name: `recorder-${uuid()}`,
        eventTypes: ["organization.gst.added"],
        handle: Consumer.eachEvent((event) =>
          emitter
            .emit(
              OrganizationUpdated.make({
                aggregateId: event.aggregateId,
                userId: system,
                data: { changes: { email: { old: "a@acme.test", new: "gst@acme.test" } } }
              })
            )
            .pipe(Effect.orDie)
        )
      })
      const root = yield* emitter
        .emit(FeedDatabase.created())
        .pipe(EventContext.provide({ metadata: { correlationId, reason: "onboarding" } }))
      const running = yield* Effect.forkChild(
        Effect.all([consumers.run(registrar), consumers.run(recorder)], { concurrency: 2 })
      )
      const tree = yield* audit.getEffects(OrganizationEvents, root.eventId).pipe(
        Effect.repeat({
          schedule: Schedule.spaced("50 millis"),
          until: (found) => Option.isSome(found) && (found.value.effects[0]?.effects.length ?? 0) > 0
        }),
        Effect.timeout("30 seconds"),
        Effect.map(Option.getOrThrow)
      )
      yield* Fiber.interrupt(running)

      assert.strictEqual(tree.event.eventId, root.eventId)
      assert.strictEqual(tree.effects.length, 1)
      const [registered] = tree.effects
      assert.strictEqual(registered!.event.eventType, "organization.gst.added")
      assert.deepStrictEqual(registered!.event.metadata, { causationId: root.eventId, correlationId })
      const [recorded] = registered!.effects
      assert.strictEqual(recorded!.event.eventType, "organization.updated")
      assert.deepStrictEqual(recorded!.event.metadata, { causationId: registered!.event.eventId, correlationId })
      assert.deepStrictEqual(recorded!.effects, [])

      // Beyond its bounds the tree is refused, never cut short.
      const deep = yield* Effect.flip(audit.getEffects(OrganizationEvents, root.eventId, { maxDepth: 1 }))
      assert.deepStrictEqual(
        [deep._tag, deep._tag === "EffectsTooLarge" ? deep.bound : ""],
        ["EffectsTooLarge", "maxDepth"]
      )
      const wide = yield* Effect.flip(audit.getEffects(OrganizationEvents, root.eventId, { maxEvents: 1 }))
      assert.deepStrictEqual(
        [wide._tag, wide._tag === "EffectsTooLarge" ? wide.bound : ""],
        ["EffectsTooLarge", "maxEvents"]
      )
      assert.isTrue(Option.isNone(yield* audit.getEffects(OrganizationEvents, uuid())))

      // The operation's trail: every event of the correlation, across transactions, in commit order, a page at a time.
      const first = yield* audit.getCorrelation(EventRegistry.raw, correlationId, { limit: 2 })
      assert.deepStrictEqual(
        first.events.map((event) => event.eventId),
        [root.eventId, registered!.event.eventId]
      )
      assert.isTrue(Option.isSome(first.nextCursor))
      const second = yield* audit.getCorrelation(EventRegistry.raw, correlationId, {
        limit: 2,
        cursor: Option.getOrThrow(first.nextCursor)
      })
      assert.deepStrictEqual(
        second.events.map((event) => event.eventId),
        [recorded!.event.eventId]
      )
      assert.isTrue(Option.isNone(second.nextCursor))
      const forged = yield* Effect.flip(
        audit.getCorrelation(EventRegistry.raw, correlationId, { cursor: "bm90IGEgY3Vyc29y" })
      )
      assert.strictEqual(forged._tag, "InvalidCursor")
    })
  )
})
