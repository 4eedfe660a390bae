/**
 * Where the events live: the schema and table name, so an application can keep its audit trail where it wants.
 * The store, the migrations and every query read it when their layer is built.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"

/** The schema and table that hold the events. */
export interface EventTableConfig {
  readonly schema: string
  readonly table: string
}

/** The events table in use; `public.events` unless provided. */
export const EventTable = Context.Reference<EventTableConfig>("@annal/core/EventTable", {
  defaultValue: () => ({ schema: "public", table: "events" })
})

/** Keeps the events in `schema.table` (`table` defaults to `events`). */
export const layer = (config: { readonly schema: string; readonly table?: string }): Layer.Layer<never> =>
  Layer.succeed(EventTable, { schema: config.schema, table: config.table ?? "events" })

/** The qualified name of a relation that lives beside the events table, such as its migrations table. */
export const qualify = (config: EventTableConfig, name: string): string => `${config.schema}.${name}`
