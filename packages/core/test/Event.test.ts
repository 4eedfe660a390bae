import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as Event from "../src/Event.ts"

const take = (type: Event.EventType) => type

describe("Event's branded schemas: the store's own rules, for input read at a boundary", () => {
  const cases: ReadonlyArray<
    readonly [Schema.Codec<string, string>, (value: string) => boolean, ReadonlyArray<string>, ReadonlyArray<string>]
  > = [
    [
      Event.EventType,
      Event.isEventType,
      ["organization.created", "organization.gst.added", `a.${"b".repeat(98)}`],
      ["Organization.Created", "organization", "organization.", "a b.c", `a.${"b".repeat(99)}`]
    ],
    [
      Event.AggregateType,
      Event.isAggregateType,
      ["organization", "bank_account", "x".repeat(50)],
      ["Organization", "a.b", "1st", "", "x".repeat(51)]
    ],
    [
      Event.Uuid,
      Event.isUuid,
      ["0190a6f2-2e7c-7d1c-9a44-3c1f8e9b2d10", "0190A6F2-2E7C-7D1C-9A44-3C1F8E9B2D10"],
      ["0190a6f2-2e7c-7d1c-9a44-3c1f8e9b2d1", "0190a6f22e7c7d1c9a443c1f8e9b2d10", "not-a-uuid"]
    ]
  ]
  it("accept exactly what the store's checks accept", () => {
    for (const [schema, accepts, good, bad] of cases) {
      for (const value of good) {
        assert.isTrue(accepts(value), value)
        assert.strictEqual(Schema.decodeUnknownSync(schema)(value), value)
      }
      for (const value of bad) {
        assert.isFalse(accepts(value), value)
        assert.throws(() => Schema.decodeUnknownSync(schema)(value))
      }
    }
  })

  it("a plain string is not a branded one until it is decoded", () => {
    // @ts-expect-error: a string must be decoded (checked) to become an EventType.
    take("organization.created")
    assert.strictEqual(take(Schema.decodeUnknownSync(Event.EventType)("organization.created")), "organization.created")
  })
})
