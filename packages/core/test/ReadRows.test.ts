/**
 * The mapping of a selected row to a raw event (`decodeRows`): a well-formed row is taken by the hand check, and a
 * row missing any column, or with any column of the wrong type, is refused as an unexpected row, never mapped with
 * a hole in it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { decodeRows } from "../src/internal/store/read.ts"

const row = {
  id: "018f2a4e-0000-7000-8000-000000000001",
  event_type: "organization.gst.added",
  aggregate_id: "018f2a4e-0000-7000-8000-000000000002",
  aggregate_type: "organization",
  user_id: "018f2a4e-0000-7000-8000-000000000003",
  timestamp: new Date("2026-12-07T10:00:00.000Z"),
  version: 1,
  data: { gstin: "29ABCDE1234F1Z5", state: "KA" },
  metadata: { reason: "import" },
  stream_version: 3,
  global_position: "42",
  transaction_id: "9001",
  recorded_at: new Date("2026-12-07T10:00:01.000Z")
}

const wrong: Readonly<Record<keyof typeof row, unknown>> = {
  id: 1,
  event_type: null,
  aggregate_id: 2,
  aggregate_type: undefined,
  user_id: {},
  timestamp: new Date(Number.NaN),
  version: 1.5,
  data: () => 1,
  metadata: { reason: 7 },
  stream_version: "3",
  global_position: "4x",
  transaction_id: "",
  recorded_at: "not a date"
}

describe("decodeRows", () => {
  it.effect("maps a well-formed row", () =>
    Effect.gen(function* () {
      const [event] = yield* decodeRows([row])
      assert.strictEqual(event?.eventId, row.id)
      assert.strictEqual(event?.globalPosition, 42n)
      assert.strictEqual(event?.transactionId, 9001n)
      assert.strictEqual(event?.streamVersion, 3)
      assert.deepStrictEqual(event?.data, row.data)
      assert.deepStrictEqual(event?.metadata, { reason: "import" })
      assert.isTrue(DateTime.isDateTime(event?.timestamp))
      assert.strictEqual(event === undefined ? 0 : DateTime.toEpochMillis(event.recordedAt), row.recorded_at.getTime())
    })
  )

  it.effect("refuses a row missing any column, or with any column of the wrong type", () =>
    Effect.gen(function* () {
      for (const column of Object.keys(wrong) as ReadonlyArray<keyof typeof row>) {
        const { [column]: _, ...missing } = row
        for (const bad of [missing, { ...row, [column]: wrong[column] }]) {
          const error = yield* Effect.flip(decodeRows([row, bad], "Test.read"))
          assert.strictEqual(error._tag, "StorageError", column)
          assert.strictEqual(error.reason._tag, "UnexpectedRow", column)
          assert.strictEqual(error.operation, "Test.read", column)
        }
      }
    })
  )
})
