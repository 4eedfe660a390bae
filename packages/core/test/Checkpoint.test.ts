/**
 * The log's checkpoint: its string form, which clients hand back (SSE ids, stored progress), and its order.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Checkpoint from "../src/Checkpoint.ts"

describe("Checkpoint", () => {
  it.effect("round-trips through its string form, which is opaque", () =>
    Effect.gen(function* () {
      for (const checkpoint of [
        Checkpoint.start,
        Checkpoint.make(759n, 12n),
        Checkpoint.make(9223372036854775807n, Checkpoint.endOfCommit)
      ]) {
        const text = Checkpoint.encode(checkpoint)
        assert.notInclude(text, String(checkpoint.globalPosition))
        assert.deepStrictEqual(yield* Checkpoint.decode(text), checkpoint)
      }
    })
  )

  it.effect("anything Annal did not produce is InvalidCursor", () =>
    Effect.gen(function* () {
      for (const text of ["", "12", "annal.feed.v2:1:2", btoa("annal.feed.v2:1"), btoa("annal.feed.v2:-1:2")]) {
        const error = yield* Effect.flip(Checkpoint.decode(text))
        assert.strictEqual(error._tag, "InvalidCursor")
      }
      const tooLarge = Checkpoint.encode(Checkpoint.make(1n, 9223372036854775808n))
      assert.strictEqual((yield* Effect.flip(Checkpoint.decode(tooLarge)))._tag, "InvalidCursor")
    })
  )

  it.effect("a checkpoint of the first format is not decoded without the database, but is recognised", () =>
    Effect.gen(function* () {
      const legacy = btoa("annal.feed.v1:759:12").replaceAll("=", "")
      assert.strictEqual((yield* Effect.flip(Checkpoint.decode(legacy)))._tag, "InvalidCursor")
      assert.deepStrictEqual(Checkpoint.decodeLegacy(legacy), { transactionId: 759n, globalPosition: 12n })
      assert.strictEqual(Checkpoint.decodeLegacy(Checkpoint.encode(Checkpoint.make(1n, 2n))), undefined)
    })
  )

  it("orders by commit sequence first, then global position", () => {
    const a = Checkpoint.make(5n, 100n)
    const b = Checkpoint.make(6n, 1n)
    assert.strictEqual(Checkpoint.compare(a, b), -1)
    assert.strictEqual(Checkpoint.compare(b, a), 1)
    assert.strictEqual(Checkpoint.compare(a, { ...a }), 0)
    assert.strictEqual(Checkpoint.compare(Checkpoint.make(5n, 0n), a), -1)
    assert.deepStrictEqual(Checkpoint.max(a, b), b)
  })

  it("has a JSON form that carries both numbers exactly", () => {
    const checkpoint = Checkpoint.make(9223372036854775807n, 3n)
    assert.deepStrictEqual(Checkpoint.toJson(checkpoint), {
      commitSequence: "9223372036854775807",
      globalPosition: "3"
    })
    assert.deepStrictEqual(Checkpoint.fromJson(Checkpoint.toJson(checkpoint)), checkpoint)
  })
})
