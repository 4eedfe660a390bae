/**
 * Tamper-proof page cursors. The store's keyset cursor is signed with HMAC-SHA-256 together with the query it
 * belongs to, so a cursor the server did not issue, one that was altered or truncated, and one issued for another
 * query (another aggregate, user, or filter) are all refused with a 400 instead of reading from an arbitrary position
 * or widening a query. Cursors carry no expiry: the position they name stays valid, since events are never removed.
 *
 * The key comes from `ANNAL_CURSOR_SECRET`; without it a random key is made at startup, and cursors do not survive
 * a restart of the server.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Mac from "effect/crypto/Mac"
import * as SecureRandom from "effect/crypto/SecureRandom"
import * as Effect from "effect/Effect"
import * as Base64Url from "effect/encoding/Base64Url"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { InvalidRequest } from "./ApiError.ts"

/** The cursor signer. */
export class PageCursor extends Context.Service<
  PageCursor,
  {
    /** The cursor to hand out for the page of query `scope` that the store's cursor `position` resumes after. */
    readonly sign: (scope: string, position: string) => Effect.Effect<string>
    /** The store's cursor inside `cursor`, if this server signed it for query `scope`; `InvalidRequest` otherwise. */
    readonly verify: (scope: string, cursor: string) => Effect.Effect<string, InvalidRequest>
    /**
     * The cursor to hand out with `anchor` (base64url) beside the position: a state the server computed for the
     * previous page, such as the hash it verified there, which the caller carries and cannot change.
     */
    readonly signAnchored: (scope: string, position: string, anchor: string) => Effect.Effect<string>
    /** The store's cursor and the anchor inside `cursor`, which may carry none, if this server signed it for `scope`. */
    readonly verifyAnchored: (
      scope: string,
      cursor: string
    ) => Effect.Effect<{ readonly position: string; readonly anchor: string | undefined }, InvalidRequest>
  }
>()("@annal/http/PageCursor") {}

/** The shortest secret accepted: 32 bytes, the size of the HMAC-SHA-256 output. */
export const minSecretLength = 32

const encoder = new TextEncoder()

// The store's cursors are base64url; a signature is 32 bytes, 43 base64url characters.
const cursorPattern = /^([A-Za-z0-9_-]{1,256})\.([A-Za-z0-9_-]{43})$/

const refused = InvalidRequest.field("query.cursor", "is not a cursor this server issued for this query")

// An anchored cursor: position, anchor and signature.
const anchoredPattern = /^([A-Za-z0-9_-]{1,256})\.([A-Za-z0-9_-]{1,128})\.([A-Za-z0-9_-]{43})$/

/**
 * What is signed: the query and the position, and the anchor when there is one, so that a cursor is valid for its
 * query only. Neither a scope (JSON) nor a position holds a raw newline, so the two forms never sign the same bytes.
 */
const message = (scope: string, position: string, anchor?: string) =>
  encoder.encode(anchor === undefined ? `${scope}\n${position}` : `${scope}\n${position}\n${anchor}`)

/** The signature in `text`, when it is spelled exactly as `sign` spells it. */
const tagOf = (text: string): Uint8Array | undefined => {
  const tag = Base64Url.decode(text)
  // Only the spelling `sign` gives: the 43rd character carries 2 bits that decoding ignores, so without this
  // check four spellings of one signature would pass, and a cursor is simpler to reason about with one.
  return Result.isFailure(tag) || Base64Url.encode(tag.success) !== text ? undefined : tag.success
}

/** A signer with the given key. */
export const make = (secret: Uint8Array): Effect.Effect<PageCursor["Service"]> =>
  Effect.gen(function* () {
    const mac = yield* Mac.Mac
    // A key of the right length cannot be refused; a failure here is a broken WebCrypto, a defect.
    const key = yield* Effect.orDie(Mac.key(Mac.hmacSha256, secret))
    const signed = (scope: string, position: string, anchor: string | undefined, text: string) => {
      const tag = tagOf(text)
      if (tag === undefined) return Effect.fail(refused)
      return Effect.orDie(mac.verify(key, tag, message(scope, position, anchor))).pipe(
        Effect.flatMap((valid) => (valid ? Effect.succeed({ position, anchor }) : Effect.fail(refused)))
      )
    }
    const tagged = (position: string, bytes: Uint8Array, anchor?: string) =>
      Effect.map(
        Effect.orDie(mac.sign(key, bytes)),
        (tag) => `${position}${anchor === undefined ? "" : `.${anchor}`}.${Base64Url.encode(tag)}`
      )
    return PageCursor.of({
      sign: (scope, position) => tagged(position, message(scope, position)),
      verify: (scope, cursor) => {
        const match = cursorPattern.exec(cursor)
        if (match === null) return Effect.fail(refused)
        return Effect.map(signed(scope, match[1]!, undefined, match[2]!), (opened) => opened.position)
      },
      signAnchored: (scope, position, anchor) => tagged(position, message(scope, position, anchor), anchor),
      verifyAnchored: (scope, cursor) => {
        const plain = cursorPattern.exec(cursor)
        if (plain !== null) return signed(scope, plain[1]!, undefined, plain[2]!)
        const match = anchoredPattern.exec(cursor)
        if (match === null) return Effect.fail(refused)
        return signed(scope, match[1]!, match[2]!, match[3]!)
      }
    })
  }).pipe(Effect.provide(Mac.layerWebCrypto.pipe(Layer.provide(SecureRandom.layerWebCrypto))))

/** A signer whose key is `secret` (at least 32 characters). */
export const layer = (secret: Redacted.Redacted<string>): Layer.Layer<PageCursor> =>
  Layer.effect(PageCursor, make(encoder.encode(Redacted.value(secret))))

/** A signer with a random key: cursors are valid until the server stops. */
export const layerRandom: Layer.Layer<PageCursor> = Layer.effect(
  PageCursor,
  Effect.flatMap(
    SecureRandom.SecureRandom.use((random) => random.randomBytes(32)),
    make
  ).pipe(Effect.provide(SecureRandom.layerWebCrypto))
)

/** `ANNAL_CURSOR_SECRET`, when set; it must be at least 32 characters. */
export const config: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.option(
  Config.Redacted("ANNAL_CURSOR_SECRET").pipe(
    Config.mapEffect((secret) =>
      Redacted.value(secret).length >= minSecretLength
        ? Effect.succeed(secret)
        : Effect.fail(
            new Config.ConfigError(
              new ConfigProvider.SourceError({
                message: `ANNAL_CURSOR_SECRET must be at least ${minSecretLength} characters`
              })
            )
          )
    )
  )
)

/** A signer keyed by `ANNAL_CURSOR_SECRET`, or by a random key when it is not set. */
export const layerConfig: Layer.Layer<PageCursor, Config.ConfigError> = Layer.unwrap(
  Effect.map(config, Option.match({ onNone: () => layerRandom, onSome: layer }))
)
