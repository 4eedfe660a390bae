/**
 * The audit group mounted by an application other than the example: under a prefix, with the raw registry (so
 * events of types the application never registered still read, as stored), over real HTTP. The request context
 * reaches the one event the audit API writes, an auditor's read, without any handler passing it.
 */
import { EventRegistry, EventStore, Integrity } from "@annal/core"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import * as AuditAccess from "../src/AuditAccess.ts"
import { AuditGroup, AggregateHistory, EventPage } from "../src/AuditApi.ts"
import * as AuditHandlers from "../src/AuditHandlers.ts"
import * as ApiTokens from "../src/ApiTokens.ts"
import * as Authentication from "../src/Authentication.ts"
import * as PageCursor from "../src/PageCursor.ts"
import * as RequestContext from "../src/RequestContext.ts"
import * as RequestTimeout from "../src/RequestTimeout.ts"
import * as RequestValidation from "../src/RequestValidation.ts"
import { GstAdded, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"

class LedgerApi extends HttpApi.make("ledger").add(AuditGroup).prefix("/api/v1") {}

const clerk = { name: "clerk", userId: uuid(), role: "clerk", token: "clerk-token" }
const auditor = { name: "auditor", userId: uuid(), role: "auditor", token: "auditor-token" }

const tokens = Layer.unwrap(
  Effect.map(
    Effect.forEach([clerk, auditor], (user) =>
      Effect.map(ApiTokens.hash(user.token), (sha256) => ({
        name: user.name,
        sha256,
        userId: user.userId,
        role: user.role
      }))
    ),
    ApiTokens.layer
  )
)

/** The routes, with the `Integrity` layer given (or none). */
const routesWith = (integrity: Layer.Layer<never> | Layer.Layer<Integrity.Integrity, never, SqlClient.SqlClient>) =>
  Layer.mergeAll(HttpApiBuilder.layer(LedgerApi), RequestContext.layer).pipe(
    Layer.provide(AuditHandlers.layer(LedgerApi, { registry: EventRegistry.raw })),
    Layer.provide([
      Authentication.layer,
      RequestValidation.layer,
      RequestTimeout.layer(),
      AuditAccess.layerParticipants,
      PageCursor.layerRandom,
      integrity
    ]),
    Layer.provide(tokens)
  )

const routes = routesWith(Layer.empty)

const App = HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true }).pipe(
  Layer.provideMerge(TestDatabase.layer()),
  Layer.provideMerge(NodeHttpServer.layerTest)
)

const get = (path: string, token: string, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.get(path).pipe(HttpClientRequest.bearerToken(token), HttpClientRequest.setHeaders(headers))
    )
    return { status: response.status, body: yield* response.json }
  }).pipe(Effect.orDie)

layer(App, { excludeTestServices: true })("the audit group in another application", (it) => {
  it.effect("serves under the application's prefix, reading unregistered events raw", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const aggregateId = uuid()
      yield* store.append([
        GstAdded.make({ aggregateId, userId: clerk.userId, data: { gstin: "29ABCDE1234F1Z5", state: "KA" } })
      ])
      const response = yield* get(`/api/v1/audit/users/${clerk.userId}/activity`, clerk.token)
      assert.strictEqual(response.status, 200)
      const page = Schema.decodeUnknownSync(Schema.toCodecJson(EventPage))(response.body)
      assert.deepStrictEqual(
        page.events.map((event) => [event.eventType, event.version, event.data]),
        [["organization.gst.added", 1, { gstin: "29ABCDE1234F1Z5", state: "KA" }]]
      )
      const unprefixed = yield* get(`/audit/users/${clerk.userId}/activity`, clerk.token)
      assert.strictEqual(unprefixed.status, 404)
    })
  )

  it.effect("records an auditor's read with the request's context, which no handler passed", () =>
    Effect.gen(function* () {
      const aggregateId = uuid()
      const read = yield* get(`/api/v1/audit/aggregates/organization/${aggregateId}`, auditor.token, {
        "x-correlation-id": "inspection-1",
        "x-change-reason": "Annual audit",
        "user-agent": "ledger-tests"
      })
      assert.strictEqual(read.status, 200)
      const trail = yield* get(`/api/v1/audit/aggregates/audit/${auditor.userId}`, auditor.token)
      const [recorded] = Schema.decodeUnknownSync(Schema.toCodecJson(AggregateHistory))(trail.body).events
      assert.strictEqual(recorded!.eventType, "audit.read")
      assert.strictEqual(recorded!.userId, auditor.userId)
      assert.deepStrictEqual(recorded!.data, {
        endpoint: "aggregateHistory",
        parameters: { aggregateType: "organization", aggregateId: aggregateId },
        continued: false,
        returned: 0
      })
      assert.deepStrictEqual(recorded!.metadata, {
        correlationId: "inspection-1",
        reason: "Annual audit",
        userAgent: "ledger-tests",
        ipAddress: "127.0.0.1"
      })
    })
  )
})

describe("AuditHandlers.layer", () => {
  it("does not compile for an API without the audit group", () => {
    class Unrelated extends HttpApi.make("unrelated").add(HttpApiGroup.make("other")) {}
    // @ts-expect-error: the API has no `audit` group to implement.
    const refused = AuditHandlers.layer(Unrelated, { registry: EventRegistry.raw })
    assert.isTrue(Layer.isLayer(refused))
  })

  it.effect("refuses to start when Integrity verifies another table than the one the audit API reads", () =>
    Effect.gen(function* () {
      const schema = TestDatabase.uniqueSchema()
      const app = (integritySchema: string) =>
        HttpRouter.serve(routesWith(Integrity.layer({ schema: integritySchema })), {
          disableListenLog: true,
          disableLogger: true
        }).pipe(Layer.provideMerge(TestDatabase.layerWith(schema)), Layer.provideMerge(NodeHttpServer.layerTest))
      const mismatched = yield* Effect.exit(Effect.scoped(Layer.build(app("elsewhere"))))
      assert.isTrue(Exit.isFailure(mismatched))
      if (Exit.isFailure(mismatched)) {
        assert.include(Cause.pretty(mismatched.cause), "but Integrity verifies elsewhere.events")
      }
      // The same layers over one table start: only the mismatch is refused.
      const matched = yield* Effect.exit(Effect.scoped(Layer.build(app(schema))))
      assert.isTrue(Exit.isSuccess(matched), Exit.isFailure(matched) ? Cause.pretty(matched.cause) : "")
    })
  )
})
