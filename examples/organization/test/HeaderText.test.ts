/**
 * Header text as the client meant it: a reason sent as UTF-8 bytes is stored as the text it spells, not as the
 * Latin-1 reading of its bytes; C1 control characters are refused like C0 ones. Raw sockets, to send exact bytes.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import { port, raw } from "./support/RawHttp.ts"
import * as TestApp from "./support/TestApp.ts"

let pan = 5000

const head = (text: string) => new TextEncoder().encode(text)

/** A POST that creates an organization, its reason header given as raw bytes. */
const create = (reason: Uint8Array) => {
  const body = JSON.stringify({
    name: `Reasoned ${pan}`,
    type: "private_limited",
    email: `accounts${pan}@reasoned.example`,
    pan: `REASN${pan++}Z`
  })
  return Uint8Array.from([
    ...head(
      `POST /organizations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer demo-alice\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nX-Change-Reason: `
    ),
    ...reason,
    ...head(`\r\n\r\n${body}`)
  ])
}

const storedReason = (id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ readonly reason: string | null }>`SELECT metadata->>'reason' AS reason FROM events
      WHERE aggregate_id = ${id}::uuid AND event_type = 'organization.created'`
    return row?.reason
  })

layer(TestApp.layer, TestApp.layerOptions)("header text", (it) => {
  it.effect("a reason sent as UTF-8 is stored as the text it spells", () =>
    Effect.gen(function* () {
      const reason = "Überweisung ✓ 払い戻し"
      const response = yield* raw(yield* port, create(new TextEncoder().encode(reason)))
      assert.strictEqual(response.status, 201, response.body)
      const { id } = JSON.parse(response.body) as { readonly id: string }
      assert.strictEqual(yield* storedReason(id), reason)
    })
  )

  it.effect("C1 control characters are refused, sent as UTF-8 or as single bytes", () =>
    Effect.gen(function* () {
      for (const bytes of [new TextEncoder().encode("next\u0085line"), Uint8Array.from([0x61, 0x9b, 0x32, 0x4a])]) {
        const response = yield* raw(yield* port, create(bytes))
        assert.strictEqual(response.status, 400, response.body)
        assert.include(response.body, "header.x-change-reason", String(bytes))
      }
    })
  )
})
