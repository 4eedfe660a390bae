import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as DateTime from "effect/DateTime"
import * as Event from "../src/Event.ts"
import * as EventRegistry from "../src/EventRegistry.ts"
import * as Payload from "../src/Payload.ts"
import {
  Organization,
  OrganizationCreated,
  OrganizationEvents,
  OrganizationUpdated,
  OrganizationV1
} from "./support/Fixtures.ts"

const applyChanges = (before: Organization, { changes }: Payload.Changes<Organization>): Organization => ({
  name: changes.name === undefined ? before.name : changes.name.new,
  type: changes.type === undefined ? before.type : changes.type.new,
  email: changes.email === undefined ? before.email : changes.email.new,
  country: changes.country === undefined ? before.country : changes.country.new
})

const stored = (eventType: string, version: number, data: Schema.Json): Event.RawEvent => ({
  eventId: "00000000-0000-7000-8000-000000000000",
  eventType,
  aggregateId: "00000000-0000-7000-8000-000000000001",
  aggregateType: "organization",
  userId: "00000000-0000-7000-8000-000000000002",
  timestamp: DateTime.makeUnsafe(0),
  version,
  data,
  metadata: {},
  streamVersion: 1,
  globalPosition: 1n,
  transactionId: 1n,
  recordedAt: DateTime.makeUnsafe(0)
})

describe("Payload", () => {
  it.prop(
    "diff then apply gives back the new state; diff of equal states is none",
    [Organization, Organization],
    ([before, after]) => {
      const changes = Payload.diff(before, after)
      assert.deepStrictEqual(
        Option.match(changes, { onNone: () => before, onSome: (c) => applyChanges(before, c) }),
        after
      )
      assert.isTrue(Option.isNone(Payload.diff(after, { ...after })))
      if (Option.isSome(changes)) {
        const keys = Object.keys(changes.value.changes).toSorted()
        const differing = Object.keys(before)
          .filter((k) => Reflect.get(before, k) !== Reflect.get(after, k))
          .toSorted()
        assert.deepStrictEqual(keys, differing)
      }
    }
  )

  it.effect.prop(
    "an UPDATE payload survives encoding and decoding through the registry",
    [Organization, Organization],
    ([before, after]) =>
      Effect.gen(function* () {
        const changes = Payload.diff(before, after)
        if (Option.isNone(changes)) return
        const encoded = yield* OrganizationUpdated.make({ aggregateId: "a", data: changes.value }).encode
        const decoded = yield* OrganizationEvents.decode(
          stored("organization.updated", 1, JSON.parse(JSON.stringify(encoded)))
        )
        assert.deepStrictEqual(decoded.data, changes.value)
      })
  )

  it.effect.prop("a v1 organization reads as v2 with the step's default", [OrganizationV1], ([v1]) =>
    Effect.gen(function* () {
      const decoded = yield* OrganizationEvents.decode(stored("organization.created", 1, { ...v1 }))
      assert.deepStrictEqual(decoded.data, { ...v1, country: "IN" })
      assert.strictEqual(decoded.version, 2)
      const current = yield* OrganizationEvents.decode(stored("organization.created", 2, { ...v1, country: "FR" }))
      assert.deepStrictEqual(current.data, { ...v1, country: "FR" })
    })
  )

  it.effect("a v1 payload that fails the v1 schema is a decode error, not a silently upcast value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(OrganizationEvents.decode(stored("organization.created", 1, { name: 42 })))
      assert.strictEqual(error._tag, "EventDecodeError")
    })
  )

  it("a registry refuses two different definitions of one type", () => {
    assert.throws(() => EventRegistry.make(OrganizationCreated, { ...OrganizationCreated }))
  })

  it.effect("Deleted carries a name and deletedAt as an ISO string", () =>
    Effect.gen(function* () {
      const encoded = yield* Schema.encodeEffect(Payload.Deleted)({
        name: "Acme",
        deletedAt: DateTime.makeUnsafe("2025-11-21T10:30:00Z")
      })
      assert.deepStrictEqual(encoded, { name: "Acme", deletedAt: "2025-11-21T10:30:00.000Z" })
    })
  )
})
