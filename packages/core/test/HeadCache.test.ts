/**
 * The cache of stream heads behind the one-statement batch append: what it guesses for streams it knows and does
 * not know, under each expected version, and that it stays within its capacity, dropping the least recently written.
 */
import { assert, describe, it } from "@effect/vitest"
import * as HeadCache from "../src/internal/store/heads.ts"

const stream = (id: string) => ({ aggregate_type: "organization", aggregate_id: id })
const head = (id: string, version: number) => ({ ...stream(id), version, hash: `${version}`.padStart(64, "0") })

describe("HeadCache", () => {
  it("assumes an unknown stream new, and a known one at its remembered head", () => {
    const cache = HeadCache.make()
    cache.remember([head("a", 5)])
    assert.deepStrictEqual(cache.guess([stream("a"), stream("b")], -1), [
      head("a", 5),
      { ...stream("b"), version: 0, hash: null }
    ])
  })

  it("guesses nothing it cannot know under an expected version", () => {
    const cache = HeadCache.make()
    cache.remember([head("a", 5)])
    assert.deepStrictEqual(cache.guess([stream("a")], 5), [head("a", 5)])
    // A remembered head at another version: stale, or a conflict; the heads read from the table tell which.
    assert.isUndefined(cache.guess([stream("a")], 4))
    // An unknown stream is known to be at 0 only when 0 is expected.
    assert.deepStrictEqual(cache.guess([stream("b")], 0), [{ ...stream("b"), version: 0, hash: null }])
    assert.isUndefined(cache.guess([stream("b")], 3))
  })

  it("forgets streams, and keeps at most its capacity, the least recently written going first", () => {
    const cache = HeadCache.make(2)
    cache.remember([head("a", 1), head("b", 1)])
    cache.remember([head("a", 2)])
    cache.remember([head("c", 1)])
    // b was written least recently, so it went; a and c are remembered.
    assert.deepStrictEqual(cache.guess([stream("a"), stream("b"), stream("c")], -1), [
      head("a", 2),
      { ...stream("b"), version: 0, hash: null },
      head("c", 1)
    ])
    cache.forget([stream("a")])
    assert.deepStrictEqual(cache.guess([stream("a")], -1), [{ ...stream("a"), version: 0, hash: null }])
  })
})
