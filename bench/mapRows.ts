/**
 * `node --conditions=@annal/source bench/mapRows.ts [events]`: the client's per-event work of a read alone, without
 * a database: rows shaped as the driver gives them are mapped (`decodeRows`), decoded through a registry
 * (`EventRegistry.decodeAll`) and, for the feed, given their checkpoints and entries. Prints ns per event per step.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as EventDefinition from "../packages/core/src/EventDefinition.ts"
import * as EventRegistry from "../packages/core/src/EventRegistry.ts"
import { decodeRows } from "../packages/core/src/internal/store/read.ts"

const events = Number(process.argv[2] ?? "100000")
const GstAdded = EventDefinition.make("organization.gst.added", {
  aggregateType: "organization",
  schema: Schema.Struct({ gstin: Schema.String, state: Schema.String })
})
const Events = EventRegistry.make(GstAdded)

const rowsOf = (page: number) =>
  Array.from({ length: 1000 }, (_, i) => ({
    id: "0190a6f0-0000-7000-8000-000000000000",
    event_type: "organization.gst.added",
    aggregate_id: "0190a6f0-0000-7000-8000-000000000001",
    aggregate_type: "organization",
    user_id: "0190a6f0-0000-7000-8000-000000000002",
    timestamp: new Date(1.7e12 + page * 1000 + i),
    version: 1,
    data: { gstin: String(page * 1000 + i), state: "KA" },
    metadata: {},
    stream_version: i + 1,
    global_position: String(page * 1000 + i + 1),
    transaction_id: "1234",
    recorded_at: new Date(1.7e12 + page)
  }))

const pages = Array.from({ length: events / 1000 }, (_, page) => rowsOf(page))
const time = (name: string, f: (rows: ReadonlyArray<unknown>) => unknown) => {
  for (let round = 0; round < 5; round++) {
    const start = performance.now()
    for (const rows of pages) f(rows)
    const ns = ((performance.now() - start) * 1e6) / events
    if (round >= 3) console.log(`${name}: ${ns.toFixed(0)} ns/event`)
  }
}
const rawOf = (rows: ReadonlyArray<unknown>) => Effect.runSync(decodeRows(rows))
time("decodeRows", rawOf)
const raws = pages.map(rawOf)
let index = 0
time("decodeAll", () => Effect.runSync(EventRegistry.decodeAll(Events, raws[index++ % raws.length]!)))
time("both", (rows) => Effect.runSync(EventRegistry.decodeAll(Events, Effect.runSync(decodeRows(rows)))))
