/**
 * The app's settings from the environment: the bound on statements and requests must be a positive duration, as
 * 0 would time out every request (and PostgreSQL reads a `statement_timeout` of 0 as no bound at all).
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as AppConfig from "../src/AppConfig.ts"

const read = (env: Record<string, string>) => AppConfig.config.parse(ConfigProvider.fromUnknown(env))

describe("AppConfig", () => {
  it.effect("the statement timeout is 5 seconds by default, and any positive duration given", () =>
    Effect.gen(function* () {
      assert.strictEqual(Duration.toMillis((yield* read({})).statementTimeout), 5000)
      const given = yield* read({ ANNAL_STATEMENT_TIMEOUT: "250 millis" })
      assert.strictEqual(Duration.toMillis(given.statementTimeout), 250)
    })
  )

  it.effect("a statement timeout of 0 is refused when the app starts, naming the variable and why", () =>
    Effect.gen(function* () {
      for (const value of ["0 seconds", "0 millis"]) {
        const error = yield* Effect.flip(read({ ANNAL_STATEMENT_TIMEOUT: value }))
        assert.strictEqual(error._tag, "ConfigError", value)
        assert.include(error.message, "ANNAL_STATEMENT_TIMEOUT", value)
        assert.include(error.message, "must be longer than 0", value)
      }
      // What is not a duration at all is refused too, for that reason and not the positive check's.
      const garbled = yield* Effect.flip(read({ ANNAL_STATEMENT_TIMEOUT: "soon" }))
      assert.include(garbled.message, "ANNAL_STATEMENT_TIMEOUT")
      assert.notInclude(garbled.message, "must be longer than 0")
    })
  )
})
