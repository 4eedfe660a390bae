import { assert, describe, it } from "@effect/vitest"
import { generateEventId } from "../src/internal/store/uuid.ts"

const millis = (id: string) => Number.parseInt(id.replace("-", "").slice(0, 12), 16)

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("event ids", () => {
  it("are UUIDv7 with the current time, strictly increasing even within one millisecond", () => {
    const before = Date.now()
    // Far more than one millisecond holds: most of these share their millisecond with the previous one, and some
    // with 4,096 others, which carries the timestamp forward.
    const ids = Array.from({ length: 20_000 }, generateEventId)
    const after = Date.now()
    for (const id of ids) assert.match(id, v7)
    for (let i = 1; i < ids.length; i++) assert.isTrue(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`)
    assert.isAtLeast(millis(ids[0]!), before)
    // Carried forward by at most one millisecond per 4,096 ids.
    assert.isAtMost(millis(ids.at(-1)!), after + Math.ceil(ids.length / 4096))
    assert.strictEqual(new Set(ids.map((id) => id.slice(19))).size, ids.length)
  })
})
