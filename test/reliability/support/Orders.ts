/**
 * The business of the process-killed test: orders, each a row of the business table and one event per line, written
 * by `WriterProcess.ts` in a child process and checked by the test after the kills.
 */
import * as Schema from "effect/Schema"
import * as EventDefinition from "../../../packages/core/src/EventDefinition.ts"

/** One line of an order; `lines` says how many the order has, so a partial batch shows in the table itself. */
export const OrderLineAdded = EventDefinition.make("order.line_added", {
  aggregateType: "order",
  schema: Schema.Struct({ line: Schema.Int, lines: Schema.Int })
})

/** The writers the test can start: the real one and two broken ones (see `WriterProcess.ts`). */
export const Mode = Schema.Literals(["transaction", "outside", "early-ack"])
export type Mode = typeof Mode.Type

/** The business table, beside the events table. */
export const ordersTable = (schema: string): string => `${schema}.orders`
