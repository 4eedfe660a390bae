/**
 * Where the events live: the schema and table name, so an application can keep its audit trail where it wants.
 * Every layer that touches the table takes them as options (`EventStore.layer({ schema, table })`, and the same for
 * `Feed`, `Integrity`, `Digest` and `Migrations`); this module checks them, once, for all of them.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

/** Where a layer's events live; `public.events` unless given. */
export interface Options {
  readonly schema?: string | undefined
  readonly table?: string | undefined
}

/** A checked events table: both names are plain lowercase identifiers, safe to write into DDL and index names. */
export interface EventTable {
  readonly schema: string
  readonly table: string
}

/**
 * Schema and table names become identifiers, and prefixes of the names of the relations beside the table (its
 * chain, commits, digests), which must stay within PostgreSQL's 63 bytes; anything but a plain lowercase name is a
 * defect of the program's configuration, not of its input, so it dies when the layer is built.
 */
const identifier = /^[a-z_][a-z0-9_]{0,47}$/

/** Checks the options and fills in the defaults. */
export const make = (options?: Options): Effect.Effect<EventTable> =>
  Effect.suspend(() => {
    const schema = options?.schema ?? "public"
    const table = options?.table ?? "events"
    for (const name of [schema, table]) {
      if (!identifier.test(name)) {
        return Effect.die(new Error(`Invalid events schema or table name: ${JSON.stringify(name)}`))
      }
    }
    return Effect.succeed({ schema, table })
  })

/** Whether two checked tables are the same table. */
export const equals = (a: EventTable, b: EventTable): boolean => a.schema === b.schema && a.table === b.table

/** The qualified name of a relation that lives beside the events table, such as its migrations table. */
export const qualify = (table: EventTable, name: string): string => `${table.schema}.${name}`
