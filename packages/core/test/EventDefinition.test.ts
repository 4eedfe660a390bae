import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as EventDefinition from "../src/EventDefinition.ts"

const V1 = Schema.Struct({ name: Schema.String })
const V2 = Schema.Struct({ name: Schema.String, country: Schema.String })
const V3 = Schema.Struct({ name: Schema.String, country: Schema.String, since: Schema.Int })

describe("EventDefinition", () => {
  it("numbers versions from 1 and keeps a decoder for every stored version", () => {
    const defined = EventDefinition.make("organization.created", { aggregateType: "organization", schema: V1 })
      .evolve(V2, (v1) => ({ ...v1, country: "IN" }))
      .evolve(V3, (v2) => ({ ...v2, since: 2020 }))
    assert.strictEqual(defined.version, 3)
    assert.deepStrictEqual([...defined.decoders.keys()].toSorted(), [1, 2, 3])
    assert.deepStrictEqual(Schema.decodeUnknownSync(defined.decoders.get(1)!)({ name: "a" }), {
      name: "a",
      country: "IN",
      since: 2020
    })
    assert.strictEqual(defined.make({ aggregateId: "x", data: { name: "a", country: "FR", since: 1 } }).version, 3)
  })

  it("a step that does not produce the next version does not compile", () => {
    const base = EventDefinition.make("organization.created", { aggregateType: "organization", schema: V1 })
    // @ts-expect-error: the step leaves out `country`, which version 2 requires.
    base.evolve(V2, (v1) => ({ name: v1.name }))
    // @ts-expect-error: the step reads a field that version 1 does not have.
    base.evolve(V2, (v1) => ({ name: v1.title, country: "IN" }))
    assert.strictEqual(base.version, 1)
  })

  it("a step may return a literal of the next version's schema, without `as const`, and only one it allows", () => {
    const Status = Schema.Struct({ name: Schema.String, status: Schema.Literals(["open", "closed"]) })
    const base = EventDefinition.make("ticket.opened", { aggregateType: "ticket", schema: V1 })
    const defined = base.evolve(Status, (v1) => ({ ...v1, status: "open" }))
    assert.deepStrictEqual(Schema.decodeUnknownSync(defined.decoders.get(1)!)({ name: "a" }), {
      name: "a",
      status: "open"
    })
    // @ts-expect-error: "pending" is not one of the statuses version 2 allows.
    base.evolve(Status, (v1) => ({ ...v1, status: "pending" }))
  })

  it("an event type that is not lowercase dotted segments does not compile", () => {
    // @ts-expect-error: uppercase and a space.
    EventDefinition.make("Organization Created", { aggregateType: "organization", schema: V1 })
    // @ts-expect-error: no action segment.
    EventDefinition.make("organization", { aggregateType: "organization", schema: V1 })
    assert.ok(EventDefinition.make("organization.gst.added", { aggregateType: "organization", schema: V1 }))
  })

  it("an event made with data of the wrong type does not compile", () => {
    const defined = EventDefinition.make("organization.created", { aggregateType: "organization", schema: V1 })
    // @ts-expect-error: name must be a string.
    defined.make({ aggregateId: "x", data: { name: 1 } })
    assert.strictEqual(defined.eventType, "organization.created")
  })
})
