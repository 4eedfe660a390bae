/**
 * Query and body validation. A struct schema ignores keys it does not know by default, so a misspelt filter would
 * silently widen a query: the first test shows that naive decoding at work on the audit API's own query schema;
 * the next shows the group's parse options refusing it, and the error naming each field.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpApi from "effect/http-api/HttpApi"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import * as Schema from "effect/Schema"
import { eventsQuery } from "../src/AuditApi.ts"
import * as RequestValidation from "../src/RequestValidation.ts"

const alice = "a11ce000-0000-4000-8000-000000000001"
// As the HTTP API decodes a query: from strings, a single value standing for an array of one.
const query = Schema.toCodecArrayFromSingle(Schema.toCodecStringTree(Schema.Struct(eventsQuery)))
const strict = Context.getOrUndefined(RequestValidation.parseOptions, HttpApi.QueryParseOptions)

describe("RequestValidation", () => {
  it.effect("naive decoding drops a misspelt filter: the query would read everyone's events", () =>
    Effect.gen(function* () {
      const decoded = yield* Schema.decodeUnknownEffect(query)({ userid: alice })
      assert.deepStrictEqual(decoded, {})
    })
  )

  it.effect("the group's parse options refuse it, and every other problem, by field", () =>
    Effect.gen(function* () {
      assert.isDefined(strict)
      const error = yield* Effect.flip(
        Schema.decodeUnknownEffect(query, strict)({ userid: alice, limit: "1000000000", from: "soon" })
      )
      const invalid = RequestValidation.toInvalidRequest(new HttpApiSchemaError({ kind: "Query", cause: error }))
      assert.deepStrictEqual(invalid.issues, [
        { field: "query.userid", reason: "is not a known parameter" },
        {
          field: "query.from",
          reason: "must be an ISO 8601 date-time with its offset, such as 2025-04-01T00:00:00Z, in years 0001 to 9999"
        },
        { field: "query.limit", reason: "must be an integer from 1 to 500" }
      ])
      assert.strictEqual(invalid.message, "query.userid: is not a known parameter (and 2 more)")
      const decoded = yield* Schema.decodeUnknownEffect(
        query,
        strict
      )({ userId: alice, eventType: "organization.created" })
      assert.deepStrictEqual({ ...decoded }, { userId: alice, eventType: ["organization.created"] })
    })
  )
})
