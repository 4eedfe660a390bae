import { assert, describe, it } from "@effect/vitest"
import * as Trail from "../app/Trail.ts"

const event = (eventId: string, causationId?: string): Trail.TrailEvent => ({
  eventId,
  metadata: causationId === undefined ? {} : { causationId }
})

const shape = (nodes: ReadonlyArray<Trail.Node<Trail.TrailEvent>>): unknown =>
  nodes.map((node) => (node.caused.length === 0 ? node.event.eventId : { [node.event.eventId]: shape(node.caused) }))

describe("Trail", () => {
  it("nests each event under the event of the trail that caused it, in order", () => {
    const events = [event("a"), event("b", "a"), event("c"), event("d", "b"), event("e", "a")]
    assert.deepStrictEqual(shape(Trail.nest(events)), [{ a: [{ b: ["d"] }, "e"] }, "c"])
  })

  it("keeps at the top an event whose cause is outside the trail, is itself, or is in a cycle", () => {
    const events = [event("a", "elsewhere"), event("b", "b"), event("c", "d"), event("d", "c")]
    assert.deepStrictEqual(shape(Trail.nest(events)), ["a", "b", "c", "d"])
  })
})
