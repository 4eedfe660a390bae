/**
 * The webhooks admin API over a real server, on both engines: only the admin role may use it; secrets are answered
 * once, at creation and when one is added, and never after; the service's errors are the API's typed errors; and the
 * delivery log of a subscription delivering to a real receiver reads a page at a time, dead letters and replay
 * included.
 */
import { ApiTokens, Authentication, RequestContext, RequestTimeout, RequestValidation } from "@annal/http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { uuid } from "../../core/test/support/Fixtures.ts"
import * as FeedDatabase from "../../core/test/support/FeedDatabase.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"
import * as Webhooks from "../src/Webhooks.ts"
import { WebhooksApi } from "../src/WebhooksApi.ts"
import * as WebhooksHandlers from "../src/WebhooksHandlers.ts"
import { appendSome, testOptions } from "./support/Deliveries.ts"
import * as Receiver from "./support/Receiver.ts"

const admin = { name: "admin", userId: uuid(), role: "admin", token: "admin-token" }
const clerk = { name: "clerk", userId: uuid(), role: "clerk", token: "clerk-token" }

const tokens = Layer.unwrap(
  Effect.map(
    Effect.forEach([admin, clerk], (user) => Effect.map(ApiTokens.hash(user.token), (sha256) => ({ ...user, sha256 }))),
    ApiTokens.layer
  )
)

const app = (schema: string) =>
  HttpRouter.serve(
    Layer.mergeAll(HttpApiBuilder.layer(WebhooksApi), RequestContext.layer).pipe(
      Layer.provide(WebhooksHandlers.layer(WebhooksApi)),
      Layer.provide([Authentication.layer, RequestValidation.layer, RequestTimeout.layer()]),
      Layer.provide(tokens)
    ),
    { disableListenLog: true, disableLogger: true }
  ).pipe(
    Layer.provideMerge(Webhooks.layer(testOptions)),
    Layer.provideMerge(FeedDatabase.layerWith(schema)),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

// The answers are read loosely, field by field, as a receiver of the JSON would.
// oxlint-disable-next-line typescript/no-explicit-any
type Json = Record<string, any>

const call = (method: "GET" | "POST" | "PATCH" | "DELETE", path: string, token: string, body?: unknown) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const base = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.bearerToken(token))
    const request = body === undefined ? base : yield* HttpClientRequest.bodyJson(base, body)
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, body: (text === "" ? null : JSON.parse(text)) as Json, text }
  }).pipe(Effect.orDie)

describe(`WebhooksApi (${TestDatabase.engine})`, () => {
  it.live("only admins; secrets answered once; typed errors; the log a page at a time; dead letters and replay", () =>
    Effect.gen(function* () {
      const receiver = yield* Receiver.start(() => ({ status: 410 }))
      const webhooks = yield* Webhooks.Webhooks

      // Anyone else is refused, before anything is read or written.
      assert.strictEqual((yield* call("GET", "/webhooks/subscriptions", clerk.token)).status, 403)
      const refused = yield* call("POST", "/webhooks/subscriptions", clerk.token, { url: receiver.url })
      assert.strictEqual(refused.status, 403)
      assert.strictEqual((yield* webhooks.list).length, 0)
      assert.strictEqual((yield* call("GET", "/webhooks/subscriptions", "nobody")).status, 401)

      // A URL the guard refuses is a 400 that names the field.
      const invalid = yield* call("POST", "/webhooks/subscriptions", admin.token, { url: "ftp://example.com/x" })
      assert.strictEqual(invalid.status, 400)
      assert.strictEqual(invalid.body["issues"][0].field, "url")

      const created = yield* call("POST", "/webhooks/subscriptions", admin.token, {
        url: receiver.url,
        filter: { aggregateType: "organization" },
        maxAttempts: 1
      })
      assert.strictEqual(created.status, 201)
      const secret: string = created.body["secret"]
      const id: string = created.body["subscription"].id
      assert.match(secret, /^whsec_/)
      const got = yield* call("GET", `/webhooks/subscriptions/${id}`, admin.token)
      assert.strictEqual(got.status, 200)
      assert.strictEqual(got.body["state"], "active")
      assert.notInclude(got.text, secret)
      assert.strictEqual((yield* call("GET", `/webhooks/subscriptions/${uuid()}`, admin.token)).status, 404)

      // A rotation: the new secret once; afterwards both show by id only.
      const added = yield* call("POST", `/webhooks/subscriptions/${id}/secrets`, admin.token, {})
      assert.strictEqual(added.status, 200)
      const listed = yield* call("GET", "/webhooks/subscriptions", admin.token)
      assert.strictEqual(listed.body["subscriptions"][0].secrets.length, 2)
      assert.notInclude(listed.text, secret)
      assert.notInclude(listed.text, added.body["secret"])
      const oldSecretId: string = created.body["subscription"].secrets[0].id
      const removed = yield* call("DELETE", `/webhooks/subscriptions/${id}/secrets/${oldSecretId}`, admin.token)
      assert.deepStrictEqual(
        removed.body["secrets"].map((s: Json) => s["id"]),
        [added.body["secretId"]]
      )

      // The receiver answers 410: the first event is dead-lettered and the subscription paused.
      yield* appendSome(5)
      yield* Effect.forkScoped(webhooks.run)
      yield* webhooks
        .get(id)
        .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.state === "paused" }))
      const letters = yield* call("GET", `/webhooks/subscriptions/${id}/dead-letters`, admin.token)
      assert.strictEqual(letters.body["deadLetters"].length, 1)
      assert.strictEqual(letters.body["deadLetters"][0].redeliveredAt, null)

      // Resumed, each event is dead-lettered in turn; the log then holds one attempt per event.
      for (let n = 2; n <= 4; n++) {
        const resumed = yield* call("PATCH", `/webhooks/subscriptions/${id}`, admin.token, { state: "active" })
        assert.strictEqual(resumed.body["state"], "active")
        yield* webhooks
          .deadLetters(id)
          .pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (l) => l.length >= n }))
      }
      const all = (yield* webhooks.attempts(id, 1000)).map((attempt) => attempt.id)
      const pages: Array<string> = []
      let cursor: string | null = null
      do {
        const page: { body: Json } = yield* call(
          "GET",
          `/webhooks/subscriptions/${id}/attempts?limit=3${cursor === null ? "" : `&cursor=${cursor}`}`,
          admin.token
        )
        assert.isAtMost(page.body["attempts"].length, 3)
        for (const attempt of page.body["attempts"]) {
          assert.strictEqual(attempt.status, 410)
          assert.strictEqual(attempt.outcome, "failed")
          pages.push(attempt.id)
        }
        cursor = page.body["nextCursor"]
      } while (cursor !== null)
      assert.deepStrictEqual(pages, all)
      assert.isAtLeast(all.length, 4)
      // Not a cursor, and one of 19 digits beyond a bigint: typed 400s, not the database's error as a 500.
      for (const cursor of ["x", "9999999999999999999"]) {
        const badCursor = yield* call("GET", `/webhooks/subscriptions/${id}/attempts?cursor=${cursor}`, admin.token)
        assert.strictEqual(badCursor.status, 400, cursor)
      }

      // A replay activates it and starts again from the given time (its delivery is Webhooks.test.ts's to check).
      const replayed = yield* call("POST", `/webhooks/subscriptions/${id}/replay`, admin.token, {
        from: "2000-01-01T00:00:00Z"
      })
      assert.strictEqual(replayed.status, 200)
      assert.strictEqual(replayed.body["state"], "active")
      assert.strictEqual(replayed.body["replayFrom"], "2000-01-01T00:00:00.000Z")
      assert.strictEqual(replayed.body["revision"], (yield* webhooks.get(id)).revision)

      const deleted = yield* call("DELETE", `/webhooks/subscriptions/${id}`, admin.token)
      assert.strictEqual(deleted.status, 204)
      assert.strictEqual((yield* webhooks.list).length, 0)
    }).pipe(Effect.scoped, Effect.provide(app(TestDatabase.uniqueSchema())))
  )
})
