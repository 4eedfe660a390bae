/**
 * Signed page cursors. The store's own cursors are opaque but not tamper-proof: anyone who decodes one can write
 * another that resumes anywhere. The first test shows that naive cursor at work against a real store; the others
 * show the signed cursor refusing the same forgery, and every other cursor it did not issue for the query.
 */
import { EventStore } from "@annal/core"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Redacted from "effect/Redacted"
import { InvalidRequest } from "../src/ApiError.ts"
import * as PageCursor from "../src/PageCursor.ts"
import { GstAdded, OrganizationEvents, uuid } from "../../core/test/support/Fixtures.ts"
import * as TestDatabase from "../../core/test/support/TestDatabase.ts"

const secret = Redacted.make("a-test-secret-that-is-long-enough-0123456789")

layer(TestDatabase.layer())("the store's unsigned cursor (the naive variant)", (it) => {
  it.effect("is forged by encoding any position, and the store resumes there, skipping events", () =>
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      const aggregateId = uuid()
      const appended = yield* store.append(
        Array.from({ length: 5 }, (_, i) =>
          GstAdded.make({ aggregateId, userId: uuid(), data: { gstin: `GSTIN${i}`, state: "KA" } })
        )
      )
      const third = appended[2]!.globalPosition
      // Nothing secret is needed to write a cursor the store accepts.
      const forged = Base64Url.encode(`annal.v1:${third}`)
      const page = yield* store.query(OrganizationEvents, { aggregateId }, { cursor: forged })
      assert.deepStrictEqual(
        page.events.map((event) => event.streamVersion),
        [4, 5]
      )
      // The signed cursor refuses that forgery.
      const cursors = yield* PageCursor.make(new TextEncoder().encode(Redacted.value(secret)))
      const refused = yield* Effect.flip(cursors.verify(`["events"]`, forged))
      assert.instanceOf(refused, InvalidRequest)
    })
  )
})

describe("PageCursor", () => {
  const signer = PageCursor.make(new TextEncoder().encode(Redacted.value(secret)))
  const position = Base64Url.encode("annal.v1:42")
  const scope = JSON.stringify(["userActivity", [["userId", "a11ce000-0000-4000-8000-000000000001"]]])

  it.effect("gives back the position it signed, for the query it signed it for", () =>
    Effect.gen(function* () {
      const cursors = yield* signer
      const cursor = yield* cursors.sign(scope, position)
      assert.strictEqual(yield* cursors.verify(scope, cursor), position)
    })
  )

  it.effect("refuses cursors it did not issue for the query", () =>
    Effect.gen(function* () {
      const cursors = yield* signer
      const other = yield* PageCursor.make(new TextEncoder().encode("another-secret-that-is-long-enough-xxxxxxxx"))
      const cursor = yield* cursors.sign(scope, position)
      const [, signature] = cursor.split(".")
      const forgeries = [
        "",
        "abc",
        position,
        cursor.slice(0, -1),
        cursor.slice(1),
        `${cursor}x`,
        `${Base64Url.encode("annal.v1:1")}.${signature}`,
        `${position}.${signature!.replace(/^./, (c) => (c === "A" ? "B" : "A"))}`,
        yield* other.sign(scope, position),
        `${position}.${Base64Url.encode(new Uint8Array(32))}`
      ]
      for (const forged of forgeries) {
        const error = yield* Effect.flip(cursors.verify(scope, forged))
        assert.deepStrictEqual(error.issues, [
          { field: "query.cursor", reason: "is not a cursor this server issued for this query" }
        ])
      }
      // The same cursor for another query: another user, another endpoint.
      for (const otherScope of [scope.replace("a11ce", "b0b00"), scope.replace("userActivity", "events")]) {
        assert.instanceOf(yield* Effect.flip(cursors.verify(otherScope, cursor)), InvalidRequest)
      }
    })
  )

  it.effect("refuses another spelling of its own signature: one cursor, one string", () =>
    Effect.gen(function* () {
      const cursors = yield* signer
      // A signature's 43rd character carries 2 bits that decoding ignores: the next 3 characters of the alphabet
      // decode to the same bytes.
      const signed = yield* Effect.forEach(
        Array.from({ length: 32 }, (_, i) => `${scope}#${i}`),
        (s) => Effect.map(cursors.sign(s, position), (cursor) => ({ scope: s, cursor }))
      )
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
      let respelled = 0
      for (const { scope: s, cursor } of signed) {
        const last = alphabet.indexOf(cursor.at(-1)!)
        assert.strictEqual(last % 4, 0, "sign gives the canonical spelling")
        const other = `${cursor.slice(0, -1)}${alphabet[last + 1 + (respelled % 3)]}`
        // The same bytes: a lenient decoder reads both spellings as one signature.
        assert.deepStrictEqual(Base64Url.decode(other.split(".")[1]!), Base64Url.decode(cursor.split(".")[1]!))
        assert.strictEqual(yield* cursors.verify(s, cursor), position)
        assert.instanceOf(yield* Effect.flip(cursors.verify(s, other)), InvalidRequest)
        respelled++
      }
      assert.strictEqual(respelled, signed.length)
    })
  )

  it.effect("with a random key, cursors do not survive the signer", () =>
    Effect.gen(function* () {
      const first = yield* PageCursor.PageCursor.pipe(Effect.provide(PageCursor.layerRandom))
      const second = yield* PageCursor.PageCursor.pipe(Effect.provide(PageCursor.layerRandom))
      const cursor = yield* first.sign(scope, position)
      assert.strictEqual(yield* first.verify(scope, cursor), position)
      assert.instanceOf(yield* Effect.flip(second.verify(scope, cursor)), InvalidRequest)
    })
  )
})
