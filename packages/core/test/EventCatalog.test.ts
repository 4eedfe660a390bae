/**
 * The event catalog: every registered type and version, each with a JSON Schema generated from its Effect Schema
 * that accepts the payloads the registry stores for that version and refuses what it would refuse, and what each
 * upcast changed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Ajv2020 } from "ajv/dist/2020.js"
import * as EventCatalog from "../src/EventCatalog.ts"
import { OrganizationEvents } from "./support/Fixtures.ts"

const catalog = EventCatalog.make(OrganizationEvents)
const versionOf = (eventType: string, version: number) => {
  const type = catalog.types.find((entry) => entry.eventType === eventType)
  const found = type?.versions.find((entry) => entry.version === version)
  if (found === undefined) throw new Error(`no ${eventType} v${version} in the catalog`)
  return found
}
const validator = (schema: object) => new Ajv2020({ strict: false }).compile(schema)

describe("EventCatalog", () => {
  it("lists every type in name order, with every version and the current one", () => {
    assert.deepStrictEqual(
      catalog.types.map((type) => [type.eventType, type.aggregateType, type.version, type.versions.length]),
      [
        ["organization.created", "organization", 2, 2],
        ["organization.deleted", "organization", 1, 1],
        ["organization.gst.added", "organization", 1, 1],
        ["organization.updated", "organization", 1, 1]
      ]
    )
  })

  it("says what each upcast added: organization.created v2 added the country", () => {
    assert.strictEqual(versionOf("organization.created", 1).changes, undefined)
    assert.deepStrictEqual(versionOf("organization.created", 2).changes, {
      added: ["country"],
      removed: [],
      changed: []
    })
  })

  it("each version's schema takes that version's stored payloads and refuses others", () => {
    const v1 = validator(versionOf("organization.created", 1).schema)
    const v2 = validator(versionOf("organization.created", 2).schema)
    const stored = { name: "Acme", type: "corporation", email: "a@acme.test" }
    assert.isTrue(v1(stored))
    assert.isFalse(v2(stored), "v2 requires the country")
    assert.isTrue(v2({ ...stored, country: "IN" }))
    assert.isFalse(v1({ ...stored, name: "" }), "the name is a NonEmptyString")
    const gst = validator(versionOf("organization.gst.added", 1).schema)
    assert.isTrue(gst({ gstin: "29A", state: "KA" }))
    assert.isTrue(gst({ gstin: "29A", state: "KA", amount: 12.5 }))
    assert.isFalse(gst({ gstin: "29A", state: "KA", amount: "12.5" }))
    const updated = validator(versionOf("organization.updated", 1).schema)
    assert.isTrue(updated({ changes: { email: { old: "a@acme.test", new: "b@acme.test" } } }))
  })
})
