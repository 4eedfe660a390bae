/**
 * One delivery attempt against raw HTTP servers on 127.0.0.1 that misbehave as a hostile or broken receiver would: a
 * redirect to another address is not followed, an answer that never comes ends at the attempt's deadline, and an
 * endless response body is read only up to its bound. Each of these would otherwise let a receiver reach past the
 * address guard, or hold a subscription's delivery for ever.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as Send from "../src/internal/send.ts"
import * as WebhookAddress from "../src/WebhookAddress.ts"

/** A server on 127.0.0.1 that answers with `handle`, and counts the requests it got; closed with the scope. */
const server = (handle: (request: IncomingMessage, response: ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly requests: () => number; readonly close: () => void }>((resume) => {
      let requests = 0
      const http = createServer((request, response) => {
        requests++
        request.resume()
        handle(request, response)
      })
      http.listen(0, "127.0.0.1", () => {
        const { port } = http.address() as AddressInfo
        resume(
          Effect.succeed({
            url: `http://127.0.0.1:${port}/hook`,
            requests: () => requests,
            close: () => {
              http.closeAllConnections()
              http.close()
            }
          })
        )
      })
    }),
    ({ close }) => Effect.sync(close)
  )

const attempt = (url: string, options: { readonly timeoutMillis?: number; readonly maxResponseBytes?: number } = {}) =>
  Send.send({
    url: new URL(url),
    headers: { "content-type": "application/json" },
    body: "{}",
    guard: WebhookAddress.make(["127.0.0.0/8"]),
    resolve: Send.systemResolve,
    // Far longer than any test here takes, unless the attempt hangs: then the test's own timeout reports it.
    timeoutMillis: options.timeoutMillis ?? 30_000,
    maxResponseBytes: options.maxResponseBytes ?? 65_536
  })

describe("a delivery attempt", () => {
  it.live("does not follow a redirect: the 3xx is its answer, and the redirect's target is never asked", () =>
    Effect.gen(function* () {
      const target = yield* server((_, response) => response.writeHead(204).end())
      const redirecting = yield* server((_, response) => response.writeHead(307, { location: target.url }).end())
      const outcome = yield* attempt(redirecting.url)
      assert.strictEqual(outcome._tag, "Response")
      assert.strictEqual(outcome._tag === "Response" ? outcome.status : 0, 307)
      assert.strictEqual(redirecting.requests(), 1)
      assert.strictEqual(target.requests(), 0)
    }).pipe(Effect.scoped)
  )

  it.live("ends at its deadline when the receiver never answers", () =>
    Effect.gen(function* () {
      // Takes the request and never answers: without a deadline the attempt would wait as long as the socket lives.
      const silent = yield* server(() => {})
      const outcome = yield* attempt(silent.url, { timeoutMillis: 200 })
      assert.deepStrictEqual(outcome, { _tag: "TimedOut" })
      assert.strictEqual(silent.requests(), 1)
    }).pipe(Effect.scoped)
  )

  it.live("reads an endless response body only up to its bound, and returns", () =>
    Effect.gen(function* () {
      // Answers 500 and then writes for ever (until the client goes): only the bound ends the attempt.
      const endless = yield* server((_, response) => {
        response.writeHead(500, { "content-type": "text/plain" })
        const chunk = "x".repeat(1024)
        const write = () => {
          while (!response.destroyed && response.write(chunk)) {}
          if (!response.destroyed) response.once("drain", write)
        }
        write()
      })
      const outcome = yield* attempt(endless.url, { maxResponseBytes: 4096 })
      assert.strictEqual(outcome._tag, "Response")
      if (outcome._tag !== "Response") return
      assert.strictEqual(outcome.status, 500)
      assert.strictEqual(outcome.body.length, 4096)
    }).pipe(Effect.scoped)
  )
})
