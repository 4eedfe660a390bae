/**
 * The chain walk of `Integrity.verify` as a fold over pages (`internal/integrity/walk.ts`), on rows built in memory:
 * where the pages are cut must not change what it finds, and a stream it calls broken must be one `findBreak` finds
 * a break in, and no other.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { scheme } from "../src/internal/integrity/chain.ts"
import { findBreak } from "../src/internal/integrity/diagnosis.ts"
import type { ReadRow } from "../src/internal/integrity/read.ts"
import * as Walk from "../src/internal/integrity/walk.ts"
import { syntheticChain } from "./support/Chains.ts"

/** How a generated stream is damaged, if at all: which row, and what is done to it. */
type Damage = { readonly at: number; readonly kind: "data" | "hash" | "version" | "drop" } | undefined

/** One stream's rows in order, genuinely chained, then damaged; rows up to `within` are before the checkpoint. */
const streamRows = (index: number, length: number, within: number, damage: Damage): ReadonlyArray<ReadRow> => {
  const aggregateId = `00000000-0000-7000-8000-${index.toString(16).padStart(12, "0")}`
  const rows = syntheticChain(aggregateId, length).map((event): ReadRow => ({
    event,
    within: event.streamVersion <= within
  }))
  if (damage === undefined || damage.at >= rows.length) return rows
  const target = rows[damage.at]!
  const damaged: ReadRow | undefined =
    damage.kind === "drop"
      ? undefined
      : {
          ...target,
          event:
            damage.kind === "data"
              ? { ...target.event, data: { n: -1 } }
              : damage.kind === "hash"
                ? { ...target.event, hash: null }
                : { ...target.event, streamVersion: target.event.streamVersion + 1 }
        }
  return [...rows.slice(0, damage.at), ...(damaged === undefined ? [] : [damaged]), ...rows.slice(damage.at + 1)]
}

const arbitraryLog = fc
  .array(
    fc.record({
      length: fc.integer({ min: 1, max: 6 }),
      within: fc.integer({ min: 0, max: 6 }),
      damage: fc.option(
        fc.record({
          at: fc.integer({ min: 0, max: 5 }),
          kind: fc.constantFrom("data" as const, "hash" as const, "version" as const, "drop" as const)
        }),
        { nil: undefined }
      )
    }),
    { minLength: 1, maxLength: 12 }
  )
  .map((streams) =>
    streams
      .map((stream, index) => streamRows(index, stream.length, stream.within, stream.damage))
      // A one-row stream whose row was dropped is no stream.
      .filter((rows) => rows.length > 0)
  )

/** Runs the walk as `Integrity.verify` does, over the rows cut into pages of `size`. */
const walk = (rows: ReadonlyArray<ReadRow>, size: number): Walk.ChainWalk => {
  const finished: Array<Walk.StreamCheck> = []
  let current: Walk.StreamCheck | undefined
  for (let start = 0; start < rows.length; start += size) {
    const page = Walk.checkPage(scheme, current, rows.slice(start, start + size))
    finished.push(...page.finished)
    current = page.current
  }
  if (current !== undefined) finished.push(current)
  return Walk.summarize(finished, rows.length)
}

describe("Integrity walk", () => {
  it("property: where the pages are cut changes nothing the walk finds", () => {
    fc.assert(
      fc.property(arbitraryLog, fc.integer({ min: 1, max: 20 }), (streams, size) => {
        const rows = streams.flat()
        assert.deepStrictEqual(walk(rows, size), walk(rows, rows.length))
      })
    )
  })

  it("property: a stream is broken for the walk exactly when findBreak finds a break in it", () => {
    fc.assert(
      fc.property(arbitraryLog, fc.integer({ min: 1, max: 20 }), (streams, size) => {
        const result = walk(streams.flat(), size)
        const broken = new Set(result.broken.map((stream) => stream.aggregateId))
        for (const rows of streams) {
          const events = rows.map((row) => row.event)
          assert.strictEqual(
            broken.has(events[0]!.aggregateId),
            findBreak(scheme, events) !== undefined,
            events[0]!.aggregateId
          )
        }
        assert.strictEqual(result.streams, streams.length)
        assert.strictEqual(result.events, streams.flat().length)
      })
    )
  })

  it("property: each stream's head is its last row at or before the checkpoint", () => {
    fc.assert(
      fc.property(arbitraryLog, fc.integer({ min: 1, max: 20 }), (streams, size) => {
        const expected = streams.flatMap((rows) => {
          const last = rows.filter((row) => row.within).at(-1)?.event
          return last === undefined
            ? []
            : [
                {
                  aggregateType: last.aggregateType,
                  aggregateId: last.aggregateId,
                  streamVersion: last.streamVersion,
                  hash: last.hash
                }
              ]
        })
        assert.deepStrictEqual(walk(streams.flat(), size).heads, expected)
      })
    )
  })
})
