/**
 * The business of the commit-order proof: entries of shared ledgers, written by `OrderingWriter.ts` in child
 * processes, each transaction with a row of the business table.
 */
import * as Schema from "effect/Schema"
import * as EventDefinition from "../../../packages/core/src/EventDefinition.ts"

/** One entry of a shared ledger: which writer wrote it, and its number in that writer's sequence. */
export const EntryAdded = EventDefinition.make("ledger.entry_added", {
  aggregateType: "ledger",
  schema: Schema.Struct({ writer: Schema.Int, n: Schema.Int })
})

/** The business table each transaction also writes. */
export const businessTable = (schema: string): string => `${schema}.business`
