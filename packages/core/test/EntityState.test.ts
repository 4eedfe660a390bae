/**
 * The conventions' fold: a CREATE then the diffs of any sequence of states rebuild the last state, through the JSON
 * the store keeps (a removed field's `new` is left out); a DELETE keeps the fields and says so; events that do not
 * follow the conventions change nothing and are counted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import * as EntityState from "../src/EntityState.ts"
import * as Payload from "../src/Payload.ts"
import * as Projection from "../src/Projection.ts"

type Fields = Record<string, Schema.Json>

// `__proto__` among the keys: the fold must keep it as data.
const key = fc.constantFrom("name", "email", "phone", "city", "__proto__", 'a,b "c"\n', "名前")
const value: fc.Arbitrary<Schema.Json> = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 })
)
const record: fc.Arbitrary<Fields> = fc.array(fc.tuple(key, value), { maxLength: 6 }).map((entries) => {
  const fields: Fields = {}
  for (const [k, v] of entries) Object.defineProperty(fields, k, { value: v, enumerable: true, writable: true })
  return fields
})

/** What the store gives back: the JSON text's reading of the payload. */
const stored = (data: unknown): unknown => JSON.parse(JSON.stringify(data))

const events = (states: ReadonlyArray<Fields>): Array<EntityState.FoldedEvent> => {
  const [first, ...rest] = states
  if (first === undefined) return []
  const folded: Array<EntityState.FoldedEvent> = [
    { eventType: "organization.created", data: stored(first), streamVersion: 1 }
  ]
  let previous = first
  for (const next of rest) {
    const changes = Payload.diff(previous, next)
    if (Option.isSome(changes)) {
      folded.push({ eventType: "organization.updated", data: stored(changes.value), streamVersion: folded.length + 1 })
    }
    previous = next
  }
  return folded
}

const own = (fields: object): Array<[string, unknown]> =>
  Object.getOwnPropertyNames(fields)
    .toSorted()
    .map((name) => [name, Reflect.get(fields, name)])

describe("EntityState", () => {
  it("a CREATE then the diffs of any states rebuild the last state", () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (states) => {
        const history = events(states)
        const state = Projection.fold(EntityState.projection, history)
        assert.deepStrictEqual(own(state.fields), own(states.at(-1) ?? {}))
        assert.strictEqual(Object.getPrototypeOf(state.fields), Object.prototype)
        assert.strictEqual(state.status, "exists")
        assert.strictEqual(state.events, history.length)
        assert.strictEqual(state.streamVersion, history.length)
        assert.strictEqual(state.ignored, 0)
      })
    )
  })

  it("the state as of any event is the fold of the events up to it", () => {
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), fc.nat(), (states, cut) => {
        const history = events(states)
        const upTo = (cut % history.length) + 1
        const state = Projection.fold(EntityState.projection, history.slice(0, upTo))
        // The states that produced those events: the last one whose diff was emitted at or before the cut.
        const rebuilt = Projection.fold(EntityState.projection, events(states).slice(0, upTo))
        assert.deepStrictEqual(state, rebuilt)
        assert.strictEqual(state.streamVersion, upTo)
      })
    )
  })

  it("a DELETE keeps the fields it deleted; events outside the conventions change nothing and are counted", () => {
    fc.assert(
      fc.property(
        record,
        fc.array(
          fc.tuple(
            fc.constantFrom("organization.gst.added", "organization.updated", "organization.renamed"),
            fc.jsonValue()
          ),
          { maxLength: 5 }
        ),
        (fields, others) => {
          const created: EntityState.FoldedEvent = {
            eventType: "organization.created",
            data: stored(fields),
            streamVersion: 1
          }
          // An `updated` whose payload is no `changes` object is not an UPDATE.
          const noise = others
            .filter(
              ([type, data]) =>
                type !== "organization.updated" ||
                EntityState.kindOf({ eventType: type, data, streamVersion: 0 }) === "other"
            )
            .map(([eventType, data], index) => ({ eventType, data, streamVersion: index + 2 }))
          const before = Projection.fold(EntityState.projection, [created, ...noise])
          assert.deepStrictEqual(own(before.fields), own(fields))
          assert.strictEqual(before.ignored, noise.length)
          const deleted = EntityState.apply(before, {
            eventType: "organization.deleted",
            data: { name: "x", deletedAt: "2025-01-01T00:00:00.000Z" },
            streamVersion: noise.length + 2
          })
          assert.strictEqual(deleted.status, "deleted")
          assert.deepStrictEqual(own(deleted.fields), own(fields))
          assert.strictEqual(deleted.streamVersion, noise.length + 2)
        }
      )
    )
  })

  it("an entity with no events is absent", () => {
    assert.deepStrictEqual(Projection.fold(EntityState.projection, []), EntityState.initial)
  })
})
