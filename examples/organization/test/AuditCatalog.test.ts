/**
 * The event catalog over real HTTP, on the engine of the test project: `GET /audit/catalog` lists the app's types
 * and versions with what each upcast added, and a real event the app wrote validates against its schema there; the
 * OpenAPI document validates (`@apidevtools/swagger-parser`), and its `AuditEvent`, whose `data` is typed per event
 * type, takes the real events and refuses one whose payload does not fit its type.
 */
import SwaggerParser from "@apidevtools/swagger-parser"
import { AuditCatalog } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as TestApp from "./support/TestApp.ts"

const Created = Schema.Struct({ id: Schema.String })
const catalogOf = TestApp.decode(AuditCatalog.Catalog)
const RawHistory = Schema.Struct({
  events: Schema.Array(Schema.Struct({ eventType: Schema.String, version: Schema.Int, data: Schema.Json }))
})

let panCounter = 8000
const freshPan = () => `TESTC${String(panCounter++).padStart(4, "0")}Z`

/** An organization, its GST registration and a commodity, written through the app; its events as sent. */
const writeEvents = Effect.gen(function* () {
  const organization = yield* TestApp.request("POST", "/organizations", {
    as: "alice",
    body: { name: 'Yamuna "Yarns", Ltd', type: "private_limited", email: "books@yamuna.example", pan: freshPan() }
  })
  assert.strictEqual(organization.status, 201, organization.text)
  const id = TestApp.decode(Created)(organization.body).id
  const pan = (organization.body as { readonly pan: string }).pan
  const gst = yield* TestApp.request("POST", `/organizations/${id}/gst-registrations`, {
    as: "alice",
    body: { gstin: `24${pan}1Z5`, stateCode: "24", registrationType: "regular", effectiveFrom: "2025-04-01" }
  })
  assert.strictEqual(gst.status, 201, gst.text)
  const history = yield* TestApp.request("GET", `/audit/aggregates/organization/${id}`, { as: "alice" })
  assert.strictEqual(history.status, 200, history.text)
  return history.body as { readonly events: ReadonlyArray<Record<string, unknown>> }
})

const ajv = () => new Ajv2020({ strict: false, validateFormats: false })

layer(TestApp.layer, TestApp.layerOptions)("the event catalog", (it) => {
  it.effect("lists every type and version, with what each upcast added; a real event fits its schema", () =>
    Effect.gen(function* () {
      const response = yield* TestApp.request("GET", "/audit/catalog", { as: "bob" })
      assert.strictEqual(response.status, 200, response.text)
      const catalog = catalogOf(response.body)
      const types = new Map(catalog.types.map((type) => [type.eventType, type]))
      assert.includeMembers([...types.keys()], ["organization.created", "commodity.created", "audit.read"])
      const commodity = types.get("commodity.created")!
      assert.deepStrictEqual(
        commodity.versions.map((version) => version.version),
        [1, 2]
      )
      assert.strictEqual(commodity.versions[0]!.changes, null)
      assert.isAbove(commodity.versions[1]!.changes!.added.length, 0, JSON.stringify(commodity.versions[1]))

      const unauthenticated = yield* TestApp.request("GET", "/audit/catalog")
      assert.strictEqual(unauthenticated.status, 401)

      const events = TestApp.decode(RawHistory)(yield* writeEvents).events
      assert.strictEqual(events.length, 2)
      for (const event of events) {
        const type = types.get(event.eventType)!
        const schema = type.versions.find((version) => version.version === event.version)!.schema as object
        const validate = ajv().compile(schema)
        assert.isTrue(validate(event.data), `${event.eventType}: ${JSON.stringify(validate.errors)}`)
        assert.isFalse(validate({ ...(event.data as object), name: 42, gstin: 42 }), event.eventType)
      }
    })
  )

  it.effect("the OpenAPI document validates, and its AuditEvent types data by eventType and version", () =>
    Effect.gen(function* () {
      const response = yield* TestApp.request("GET", "/openapi.json")
      assert.strictEqual(response.status, 200)
      const spec = response.body as { readonly components: { readonly schemas: Record<string, unknown> } }
      // The parser dereferences what it validates in place: it gets a copy.
      yield* Effect.promise(() => SwaggerParser.validate(structuredClone(spec) as never))
      assert.property(spec.components.schemas, AuditCatalog.payloadComponent("organization.created", 1))

      const validator = ajv()
      validator.addSchema({ ...spec, $id: "urn:annal:openapi" })
      const validate = validator.getSchema("urn:annal:openapi#/components/schemas/AuditEvent")!
      const events = (yield* writeEvents).events
      for (const event of events) assert.isTrue(validate(event), JSON.stringify(validate.errors))
      const created = events.find((event) => event.eventType === "organization.created")!
      // The naive document (`data: {}`) would take this; the typed one does not.
      assert.isFalse(validate({ ...created, data: { name: 42 } }))
      assert.isFalse(validate({ ...created, version: 99 }))
      // An event the registry could not decode is sent as stored, and the document says so.
      assert.isTrue(validate({ ...created, eventType: "legacy.thing", data: { any: "thing" }, decoded: false }))
    })
  )
})
