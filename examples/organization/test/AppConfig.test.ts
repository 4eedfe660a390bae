/**
 * The app's settings from the environment: the bound on statements and requests must be a positive duration, as
 * 0 would time out every request (and PostgreSQL reads a `statement_timeout` of 0 as no bound at all).
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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

  it.effect("a statement timeout of 0 is refused when the app starts", () =>
    Effect.gen(function* () {
      for (const value of ["0 seconds", "0 millis"]) {
        const exit = yield* Effect.exit(read({ ANNAL_STATEMENT_TIMEOUT: value }))
        assert.isTrue(Exit.isFailure(exit), value)
      }
    })
  )
})
