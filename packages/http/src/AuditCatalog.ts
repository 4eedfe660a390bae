/**
 * The event catalog over HTTP, a report of `AuditReportsGroup`: `GET /audit/catalog` answers every type the
 * application's registry reads (and the API's own `audit.read`), each version's JSON Schema and what each upcast
 * changed; and `openApi(registry)` types the OpenAPI document's event `data` with the same schemas, so that a
 * client generated from the document knows each event's payload.
 *
 * The catalog describes what can be recorded, not what was: any authenticated caller may read it, and the read is
 * not recorded as an `audit.read`.
 *
 * @since 0.1.0
 */
import { EventCatalog, type Event, type EventRegistry } from "@annal/core"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as OpenApi from "effect/http-api/OpenApi"
import * as JsonSchema from "effect/JsonSchema"
import * as Schema from "effect/Schema"
import { Forbidden, InternalError } from "./ApiError.ts"
import { withAuditRead } from "./EventJson.ts"

/** What an upcast changed, by top-level field of the payload. */
export const Changes = Schema.Struct({
  added: Schema.Array(Schema.String),
  removed: Schema.Array(Schema.String),
  changed: Schema.Array(Schema.String)
})

/** The catalog, as `GET /audit/catalog` answers it. */
export const Catalog = Schema.Struct({
  types: Schema.Array(
    Schema.Struct({
      eventType: Schema.String,
      aggregateType: Schema.String,
      /** The current version: the one written, and the one the audit API decodes every stored version to. */
      version: Schema.Int,
      versions: Schema.Array(
        Schema.Struct({
          version: Schema.Int,
          /** The JSON Schema (draft 2020-12) of the payload as this version stores it. */
          schema: Schema.Json,
          /** What the upcast from the version before changed; `null` for version 1. */
          changes: Schema.NullOr(Changes)
        })
      )
    })
  )
}).annotate({ identifier: "EventCatalog" })

/** The catalog, as the audit API returns it. */
export type Catalog = typeof Catalog.Type

/** `GET /audit/catalog`, to add to `AuditReportsGroup`. */
export const endpoint = HttpApiEndpoint.get("catalog", "/catalog", {
  success: Catalog,
  error: [Forbidden, InternalError]
}).annotateMerge(
  OpenApi.annotations({
    summary: "The event catalog",
    description:
      "Every event type the service records, its aggregate type and its versions, each with the JSON Schema of its " +
      "payload generated from the application's own schema, and what each upcast added, removed or changed. Any " +
      "authenticated caller may read it."
  })
)

/** The catalog of `registry` and the audit API's own events, as JSON. */
export const fromRegistry = (registry: EventRegistry.EventRegistry<Event.Event>): Catalog => ({
  types: EventCatalog.make(withAuditRead(registry)).types.map((type) => ({
    eventType: type.eventType,
    aggregateType: type.aggregateType,
    version: type.version,
    versions: type.versions.map((version) => ({
      version: version.version,
      schema: version.schema as Schema.Json,
      changes: version.changes ?? null
    }))
  }))
})

/** The handler of `catalog`: the registry's catalog, built once. */
export const handler = (registry: EventRegistry.EventRegistry<Event.Event>) => {
  const catalog = fromRegistry(registry)
  return () => Effect.succeed(catalog).pipe(Effect.withSpan("AuditApi.catalog"))
}

/** The name of the OpenAPI component that holds the payload of one type's current version. */
export const payloadComponent = (eventType: string, version: number): string =>
  componentKey(`EventData.${eventType}.v${version}`)

/** A component name OpenAPI accepts: the characters it does not, replaced. */
const componentKey = (name: string): string => name.replaceAll(/[^a-zA-Z0-9.\-_]/g, "_")

/**
 * `value` with each reference to a definition of its document (`#/$defs/<key>`, the key escaped as a URI fragment's
 * JSON Pointer token) pointing at the component `<prefix>.<key>` instead.
 */
const rewriteRefs = (value: unknown, prefix: string): unknown => {
  if (Array.isArray(value)) return value.map((item) => rewriteRefs(item, prefix))
  if (typeof value !== "object" || value === null) return value
  const result: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    result[key] =
      key === "$ref" && typeof item === "string" && item.startsWith("#/$defs/")
        ? `#/components/schemas/${componentKey(
            `${prefix}.${decodeURIComponent(item.slice("#/$defs/".length)).replaceAll("~1", "/").replaceAll("~0", "~")}`
          )}`
        : rewriteRefs(item, prefix)
  }
  return result
}

/**
 * An OpenAPI annotation for the application's `HttpApi` that types the `AuditEvent` schema's `data`: `AuditEvent`
 * becomes a union with one member per event type of `registry` (and `audit.read`), each fixing `eventType` and
 * `version` (the current one, which the API decodes every stored version to) and typing `data` with that version's
 * schema; and one member for an event the registry could not decode (`decoded: false`), whose `data` is as stored.
 */
export const openApi = (registry: EventRegistry.EventRegistry<Event.Event>): Context.Context<never> =>
  OpenApi.annotations({ transform: (spec) => typeEvents(spec, registry) })

type Spec = Record<string, unknown>

const typeEvents = (spec: Spec, registry: EventRegistry.EventRegistry<Event.Event>): Spec => {
  const components = (spec["components"] ?? {}) as Spec
  const schemas = { ...((components["schemas"] ?? {}) as Record<string, JsonSchema.JsonSchema>) }
  const envelope = schemas["AuditEvent"]
  if (envelope === undefined) return spec
  const definitions = [...withAuditRead(registry).definitions.values()].toSorted((a, b) =>
    a.eventType < b.eventType ? -1 : a.eventType > b.eventType ? 1 : 0
  )
  const members: Array<JsonSchema.JsonSchema> = []
  for (const definition of definitions) {
    const document = EventCatalog.versionDocument(definition, definition.version)
    const prefix = payloadComponent(definition.eventType, definition.version)
    const rewrite = (schema: JsonSchema.JsonSchema) => rewriteRefs(schema, prefix) as JsonSchema.JsonSchema
    for (const [key, schema] of Object.entries(document.definitions)) {
      schemas[componentKey(`${prefix}.${key}`)] = rewrite(schema)
    }
    schemas[prefix] = rewrite(document.schema)
    members.push({
      type: "object",
      properties: {
        eventType: { const: definition.eventType },
        version: { const: definition.version },
        data: { $ref: `#/components/schemas/${prefix}` }
      },
      required: ["eventType", "version", "data"],
      not: { required: ["decoded"] }
    })
  }
  members.push({
    type: "object",
    properties: { decoded: { const: false } },
    required: ["decoded"]
  })
  schemas["AuditEventEnvelope"] = envelope
  schemas["AuditEvent"] = {
    description:
      "A stored event: its envelope, with `data` typed by its `eventType` and `version` (one member per type), or " +
      "an event the registry could not decode (`decoded: false`), sent as stored.",
    allOf: [{ $ref: "#/components/schemas/AuditEventEnvelope" }, { oneOf: members }]
  }
  return { ...spec, components: { ...components, schemas } }
}
