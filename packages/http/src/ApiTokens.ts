/**
 * The deployment's API tokens. The configuration holds only each token's SHA-256 hash, with the user id and role it
 * stands for, so neither the configuration nor a memory dump of the server reveals a usable token. A presented
 * token is hashed and looked up; tokens are long random strings, so a fast hash is enough to make the stored hashes
 * useless to whoever reads them.
 *
 * `ANNAL_API_TOKENS` is a JSON array of `{ "name", "sha256", "userId", "role" }`; `hash` gives the `sha256` of a
 * token.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Digest from "effect/crypto/Digest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { Event } from "@annal/core"
import * as Principal from "./Principal.ts"

/** One configured token: its name, the SHA-256 of the token in lowercase hex, and whom it stands for. */
export const TokenEntry = Schema.Struct({
  name: Schema.String.check(Schema.isBetweenLength(1, 64)),
  sha256: Schema.String.check(
    Schema.isPattern(/^[0-9a-f]{64}$/, { message: "must be the SHA-256 of the token, 64 lowercase hex digits" })
  ),
  userId: Schema.String.check(Schema.makeFilter(Event.isUuid, { message: "must be a UUID" })),
  role: Principal.Role
})

/** One configured token. */
export type TokenEntry = typeof TokenEntry.Type

/** The token store. */
export class ApiTokens extends Context.Service<
  ApiTokens,
  {
    /** The caller a presented token stands for, if it is one of the configured tokens. */
    readonly authenticate: (token: Redacted.Redacted<string>) => Effect.Effect<Option.Option<Principal.Principal>>
  }
>()("@annal/http/ApiTokens") {}

/** The SHA-256 of a token, in lowercase hex: what the configuration stores. */
export const hash = (token: string): Effect.Effect<string> =>
  Digest.Digest.use((digest) => digest.digestHex(Digest.sha256, encoder.encode(token))).pipe(
    Effect.provide(Digest.layerWebCrypto)
  )

const encoder = new TextEncoder()

// Far longer than any real token; anything longer is refused without hashing it.
const maxTokenLength = 1024

/** The store of the given tokens. Two entries with the same hash are a configuration defect. */
export const make = (entries: ReadonlyArray<TokenEntry>): Effect.Effect<ApiTokens["Service"]> =>
  Effect.gen(function* () {
    const digest = yield* Digest.Digest
    const byHash = new Map<string, Principal.Principal>()
    for (const entry of entries) {
      if (byHash.has(entry.sha256)) {
        return yield* Effect.die(new Error(`API token ${entry.name} is configured twice (same sha256)`))
      }
      byHash.set(entry.sha256, { name: entry.name, userId: entry.userId.toLowerCase(), role: entry.role })
    }
    return ApiTokens.of({
      authenticate: (token) => {
        const value = Redacted.value(token)
        if (value.length === 0 || value.length > maxTokenLength) return Effect.succeedNone
        return Effect.map(digest.digestHex(Digest.sha256, encoder.encode(value)), (hex) =>
          Option.fromUndefinedOr(byHash.get(hex))
        )
      }
    })
  }).pipe(Effect.provide(Digest.layerWebCrypto))

/** The store of the given tokens. */
export const layer = (entries: ReadonlyArray<TokenEntry>): Layer.Layer<ApiTokens> =>
  Layer.effect(ApiTokens, make(entries))

/** The tokens of `ANNAL_API_TOKENS`, a JSON array of entries. */
export const config: Config.Config<ReadonlyArray<TokenEntry>> = Config.schema(
  Schema.fromJsonString(Schema.Array(TokenEntry)),
  "ANNAL_API_TOKENS"
)

/** The store of the tokens `ANNAL_API_TOKENS` configures. */
export const layerConfig: Layer.Layer<ApiTokens, Config.ConfigError> = Layer.effect(
  ApiTokens,
  Effect.flatMap(config, make)
)
