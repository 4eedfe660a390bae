/**
 * API tokens: the configuration holds only hashes; a presented token is hashed and looked up.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as ApiTokens from "../src/ApiTokens.ts"

const userId = "a11ce000-0000-4000-8000-000000000001"

const read = (value: string) => ApiTokens.config.parse(ConfigProvider.fromUnknown({ ANNAL_API_TOKENS: value }))

describe("ApiTokens", () => {
  it.effect("hashes with SHA-256, in lowercase hex", () =>
    Effect.gen(function* () {
      // The FIPS 180-2 test vector.
      assert.strictEqual(
        yield* ApiTokens.hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
      )
    })
  )

  it.effect("finds the user and role of a configured token, and nothing for any other", () =>
    Effect.gen(function* () {
      const sha256 = yield* ApiTokens.hash("s3cret-token")
      const tokens = yield* ApiTokens.make([{ name: "alice", sha256, userId: userId.toUpperCase(), role: "clerk" }])
      const found = yield* tokens.authenticate(Redacted.make("s3cret-token"))
      assert.deepStrictEqual(found, Option.some({ name: "alice", userId, role: "clerk" }))
      for (const other of ["", "s3cret-token ", "S3CRET-TOKEN", sha256, "x".repeat(5000)]) {
        assert.isTrue(Option.isNone(yield* tokens.authenticate(Redacted.make(other))), other.slice(0, 20))
      }
    })
  )

  it.effect("refuses a configuration that names one token twice", () =>
    Effect.gen(function* () {
      const sha256 = yield* ApiTokens.hash("twice")
      const exit = yield* Effect.exit(
        ApiTokens.make([
          { name: "a", sha256, userId, role: "clerk" },
          { name: "b", sha256, userId, role: "auditor" }
        ])
      )
      assert.isTrue(Exit.isFailure(exit))
    })
  )

  it.effect("reads ANNAL_API_TOKENS, and refuses entries that are not hashes, UUIDs and roles", () =>
    Effect.gen(function* () {
      const sha256 = yield* ApiTokens.hash("from-config")
      const entries = yield* read(JSON.stringify([{ name: "ops", sha256, userId, role: "auditor" }]))
      assert.deepStrictEqual(entries, [{ name: "ops", sha256, userId, role: "auditor" }])
      for (const bad of [
        "not json",
        JSON.stringify([{ name: "ops", sha256: "from-config", userId, role: "auditor" }]),
        JSON.stringify([{ name: "ops", sha256, userId: "alice", role: "auditor" }]),
        JSON.stringify([{ name: "ops", sha256, userId, role: "Auditor!" }]),
        JSON.stringify([{ name: "ops", sha256, userId }])
      ]) {
        assert.isTrue(Exit.isFailure(yield* Effect.exit(read(bad))), bad)
      }
    })
  )
})
