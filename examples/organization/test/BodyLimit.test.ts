/**
 * The request body limit (1 MiB by default): a body that says it is larger is answered 413 before any of it is read,
 * and one that does not say (chunked) is read up to the limit and no further; nothing is written either way. Raw
 * sockets, so that the test controls what the client declares and how much it actually sends.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { port, raw } from "./support/RawHttp.ts"
import * as TestApp from "./support/TestApp.ts"

const eventCount = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM events`
  return Number(row!.n)
})

const headFor = (extra: string) =>
  `POST /organizations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer demo-alice\r\n` +
  `Content-Type: application/json\r\n${extra}\r\n`

/** One chunk of a chunked body. */
const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`

/** `count` pieces of 64 KiB of JSON string content. */
function* pieces(count: number): Generator<string> {
  for (let index = 0; index < count; index++) yield "x".repeat(65_536)
}

layer(TestApp.layer, TestApp.layerOptions)("the request body limit", (it) => {
  it.effect("a body that declares more than 1 MiB is refused with a typed 413 before it is read, nothing written", () =>
    Effect.gen(function* () {
      const before = yield* eventCount
      // 60 MiB declared, 64 KiB sent: a server that read the body first would wait for the rest for ever.
      const response = yield* raw(yield* port, headFor(`Content-Length: ${60 * 1024 * 1024}\r\n`), [
        '{"name":"',
        ...pieces(1)
      ])
      assert.strictEqual(response.status, 413, response.body)
      assert.deepStrictEqual(JSON.parse(response.body), {
        _tag: "InvalidRequest",
        message: "body: is larger than the 1 MiB this server reads",
        issues: [{ field: "body", reason: "is larger than the 1 MiB this server reads" }]
      })
      assert.strictEqual(response.headers["connection"], "close")
      assert.isDefined(response.headers["x-correlation-id"])
      assert.strictEqual(yield* eventCount, before)
    })
  )

  it.effect("a chunked body is read up to the limit and refused there with the same 413", () =>
    Effect.gen(function* () {
      const before = yield* eventCount
      // 2 MiB in chunks, no length declared: without a limit it would be read whole and refused as unparsable.
      const response = yield* raw(yield* port, headFor("Transfer-Encoding: chunked\r\n"), [
        chunk('{"name":"'),
        ...Array.from(pieces(32), chunk)
      ])
      assert.strictEqual(response.status, 413, response.body)
      assert.include(response.body, "is larger than the 1 MiB this server reads")
      assert.strictEqual(yield* eventCount, before)
    })
  )

  it.effect("a body within the limit is read and served as before", () =>
    Effect.gen(function* () {
      const before = yield* eventCount
      const body = JSON.stringify({
        name: "Within Limits",
        type: "private_limited",
        email: "accounts@withinlimits.example",
        pan: "LIMIT1234Z"
      })
      const response = yield* raw(yield* port, headFor(`Content-Length: ${Buffer.byteLength(body)}\r\n`), [body])
      assert.strictEqual(response.status, 201, response.body)
      assert.strictEqual(yield* eventCount, before + 1)
    })
  )
})
