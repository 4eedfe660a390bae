/**
 * The event catalog: every type a registry reads and every version of it, each described by a JSON Schema
 * (draft 2020-12) generated from its Effect Schema, with what each upcast changed from the version before. It is the
 * description of "everything the system can record" that an auditor asks for; the HTTP API serves it, types the
 * OpenAPI document's event `data` with it, and `annal catalog` prints it.
 *
 * The schemas are generated, never written by hand, so they cannot drift from what the registry decodes: the schema
 * of a stored version is the encoded side of that version's decoder, the JSON the store holds for it.
 *
 * @since 0.1.0
 */
import * as JsonSchema from "effect/JsonSchema"
import * as Schema from "effect/Schema"
import type * as EventDefinition from "./EventDefinition.ts"
import type * as EventRegistry from "./EventRegistry.ts"

/** What an upcast changed, by top-level field of the payload: the fields it added, removed, or gave a new schema. */
export interface Changes {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly changed: ReadonlyArray<string>
}

/** One version of an event type. */
export interface Version {
  readonly version: number
  /** The JSON Schema of this version's payload as stored, on its own (its definitions under `$defs`). */
  readonly schema: JsonSchema.JsonSchema
  /** What the upcast from the version before changed; `undefined` for version 1. */
  readonly changes: Changes | undefined
}

/** One event type: its aggregate type, its current version (the one written), and every version, oldest first. */
export interface EventType {
  readonly eventType: string
  readonly aggregateType: string
  readonly version: number
  readonly versions: ReadonlyArray<Version>
}

/** The catalog of a registry: its event types in name order. */
export interface Catalog {
  readonly types: ReadonlyArray<EventType>
}

/** The JSON Schema document of one stored version's payload, as Effect generates it. */
export const versionDocument = (
  definition: EventDefinition.Any,
  version: number
): JsonSchema.Document<"draft-2020-12"> => {
  const decoder = definition.decoders.get(version)
  if (decoder === undefined) throw new Error(`${definition.eventType} has no version ${version}`)
  return Schema.toJsonSchemaDocument(Schema.toEncoded(decoder))
}

/** A document as one standalone JSON Schema: its definitions under `$defs`, where its references point. */
export const standalone = (document: JsonSchema.Document<"draft-2020-12">): JsonSchema.JsonSchema =>
  Object.keys(document.definitions).length === 0
    ? { $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12, ...document.schema }
    : { $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12, ...document.schema, $defs: document.definitions }

/** The catalog of every type and version `registry` reads. */
export const make = (registry: EventRegistry.Any): Catalog => ({
  types: [...registry.definitions.values()]
    .toSorted((a, b) => (a.eventType < b.eventType ? -1 : a.eventType > b.eventType ? 1 : 0))
    .map(describe)
})

const describe = (definition: EventDefinition.Any): EventType => {
  const versions: Array<Version> = []
  let previous: JsonSchema.JsonSchema | undefined
  for (let version = 1; version <= definition.version; version++) {
    const schema = standalone(versionDocument(definition, version))
    versions.push({ version, schema, changes: previous === undefined ? undefined : compare(previous, schema) })
    previous = schema
  }
  return {
    eventType: definition.eventType,
    aggregateType: definition.aggregateType,
    version: definition.version,
    versions
  }
}

/** The top-level fields `after` adds, drops or describes differently from `before`. */
export const compare = (before: JsonSchema.JsonSchema, after: JsonSchema.JsonSchema): Changes => {
  const old = fieldsOf(before)
  const now = fieldsOf(after)
  const changed = Object.keys(now).filter(
    (key) =>
      key in old &&
      (JSON.stringify(old[key]) !== JSON.stringify(now[key]) ||
        requiredOf(before).includes(key) !== requiredOf(after).includes(key))
  )
  return {
    added: Object.keys(now).filter((key) => !(key in old)),
    removed: Object.keys(old).filter((key) => !(key in now)),
    changed
  }
}

const fieldsOf = (schema: JsonSchema.JsonSchema): Record<string, unknown> => {
  const properties = schema["properties"]
  return typeof properties === "object" && properties !== null ? (properties as Record<string, unknown>) : {}
}

const requiredOf = (schema: JsonSchema.JsonSchema): ReadonlyArray<unknown> =>
  Array.isArray(schema["required"]) ? (schema["required"] as ReadonlyArray<unknown>) : []
