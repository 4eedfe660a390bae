/**
 * The audit timeline's server side, `AuditUi.layer` as the app mounts it at `/ui`: the page and its assets under a
 * Content Security Policy that allows only the app's own origin, `/` sending a browser (and only a browser) there,
 * the session and names reads behind the API's tokens, and nothing outside the UI's folder.
 */
import { AuditUiApi } from "@annal/http"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as DemoUsers from "../src/DemoUsers.ts"
import * as TestApp from "./support/TestApp.ts"

const html = { accept: "text/html,application/xhtml+xml" }

/** A request whose redirect is answered, not followed. */
const unfollowed = (path: string, headers: Record<string, string>) =>
  TestApp.request("GET", path, { headers }).pipe(
    Effect.provideService(FetchHttpClient.RequestInit, { redirect: "manual" })
  )

layer(TestApp.layer, TestApp.layerOptions)("the audit timeline's server", (it) => {
  it.effect("serves the page and its assets under a policy of the app's own origin only", () =>
    Effect.gen(function* () {
      const page = yield* TestApp.request("GET", "/ui/", { headers: html })
      assert.strictEqual(page.status, 200, page.text)
      assert.include(TestApp.header(page, "content-type") ?? "", "text/html")
      const policy = TestApp.header(page, "content-security-policy") ?? ""
      for (const directive of [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'"
      ]) {
        assert.include(policy, directive)
      }
      assert.notInclude(policy, "unsafe-inline")
      assert.strictEqual(TestApp.header(page, "x-content-type-options"), "nosniff")
      assert.strictEqual(TestApp.header(page, "cache-control"), "no-cache")
      const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(page.text)?.[1]
      assert.isDefined(script, page.text)
      const asset = yield* TestApp.request("GET", `/ui/${script}`)
      assert.strictEqual(asset.status, 200)
      assert.include(TestApp.header(asset, "cache-control") ?? "", "immutable")
      assert.include(TestApp.header(asset, "content-security-policy") ?? "", "default-src 'self'")

      const bare = yield* unfollowed("/ui", html)
      assert.strictEqual(bare.status, 301)
      assert.strictEqual(TestApp.header(bare, "location"), "/ui/")
    })
  )

  it.effect("sends a browser from / to the UI, and answers an API client there as before", () =>
    Effect.gen(function* () {
      const browser = yield* unfollowed("/", html)
      assert.strictEqual(browser.status, 302)
      assert.strictEqual(TestApp.header(browser, "location"), "/ui/")
      const client = yield* TestApp.request("GET", "/", { headers: { accept: "application/json" } })
      assert.strictEqual(client.status, 404)
      assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(client.body)._tag, "NotFound")
    })
  )

  it.effect("says who a token is, and names users from the directory, only to a known token", () =>
    Effect.gen(function* () {
      const alice = DemoUsers.user("alice")
      const bob = DemoUsers.user("bob")
      for (const as of [undefined, { token: "not-a-token" }] as const) {
        for (const path of ["/ui/api/session", `/ui/api/names?userId=${bob.userId}`]) {
          const refused = yield* TestApp.request("GET", path, as === undefined ? {} : { as })
          assert.strictEqual(refused.status, 401, path)
          assert.strictEqual(TestApp.decode(TestApp.ErrorBody)(refused.body)._tag, "Unauthenticated")
          assert.notInclude(refused.text, "bob")
        }
      }
      const session = yield* TestApp.request("GET", "/ui/api/session", { as: "alice" })
      assert.deepStrictEqual(TestApp.decode(AuditUiApi.Session)(session.body), {
        userId: alice.userId,
        name: "alice",
        role: "clerk"
      })
      const unknown = crypto.randomUUID()
      const names = yield* TestApp.request("GET", `/ui/api/names?userId=${bob.userId}&userId=${unknown}`, {
        as: "alice"
      })
      assert.deepStrictEqual(TestApp.decode(AuditUiApi.Names)(names.body), {
        names: [{ userId: bob.userId, name: "bob" }]
      })
    })
  )

  it.effect("serves nothing outside the UI's folder", () =>
    Effect.gen(function* () {
      for (const path of [
        "/ui/../package.json",
        "/ui/%2e%2e/package.json",
        "/ui/..%2f..%2fpackage.json",
        "/ui/nothing.js"
      ]) {
        const response = yield* TestApp.request("GET", path)
        assert.strictEqual(response.status, 404, `${path}: ${response.text}`)
        assert.notInclude(response.text, "@annal/ui")
      }
    })
  )
})
