import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as AuditAccess from "../src/AuditAccess.ts"

describe("AuditAccess.authorizeRestricted", () => {
  it.effect("hands the policy the aggregate id in the lowercase the store keeps, whatever the request's case", () =>
    Effect.gen(function* () {
      const stored = "0190a6f2-2e7c-7d1c-9a44-3c1f8e9b2d10"
      const seen: Array<string> = []
      // A policy that compares ids as the store keeps them, as an application's own table would.
      const policy = AuditAccess.AuditAccess.of({
        canReadAggregate: (_principal, _type, aggregateId) =>
          Effect.sync(() => {
            seen.push(aggregateId)
            return aggregateId === stored
          })
      })
      const clerk = { name: "clerk", userId: "5f0c3a52-8f1e-4d0b-9c6a-1e2d3c4b5a69", role: "clerk" }
      yield* AuditAccess.authorizeRestricted(
        policy,
        clerk,
        { aggregateType: "organization", aggregateId: stored.toUpperCase() },
        "refused"
      )
      assert.deepStrictEqual(seen, [stored])
      const refused = yield* Effect.flip(
        AuditAccess.authorizeRestricted(
          policy,
          clerk,
          { aggregateType: "organization", aggregateId: "0190a6f2-2e7c-7d1c-9a44-3c1f8e9b2d11" },
          "refused"
        )
      )
      assert.strictEqual(refused._tag, "Forbidden")
    })
  )
})
