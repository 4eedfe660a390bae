import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Event from "../src/Event.ts"
import * as Projection from "../src/Projection.ts"

/** A projection that keeps every event it saw, in order, so any reordering, loss or repeat shows. */
const history = Projection.make<ReadonlyArray<number>, number>({ initial: [], apply: (state, n) => [...state, n] })

/** A projection whose step does not commute, so folding in the wrong order gives a different state. */
const affine = Projection.make<number, number>({ initial: 1, apply: (state, n) => state * 3 + n })

const Ints = Schema.Array(Schema.Int.check(Schema.isBetween({ minimum: -1000, maximum: 1000 })))
const Small = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1000 }))

describe("Projection", () => {
  it.prop("folding nothing gives the initial state", [Schema.Int], ([seed]) => {
    const p = Projection.make({ initial: seed, apply: (s: number, n: number) => s + n })
    assert.strictEqual(Projection.fold(p, []), seed)
  })

  it.prop("folding a concatenation resumes from the fold of its first part", [Ints, Ints], ([xs, ys]) => {
    assert.deepStrictEqual(
      Projection.fold(history, ys, Projection.fold(history, xs)),
      Projection.fold(history, [...xs, ...ys])
    )
    assert.strictEqual(
      Projection.fold(affine, ys, Projection.fold(affine, xs)),
      Projection.fold(affine, [...xs, ...ys])
    )
  })

  it.prop("the fold keeps every event once, in order", [Ints], ([xs]) => {
    assert.deepStrictEqual(Projection.fold(history, xs), xs)
  })

  it.effect.prop(
    "folding a stream, in any chunking, equals folding the array",
    [Ints, Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))],
    ([xs, chunk]) =>
      Effect.gen(function* () {
        const streamed = yield* Projection.foldStream(affine, Stream.fromIterable(xs).pipe(Stream.rechunk(chunk)))
        assert.strictEqual(streamed, Projection.fold(affine, xs))
      })
  )

  it.prop("state as of T folds exactly the events at or before T", [Schema.Array(Small), Small], ([times, at]) => {
    const events = times.map((t, i) => fakeEvent(i, t))
    const count = Projection.make<ReadonlyArray<number>, Event.Event<"x.y", number>>({
      initial: [],
      apply: (state, event) => [...state, event.data]
    })
    const expected = times.flatMap((t, i) => (t <= at ? [i] : []))
    assert.deepStrictEqual(Projection.asOf(count, events, DateTime.makeUnsafe(at * 1000)), expected)
  })
})

const fakeEvent = (index: number, seconds: number): Event.Event<"x.y", number> => ({
  eventId: `${index}`,
  eventType: "x.y",
  aggregateId: "a",
  aggregateType: "x",
  userId: "u",
  timestamp: DateTime.makeUnsafe(seconds * 1000),
  version: 1,
  data: index,
  metadata: {},
  streamVersion: index + 1,
  globalPosition: BigInt(index + 1),
  transactionId: 1n,
  recordedAt: DateTime.makeUnsafe(0)
})
