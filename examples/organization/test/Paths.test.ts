/**
 * Paths mean one route each, as a proxy's rule on them reads them: no case folding of the route's own segments,
 * no `;` ending the path; and every response says what it is and where it may appear.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestApp from "./support/TestApp.ts"

layer(TestApp.layer, TestApp.layerOptions)("paths and response headers", (it) => {
  it.effect("a route's path in another case, or with `;` in it, is not that route", () =>
    Effect.gen(function* () {
      const plain = yield* TestApp.request("GET", "/audit/events", { as: "dana" })
      assert.strictEqual(plain.status, 200, plain.text)
      const upper = yield* TestApp.request("GET", "/AUDIT/EVENTS", { as: "dana" })
      assert.strictEqual(upper.status, 404, upper.text)
      const alice = "a11ce000-0000-4000-8000-000000000001"
      const semicolon = yield* TestApp.request("GET", `/audit/events;userId=${alice}`, { as: "alice" })
      assert.strictEqual(semicolon.status, 400, semicolon.text)
      assert.include(semicolon.text, "must not contain ;")
      // Ids stay case-insensitive: they are values, not the route.
      const activity = yield* TestApp.request("GET", `/audit/users/${alice.toUpperCase()}/activity`, { as: "alice" })
      assert.strictEqual(activity.status, 200, activity.text)
    })
  )

  it.effect("every response forbids sniffing and framing; JSON allows no content at all", () =>
    Effect.gen(function* () {
      for (const [path, as] of [
        ["/audit/events", "dana"],
        ["/nowhere", "dana"],
        ["/docs", undefined]
      ] as const) {
        const response = yield* TestApp.request("GET", path, as === undefined ? {} : { as })
        assert.strictEqual(TestApp.header(response, "x-content-type-options"), "nosniff", path)
        assert.strictEqual(TestApp.header(response, "x-frame-options"), "DENY", path)
        assert.include(TestApp.header(response, "content-security-policy") ?? "", "frame-ancestors 'none'", path)
      }
      const json = yield* TestApp.request("GET", "/audit/events", { as: "dana" })
      assert.include(TestApp.header(json, "content-security-policy") ?? "", "default-src 'none'")
    })
  )
})
