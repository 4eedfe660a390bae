import { assert, describe, it } from "@effect/vitest"
import * as State from "../app/State.ts"
import { eventKind, eventLabel, relative } from "../app/Labels.ts"

const created = { eventType: "organization.created", streamVersion: 1, data: { name: "Acme", email: "a@acme" } }
const updated = {
  eventType: "organization.updated",
  streamVersion: 2,
  data: { changes: { email: { old: "a@acme", new: "b@acme" } } }
}
const deleted = { eventType: "organization.deleted", streamVersion: 3, data: { name: "Acme", deletedAt: "2025-01-01" } }

describe("State", () => {
  it("folds CREATE fields, then each UPDATE's new values, then DELETE", () => {
    const events = [deleted, created, updated]
    assert.deepStrictEqual(State.at(events, 0), State.empty)
    assert.deepStrictEqual(State.at(events, 1), {
      fields: { name: "Acme", email: "a@acme" },
      deleted: false,
      version: 1
    })
    assert.deepStrictEqual(State.at(events, 2).fields, { name: "Acme", email: "b@acme" })
    assert.deepStrictEqual(State.at(events, 3), {
      fields: { name: "Acme", email: "b@acme" },
      deleted: true,
      version: 3
    })
  })

  it("keeps a part with its own id in a collection named after the part", () => {
    const events = [
      created,
      {
        eventType: "organization.gst.added",
        streamVersion: 2,
        data: { gstRegistrationId: "g1", gstin: "29A", state: "KA" }
      },
      {
        eventType: "organization.gst.updated",
        streamVersion: 3,
        data: { gstRegistrationId: "g1", changes: { state: { old: "KA", new: "TN" } } }
      },
      { eventType: "organization.gst.removed", streamVersion: 4, data: { gstRegistrationId: "g1" } }
    ]
    assert.deepStrictEqual(State.at(events, 2).fields["gst"], { g1: { gstin: "29A", state: "KA" } })
    assert.deepStrictEqual(State.at(events, 3).fields["gst"], { g1: { gstin: "29A", state: "TN" } })
    assert.deepStrictEqual(State.at(events, 4).fields["gst"], {})
  })

  it("leaves the fields alone for an event it does not know, or a malformed change", () => {
    const events = [
      created,
      { eventType: "organization.archived", streamVersion: 2, data: { anything: 1 } },
      { eventType: "organization.updated", streamVersion: 3, data: { changes: { email: "no old or new" } } }
    ]
    assert.deepStrictEqual(State.at(events, 3), { fields: created.data, deleted: false, version: 3 })
  })
})

describe("Labels", () => {
  it("names event types and their kinds", () => {
    assert.strictEqual(eventLabel("organization.created"), "Organization created")
    assert.strictEqual(eventLabel("organization.bank_account.updated"), "Bank account updated")
    assert.strictEqual(eventKind("organization.gst.added"), "create")
    assert.strictEqual(eventKind("commodity.updated"), "update")
    assert.strictEqual(eventKind("organization.deleted"), "delete")
    assert.strictEqual(eventKind("audit.read"), "other")
  })

  it("says when relative to now", () => {
    const now = new Date("2025-04-01T12:00:00Z")
    assert.strictEqual(relative(new Date("2025-04-01T11:57:00Z"), now), "3 minutes ago")
    assert.strictEqual(relative(new Date("2025-03-31T12:00:00Z"), now), "yesterday")
    assert.strictEqual(relative(now, now), "now")
  })
})
