/**
 * `ApiGroup.guard`: the chain every group of the audit API is put behind. The order is the contract (validation next
 * to the handler, authentication around it, the time bound outermost: `Access.test.ts` shows a malformed request
 * without a token answered 401), so the tests read each endpoint's middlewares in order, not as a set.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as ApiGroup from "../src/ApiGroup.ts"
import { AuditGroup } from "../src/AuditApi.ts"
import { AuditExportGroup } from "../src/AuditExport.ts"
import { AuditReportsGroup } from "../src/AuditReportsApi.ts"
import { Authentication } from "../src/Authentication.ts"
import { EventStreamGroup } from "../src/EventStream.ts"
import { RequestTimeout } from "../src/RequestTimeout.ts"
import * as RequestValidation from "../src/RequestValidation.ts"

const chain = [RequestValidation.RequestValidation.key, Authentication.key, RequestTimeout.key]

/** What the tests read of an endpoint; the shipped groups' precise types are not assignable to `HttpApiEndpoint.Top`. */
interface Endpoint {
  readonly identifier: string
  readonly path: string
  readonly middlewares: ReadonlySet<{ readonly key: string }>
}

/** What the tests read of a group. */
interface Group {
  readonly identifier: string
  readonly annotations: Context.Context<never>
  readonly endpoints: Readonly<Record<string, Endpoint>>
}

const middlewares = (endpoint: Endpoint) => [...endpoint.middlewares].map((middleware) => middleware.key)

const isStrict = (group: Group) =>
  Context.getOrUndefined(group.annotations, HttpApi.QueryParseOptions) ===
    Context.getOrUndefined(RequestValidation.parseOptions, HttpApi.QueryParseOptions) &&
  Context.getOrUndefined(group.annotations, HttpApi.PayloadParseOptions) ===
    Context.getOrUndefined(RequestValidation.parseOptions, HttpApi.PayloadParseOptions) &&
  Context.getOrUndefined(group.annotations, HttpApi.ParseOptions) ===
    Context.getOrUndefined(RequestValidation.parseOptions, HttpApi.ParseOptions)

const plain = HttpApiGroup.make("things").add(
  HttpApiEndpoint.get("list", "/"),
  HttpApiEndpoint.get("get", "/:id"),
  HttpApiEndpoint.post("create", "/")
)

describe("ApiGroup.guard", () => {
  it("an unguarded group has none of the chain: the checks below tell the two apart", () => {
    for (const endpoint of Object.values(plain.endpoints)) assert.deepStrictEqual(middlewares(endpoint), [])
    assert.isFalse(isStrict(plain))
  })

  it("puts every endpoint behind validation, authentication and the time bound, in that order, under the prefix", () => {
    const guarded = plain.pipe(ApiGroup.guard("/things"))
    assert.deepStrictEqual(
      Object.values(guarded.endpoints).map((endpoint) => [endpoint.method, endpoint.path, middlewares(endpoint)]),
      [
        ["GET", "/things", chain],
        ["GET", "/things/:id", chain],
        ["POST", "/things", chain]
      ]
    )
    assert.isTrue(isStrict(guarded))
    // The group keeps its identity: its handlers are found by it.
    assert.strictEqual(guarded.identifier, "things")
  })

  it("guards every endpoint of the audit API's groups", () => {
    for (const group of [
      AuditGroup,
      AuditReportsGroup,
      AuditExportGroup,
      EventStreamGroup
    ] satisfies ReadonlyArray<Group>) {
      assert.isTrue(isStrict(group), group.identifier)
      for (const endpoint of Object.values<Endpoint>(group.endpoints)) {
        assert.deepStrictEqual(middlewares(endpoint), chain, `${group.identifier}.${endpoint.identifier}`)
        assert.match(endpoint.path, /^\/(audit|events)\//, `${group.identifier}.${endpoint.identifier}`)
      }
    }
  })
})
